//! The TCP feed: publishers connect and send NDJSON tick lines; many may be connected at once.
//!
//! Each connection task only cuts its stream into runs of whole lines ([`LineFramer`]) and hands
//! them over a bounded channel to the feed's one publishing loop, which parses and publishes them.
//! One publishing loop per feed keeps seq assignment and the last-value cache in publish order even
//! when several publishers send the same topic; the bounded channel turns a slow loop into TCP
//! backpressure on the publishers instead of memory growth.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::line::{Framed, LineFramer};
use crate::reject::{LogLimiter, Reject};
use crate::sink::TickSink;
use crate::stats::FeedStats;

/// Runs of lines queued between the connections and the publishing loop. At ~64 KiB per run this
/// bounds the feed's buffered input to a few MiB; when full, connections stop reading.
const CHUNK_QUEUE: usize = 64;
/// Bytes requested per socket read.
const READ_SIZE: usize = 64 * 1024;

/// Settings of a TCP feed.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Feed name for logs and metrics.
    pub name: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Longest accepted line in bytes; longer lines are skipped and counted as `too_long`.
    pub max_line_bytes: usize,
    /// Publisher connections held at once; more are closed on accept and logged.
    pub max_connections: usize,
}

/// A bound TCP feed (binding happens at build time so a busy port fails startup).
pub struct TcpFeed {
    config: TcpConfig,
    listener: std::net::TcpListener,
}

impl TcpFeed {
    /// Validates `config` and binds its address.
    pub fn bind(config: TcpConfig) -> Result<Self, FeedError> {
        if config.max_line_bytes == 0 || config.max_connections == 0 {
            return Err(FeedError::Config {
                feed: config.name.clone(),
                reason: "max_line_bytes and max_connections must be at least 1".into(),
            });
        }
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

async fn run(feed: TcpFeed, ctx: FeedContext) -> Result<(), FeedError> {
    let TcpFeed { config, listener } = feed;
    let listener = TcpListener::from_std(listener).map_err(|error| FeedError::Io {
        feed: config.name.clone(),
        context: "cannot register the listener".into(),
        error,
    })?;
    let stats = ctx.publisher.stats().clone();
    let mut sink = TickSink::new(ctx.publisher, config.max_line_bytes);
    let (tx, mut rx) = mpsc::channel::<Chunk>(CHUNK_QUEUE);
    let open = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    let refused_log = LogLimiter::default();
    tracing::info!(feed = %config.name, listen = %config.listen, "tcp feed listening for NDJSON publishers");
    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
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
    shutdown: CancellationToken,
}

impl Conn {
    async fn run(self, mut stream: TcpStream) {
        tracing::debug!(peer = %self.peer, "publisher connected");
        let mut framer = LineFramer::new(self.max_line);
        loop {
            let read = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = stream.read_buf(framer.read_buf(READ_SIZE)) => r,
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
