//! The `tickcast` binary: CLI and environment, logging, allocator, signals.
#![deny(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tickcast::config::{Config, Overrides, Role};
use tickcast_bus::OverflowPolicy;
use tickcast_ingest::synthetic::Symbols;

// The one module with `unsafe`: mimalloc's C API and prctl(2).
#[allow(unsafe_code)]
mod allocator;
mod logging;

/// Market-data WebSocket fan-out server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see config/tickcast.toml).
    #[arg(long, env = "TICKCAST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TICKCAST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Synthetic feed symbols: a count N (SYM0000…) or a list AAPL,MSFT,…
    #[arg(long, env = "TICKCAST_SYMBOLS", value_parser = Symbols::parse)]
    symbols: Option<Symbols>,
    /// Synthetic feed total rate in ticks per second.
    #[arg(long, env = "TICKCAST_RATE")]
    rate: Option<f64>,
    /// Worker shards (0 = one per core).
    #[arg(long, env = "TICKCAST_WORKERS")]
    workers: Option<usize>,
    /// Slow-client policy: conflate, drop_oldest or disconnect.
    #[arg(long, env = "TICKCAST_POLICY")]
    policy: Option<OverflowPolicy>,
    /// Write queued ticks every N ms instead of at once (0): less CPU per message, N ms more latency.
    #[arg(long, env = "TICKCAST_FLUSH_INTERVAL_MS")]
    flush_interval_ms: Option<u64>,
    /// Adaptive coalescing cap: a write pass waits up to N ms behind a long previous one (0 = off).
    #[arg(long, env = "TICKCAST_ADAPTIVE_FLUSH_MAX_MS")]
    adaptive_flush_max_ms: Option<u64>,
    /// Replay a JSONL or CSV tick file in real time, looping (adds a feed named "replay").
    #[arg(long, env = "TICKCAST_REPLAY")]
    replay: Option<PathBuf>,
    /// Node role: standalone, or ingest (also publish every tick to NATS; see `[nats]`).
    #[arg(long, env = "TICKCAST_ROLE", value_enum)]
    role: Option<Role>,
    /// NATS server of the ingest role, e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "TICKCAST_NATS_URL")]
    nats_url: Option<String>,
    /// Log filter, e.g. info or tickcast_gateway=debug [default: from config, info].
    #[arg(long, env = "TICKCAST_LOG")]
    log: Option<String>,
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, and no backtrace: this is a user's error to fix
            // (a bad config, a busy port), not a crash. A closed stderr must not turn it into a panic.
            let _ = writeln!(std::io::stderr(), "tickcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply(Overrides {
        listen: cli.listen,
        symbols: cli.symbols,
        rate: cli.rate,
        workers: cli.workers,
        policy: cli.policy,
        replay: cli.replay.clone(),
        role: cli.role,
        nats_url: cli.nats_url.clone(),
        flush_interval_ms: cli.flush_interval_ms,
        adaptive_flush_max_ms: cli.adaptive_flush_max_ms,
    })?;
    let filter = cli.log.clone().unwrap_or_else(|| config.log.filter.clone());
    let mut settings = config.resolve()?;
    settings.gateway.heap_trim = Some(allocator::collect);
    let dropped_lines = logging::dropped_counter();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).context("invalid log filter")?,
        )
        .with_writer(logging::LogWriter::new(dropped_lines.clone()))
        .with_ansi(logging::use_colour())
        .log_internal_errors(false)
        .init();

    // Feeds and signals run here; connections run on the gateway's shard threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tickcast-control")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let running = tickcast::start(settings).await?;
        if let Err(e) = running.state().metrics.register(Box::new(dropped_lines)) {
            tracing::warn!(error = %e, "cannot export tickcast_log_lines_dropped_total");
        }
        let token = running.shutdown_token();
        // The signal is awaited here, in the future the main thread blocks on, not in a task of
        // its own: a task can die unnoticed, and then SIGTERM would do nothing.
        let stopped = running.wait();
        tokio::pin!(stopped);
        tokio::select! {
            result = &mut stopped => return result,
            () = wait_for_signal() => {}
        }
        tracing::info!("shutting down: closing clients with 1001, flushing queues");
        token.cancel();
        stopped.await
    })?;
    tracing::info!("bye");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
