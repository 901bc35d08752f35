//! The TCP feed: publishers connect and send NDJSON tick lines; many may be connected at once.
//!
//! Each connection task only cuts its stream into runs of whole lines ([`LineFramer`]) and hands
//! them over a bounded channel to the feed's one publishing loop, which parses and publishes them.
//! One publishing loop per feed keeps seq assignment and the last-value cache in publish order even
//! when several publishers send the same topic; the bounded channel turns a slow loop into TCP
//! backpressure on the publishers instead of memory growth.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::line::{Framed, LineFramer};
use crate::reject::{LogLimiter, Reject};
use crate::sink::TickSink;
use crate::spec::{millis, FeedConfigError, DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES};
use crate::stats::FeedStats;

/// Default of [`TcpConfig::queue_chunks`]: with 64 KiB reads, a few MiB of buffered input.
pub const DEFAULT_QUEUE_CHUNKS: usize = 64;
/// Accepted [`TcpConfig::queue_chunks`].
pub const QUEUE_CHUNKS_RANGE: RangeInclusive<usize> = 1..=65_536;
/// Default of [`TcpConfig::read_buffer_bytes`].
pub const DEFAULT_READ_BUFFER_BYTES: usize = 64 * 1024;
/// Accepted [`TcpConfig::read_buffer_bytes`]: 1 KiB to 16 MiB.
pub const READ_BUFFER_BYTES_RANGE: RangeInclusive<usize> = 1024..=16 << 20;

/// Default of [`TcpConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Settings of a TCP feed: a `kind = "tcp"` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Feed name for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Longest accepted line in bytes; longer lines are skipped and counted as `too_long`. At
    /// least [`MIN_LINE_BYTES`].
    #[serde(default = "crate::spec::default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Publisher connections held at once; more are closed on accept and logged.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bytes requested per socket read: larger reads mean fewer wakeups and larger runs of lines
    /// per hand-off at a high rate, at the cost of memory per connection.
    #[serde(default = "default_read_buffer_bytes")]
    pub read_buffer_bytes: usize,
    /// Runs of lines (each up to about one read) queued between the connections and the feed's
    /// publishing loop. It bounds the feed's buffered input to about `queue_chunks` ×
    /// `read_buffer_bytes`; when full, connections stop reading and TCP slows the publishers.
    #[serde(default = "default_queue_chunks")]
    pub queue_chunks: usize,
    /// Readiness waits for this feed (connected = at least one publisher connected).
    #[serde(default = "crate::spec::required_by_default")]
    pub required: bool,
    /// Not ready after this long without a tick; `None` (`max_idle_ms = 0`) = off.
    #[serde(default, rename = "max_idle_ms", deserialize_with = "millis::zero_off")]
    pub max_idle: Option<Duration>,
}

fn default_name() -> String {
    "tcp".into()
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_read_buffer_bytes() -> usize {
    DEFAULT_READ_BUFFER_BYTES
}
fn default_queue_chunks() -> usize {
    DEFAULT_QUEUE_CHUNKS
}

impl TcpConfig {
    /// A feed named `tcp` on `listen` with every other setting at its default.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            name: default_name(),
            listen,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
            queue_chunks: DEFAULT_QUEUE_CHUNKS,
            required: true,
            max_idle: None,
        }
    }

    /// Checks the settings (the port is only bound by [`TcpFeed::bind`]).
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        FeedConfigError::named(feed)?;
        FeedConfigError::at_least(feed, "max_line_bytes", self.max_line_bytes, MIN_LINE_BYTES)?;
        FeedConfigError::at_least(feed, "max_connections", self.max_connections, 1)?;
        for (field, value, range) in [
            (
                "read_buffer_bytes",
                self.read_buffer_bytes,
                READ_BUFFER_BYTES_RANGE,
            ),
            ("queue_chunks", self.queue_chunks, QUEUE_CHUNKS_RANGE),
        ] {
            if !range.contains(&value) {
                let (lo, hi) = range.into_inner();
                let problem = format!("is {value}, must be {lo} to {hi}");
                return Err(FeedConfigError::new(feed, field, problem));
            }
        }
        Ok(())
    }
}

/// A bound TCP feed (binding happens at build time so a busy port fails startup).
pub struct TcpFeed {
    config: TcpConfig,
    listener: std::net::TcpListener,
}

impl TcpFeed {
    /// Validates `config` and binds its address.
    pub fn bind(config: TcpConfig) -> Result<Self, FeedError> {
        config.validate()?;
        let io = |context: String| {
            let feed = config.name.clone();
            move |error| FeedError::Io {
                feed,
                context,
                error,
            }
        };
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(io(format!("cannot listen on {}", config.listen)))?;
        listener
            .set_nonblocking(true)
            .map_err(io("cannot make the listener non-blocking".into()))?;
        Ok(Self { config, listener })
    }

    /// The bound address (resolves port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Feed for TcpFeed {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
        Box::pin(run(*self, ctx))
    }
}

/// Lines from one connection, ready to parse.
struct Chunk {
    peer: Arc<str>,
    first_line: u64,
    data: BytesMut,
}

