//! Command line: flags, merging them over a scenario, and the program's outer flow (run, then
//! table, JSON and plot).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::scenario::{self, Mode, Settings, SlowMode};
use crate::topics::Assign;

/// Load generator for tickcast: WebSocket subscribers and NDJSON publishers on loopback,
/// reporting delivered rate, latency (tick ts → receipt), sequence gaps and disconnects.
///
/// Settings come from defaults, then `--scenario`, then the flags given here.
#[derive(Debug, Parser)]
#[command(name = "tickcast-loadgen", version, max_term_width = 100)]
pub struct Cli {
    /// Bundled scenario name (smoke, fanout-1k, fanout-10k, slow-consumers, c50k, dashboards, books, soak) or a .toml path.
    #[arg(long, short = 's')]
    pub scenario: Option<String>,
    /// What to drive [default: subscribe, or both when --publish-addr is given].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Server WebSocket URL (loopback only) [default: ws://127.0.0.1:8080/ws].
    #[arg(long, short = 'u')]
    pub url: Option<String>,
    /// Subscriber connections [default: 100].
    #[arg(long, short = 'c')]
    pub conns: Option<usize>,
    /// Topics per connection, K [default: 10].
    #[arg(long, short = 'k')]
    pub per_conn: Option<usize>,
    /// Number of pattern topics, T: PREFIX0000..PREFIX{T-1} [default: 100].
    #[arg(long, short = 't')]
    pub topics: Option<usize>,
    /// Prefix of pattern topics [default: ticker.SYM].
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Explicit comma-separated topic list (replaces the pattern).
    #[arg(long, value_delimiter = ',')]
    pub topic_list: Option<Vec<String>>,
    /// Take the topic list from the server's GET /topics (the channel's topics only).
    #[arg(long)]
    pub topics_from_server: bool,
    /// Channel to subscribe to: ticker, book (checks every book checksum), trade (checks trade
    /// continuity), bar.1s, bar.1m, ...; replaces the channel of the topic prefix and list
    /// [default: the topic prefix's, ticker].
    #[arg(long)]
    pub channel: Option<String>,
    /// How connections pick topics [default: sequential].
    #[arg(long, value_enum)]
    pub assign: Option<Assign>,
    /// Seed for random topic choice [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Receive threads [default: 1].
    #[arg(long)]
    pub threads: Option<usize>,
    /// New connections per second during the ramp, 0 = unpaced [default: 0].
    #[arg(long)]
    pub ramp_rate: Option<f64>,
    /// Handshakes in flight at once [default: 100].
    #[arg(long)]
    pub ramp_parallel: Option<usize>,
    /// Longest ramp in seconds [default: 60].
    #[arg(long)]
    pub ramp_timeout: Option<f64>,
    /// Limit for one connect + upgrade, seconds [default: 10].
    #[arg(long)]
    pub connect_timeout: Option<f64>,
    /// Seconds between the ramp and the measured window [default: 3].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Length of the measured window, seconds [default: 10].
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Latency sample every Nth tick (power of two) [default: 1].
    #[arg(long)]
    pub sample_every: Option<u32>,
    /// Source addresses used round-robin, e.g. 127.0.0.1,127.0.0.2 (needed past ~28k conns).
    #[arg(long, value_delimiter = ',')]
    pub src_ips: Option<Vec<String>>,
    /// Share of connections that are slow readers, 0..1 [default: 0].
    #[arg(long)]
    pub slow_share: Option<f64>,
    /// Slow reader behaviour [default: cap].
    #[arg(long, value_enum)]
    pub slow_mode: Option<SlowMode>,
    /// Messages/s a capped slow reader reads [default: 100].
    #[arg(long)]
    pub slow_rate: Option<f64>,
    /// SO_RCVBUF of slow readers in bytes, 0 = system default [default: 4096].
    #[arg(long)]
    pub slow_recv_buffer: Option<u32>,
    /// Churn: mean connection lifetime in seconds; each connection then unsubscribes, closes and
    /// reconnects until the run ends (0 = off)
    #[arg(long)]
    pub churn: Option<f64>,
    /// Subscribe with throttle_ms: at most one tick per topic per N ms; skipped seqs are then not
    /// counted as gaps (0 = off) [default: 0].
    #[arg(long)]
    pub throttle_ms: Option<u64>,
    /// tickcast's TCP/NDJSON feed input HOST:PORT (enables publishing).
    #[arg(long)]
    pub publish_addr: Option<String>,
    /// Ticks/s published over all publisher connections [default: 10000].
    #[arg(long)]
    pub publish_rate: Option<f64>,
    /// Topics published to, the first N of the topic set (0 = all) [default: 0].
    #[arg(long)]
    pub publish_symbols: Option<usize>,
    /// Publisher TCP connections [default: 4].
    #[arg(long)]
    pub publish_conns: Option<usize>,
    /// The server's synthetic feed rate (ticks/s over all symbols), for the expected rate.
    #[arg(long)]
    pub feed_rate: Option<f64>,
    /// The server's synthetic feed market_rate (book changes/s over all symbols), for the
    /// expected rate of book and trade runs and the config --print-server-config prints.
    #[arg(long)]
    pub market_rate: Option<f64>,
    /// The server's synthetic feed symbol count, for the expected rate [default: --topics].
    #[arg(long)]
    pub feed_symbols: Option<usize>,
    /// Server PID: sample its CPU seconds and RSS over the window from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Draw latency over time and the latency histogram into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// No final table on stdout.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the scenario's server flags (`--symbols N --rate R`) and exit (used by run.sh).
    #[arg(long)]
    pub print_server_args: bool,
    /// Print a tickcast config file with the scenario's other [server] settings (send buffer,
    /// backpressure policy, queue bound; empty if none) and exit (used by run.sh).
    #[arg(long)]
    pub print_server_config: bool,
    /// List the bundled scenarios and exit.
    #[arg(long)]
    pub list_scenarios: bool,
}

