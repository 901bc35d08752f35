//! The `Feed` trait every source implements, and what a running feed is given.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tickcast_bus::Bus;
use tokio_util::sync::CancellationToken;

use crate::publisher::Publisher;
use crate::stats::FeedStats;

/// Why a feed stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feed's configuration is unusable.
    #[error("feed {feed}: invalid configuration: {reason}")]
    Config { feed: String, reason: String },
    /// An I/O operation failed (bind, open, connect). The I/O error is part of the message rather
    /// than a `source`, so the startup failure reads as one line.
    #[error("feed {feed}: {context}: {error}")]
    Io {
        feed: String,
        context: String,
        error: std::io::Error,
    },
}

/// The future a running feed is.
pub type FeedFuture = Pin<Box<dyn Future<Output = Result<(), FeedError>> + Send>>;

/// What a feed gets when it starts.
pub struct FeedContext {
    /// Where to publish.
    pub publisher: Publisher,
    /// Cancelled when the server shuts down; the feed returns soon after.
    pub shutdown: CancellationToken,
}

impl FeedContext {
    /// A context publishing to `bus` under the stats `stats`.
    pub fn new(bus: Arc<Bus>, stats: Arc<FeedStats>, shutdown: CancellationToken) -> Self {
        Self {
            publisher: Publisher::new(bus, stats),
            shutdown,
        }
    }
}

/// A source of ticks.
pub trait Feed: Send + 'static {
    /// The feed's name, as used in logs and metrics labels.
    fn name(&self) -> &str;

    /// Runs until `ctx.shutdown` is cancelled or the source ends.
    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture;
}