/// How often the feed's candles are advanced.
const BAR_CLOCK: std::time::Duration = std::time::Duration::from_millis(100);

async fn run(feed: TcpFeed, ctx: FeedContext) -> Result<(), FeedError> {
    let TcpFeed { config, listener } = feed;
    let listener = TcpListener::from_std(listener).map_err(|error| FeedError::Io {
        feed: config.name.clone(),
        context: "cannot register the listener".into(),
        error,
    })?;
    let stats = ctx.publisher.stats().clone();
    let mut sink = TickSink::new(ctx.publisher, config.max_line_bytes);
    let (tx, mut rx) = mpsc::channel::<Chunk>(config.queue_chunks);
    let open = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    let refused_log = LogLimiter::default();
    tracing::info!(feed = %config.name, listen = %config.listen, "tcp feed listening for NDJSON publishers");
    // Candles built from the publishers' trades close on time even when no trade follows.
    let mut bar_clock = tokio::time::interval(BAR_CLOCK);
    bar_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            _ = bar_clock.tick() => sink.tick_bars(tickcast_core::TsMicros::now()),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Per-connection accept errors (e.g. EMFILE) must not end the feed.
                        tracing::warn!(feed = %config.name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.load(Ordering::Relaxed) >= config.max_connections {
                    if let Some(suppressed) = refused_log.admit() {
                        tracing::warn!(feed = %config.name, %peer, suppressed,
                            max_connections = config.max_connections, "publisher refused: connection limit");
                    }
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                stats.set_connected(true);
                let conn = Conn {
                    peer: Arc::from(peer.to_string()),
                    tx: tx.clone(),
                    stats: stats.clone(),
                    max_line: config.max_line_bytes,
                    read_size: config.read_buffer_bytes,
                    shutdown: ctx.shutdown.clone(),
                };
                let (open, stats) = (open.clone(), stats.clone());
                tracker.spawn(async move {
                    conn.run(stream).await;
                    if open.fetch_sub(1, Ordering::Relaxed) == 1 {
                        stats.set_connected(false);
                    }
                });
            }
            // After accept: under a saturating load the queue is always ready, and polling it first
            // (biased) would starve new publishers.
            Some(mut chunk) = rx.recv() => {
                sink.ingest_ndjson(&mut chunk.data, chunk.first_line, &chunk.peer, &mut |_, _| {});
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    stats.set_connected(false);
    Ok(())
}

/// One publisher connection.
struct Conn {
    peer: Arc<str>,
    tx: mpsc::Sender<Chunk>,
    stats: Arc<FeedStats>,
    max_line: usize,
    read_size: usize,
    shutdown: CancellationToken,
}

impl Conn {
    async fn run(self, mut stream: TcpStream) {
        tracing::debug!(peer = %self.peer, "publisher connected");
        let mut framer = LineFramer::new(self.max_line);
        loop {
            let read = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = stream.read_buf(framer.read_buf(self.read_size)) => r,
            };
            match read {
                Ok(0) => break,
                Ok(_) => {
                    while let Some(framed) = framer.next_framed() {
                        if !self.forward(framed).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "publisher connection failed");
                    return;
                }
            }
        }
        if let Some(framed) = framer.finish() {
            self.forward(framed).await;
        }
        tracing::debug!(peer = %self.peer, "publisher disconnected");
    }

    /// Hands lines to the publishing loop (waiting while it is behind); false once it is gone.
    async fn forward(&self, framed: Framed) -> bool {
        match framed {
            Framed::Lines { first_line, data } => {
                let chunk = Chunk {
                    peer: self.peer.clone(),
                    first_line,
                    data,
                };
                tokio::select! {
                    _ = self.shutdown.cancelled() => false,
                    sent = self.tx.send(chunk) => sent.is_ok(),
                }
            }
            Framed::TooLong { line } => {
                let reject = Reject::TooLong { max: self.max_line };
                self.stats.record_reject(&self.peer, line, &reject);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(read_buffer_bytes: usize, queue_chunks: usize) -> TcpConfig {
        TcpConfig {
            name: "t".into(),
            max_connections: 4,
            read_buffer_bytes,
            queue_chunks,
            ..TcpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }

    #[test]
    fn read_buffer_and_queue_depth_are_range_checked() {
        let reason = |c: TcpConfig| match TcpFeed::bind(c) {
            Err(FeedError::Config { feed, reason }) => {
                assert_eq!(feed, "t");
                reason
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(reason(config(512, 64)).contains("read_buffer_bytes is 512"));
        assert!(reason(config(DEFAULT_READ_BUFFER_BYTES, 0)).contains("queue_chunks is 0"));
        // The config file's rule: a line must have room for one tick.
        let short = TcpConfig {
            max_line_bytes: 63,
            ..config(1024, 1)
        };
        assert!(reason(short).contains("max_line_bytes is 63, must be >= 64"));
        let feed = TcpFeed::bind(config(1024, 1)).expect("smallest values are fine");
        assert_eq!(feed.config.queue_chunks, 1);
    }
}