impl Cli {
    /// Overrides `s` with every flag that was given.
    pub fn apply(&self, s: &mut Settings) {
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $( if let Some(v) = &self.$flag { s.$($field).+ = v.clone(); } )*
            };
        }
        set!(
            mode => mode, url => url, conns => conns, per_conn => per_conn, topics => topics,
            topic_prefix => topic_prefix, topic_list => topic_list, assign => assign, seed => seed,
            threads => threads, ramp_rate => ramp_rate, ramp_parallel => ramp_parallel,
            ramp_timeout => ramp_timeout_s, connect_timeout => connect_timeout_s,
            warmup => warmup_s, duration => duration_s, sample_every => sample_every,
            src_ips => src_ips, slow_share => slow_share, slow_mode => slow_mode,
            slow_rate => slow_rate, slow_recv_buffer => slow_recv_buffer, churn => churn_s, throttle_ms => throttle_ms, publish_addr => publish.addr, publish_rate => publish.rate,
            publish_symbols => publish.symbols, publish_conns => publish.conns,
            feed_rate => server.rate, feed_symbols => server.symbols,
            market_rate => server.market_rate,
        );
        if let Some(c) = &self.channel {
            s.channel = Some(c.clone());
        }
        if self.topics_from_server {
            s.topics_from_server = true;
        }
        // Giving a feed address without a mode means "measure the whole path".
        if self.publish_addr.is_some() && self.mode.is_none() && s.mode == Mode::Subscribe {
            s.mode = Mode::Both;
        }
    }
}

/// Parses arguments and runs; errors are returned for `main` to print as one line.
pub fn run_cli<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help / --version: clap's own output, success.
            let _ = e.print();
            return Ok(());
        }
        Err(e) => {
            // clap adds usage and a "try --help" paragraph; one line is clearer here.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            anyhow::bail!("{}", first.trim_start_matches("error: "));
        }
    };
    if cli.list_scenarios {
        for name in scenario::bundled_names() {
            let s = scenario::load(name)?;
            println!("{name:<16} {}", s.description);
        }
        return Ok(());
    }
    let mut settings = match &cli.scenario {
        Some(name) => scenario::load(name)?,
        None => Settings::default(),
    };
    cli.apply(&mut settings);
    if cli.print_server_args {
        println!("{}", settings.server_args());
        return Ok(());
    }
    if cli.print_server_config {
        print!("{}", settings.server_config());
        return Ok(());
    }
    let outcome = crate::run::run(
        settings,
        crate::run::RunOptions {
            scenario: cli.scenario.clone(),
            server_pid: cli.server_pid,
            progress: !cli.no_progress,
        },
    )?;
    let report = &outcome.report;
    if !cli.quiet {
        print!("{}", crate::report::table(report));
    }
    if let Some(path) = &cli.json_out {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), report)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.plot {
        crate::plot::write_svg(path, report)?;
    }
    // A run that received nothing measured nothing: the table and files are still written (they
    // show what was tried), but the exit status must not say success.
    if let Some(why) = crate::report::nothing_measured(report) {
        anyhow::bail!("{why}");
    }
    // Wrong market data (a book checksum mismatch, a lost or repeated trade) fails the run too.
    if let Some(why) = crate::report::failures(report) {
        anyhow::bail!("{why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_scenario() {
        let cli = Cli::try_parse_from([
            "x",
            "--conns",
            "7",
            "--duration",
            "2.5",
            "--src-ips",
            "127.0.0.1,127.0.0.2",
            "--publish-addr",
            "127.0.0.1:9",
            "--feed-rate",
            "500",
        ])
        .unwrap();
        let mut s = scenario::load("fanout-1k").unwrap();
        cli.apply(&mut s);
        assert_eq!(s.conns, 7);
        assert_eq!(s.per_conn, 10);
        assert_eq!(s.duration_s, 2.5);
        assert_eq!(s.src_ips, vec!["127.0.0.1", "127.0.0.2"]);
        assert_eq!(s.mode, Mode::Both);
        assert_eq!(s.publish.addr, "127.0.0.1:9");
        assert_eq!(s.server.rate, 500.0);
    }

    #[test]
    fn bad_flags_are_one_line() {
        let e = run_cli(["x", "--conns", "many"]).unwrap_err().to_string();
        assert!(e.contains("--conns"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
