//! Per-feed counters and liveness, shared with metrics and readiness.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tickcast_core::TsMicros;

/// What operators want to know about one feed.
#[derive(Debug)]
pub struct FeedStats {
    name: String,
    kind: &'static str,
    ticks_in: AtomicU64,
    parse_errors: AtomicU64,
    reconnects: AtomicU64,
    last_tick_us: AtomicU64,
    connected: AtomicBool,
}

impl FeedStats {
    /// Stats for feed `name` of kind `kind` (e.g. `synthetic`).
    pub fn new(name: impl Into<String>, kind: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            kind,
            ticks_in: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            last_tick_us: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        })
    }

    /// The feed's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The feed's kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Counts `n` ticks published at `at`.
    pub fn record_ticks(&self, n: u64, at: TsMicros) {
        self.ticks_in.fetch_add(n, Ordering::Relaxed);
        self.last_tick_us.store(at.0, Ordering::Relaxed);
    }

    /// Counts one input that could not be parsed.
    pub fn record_parse_error(&self) {
        self.parse_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one reconnect to the source.
    pub fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the source connected (or not).
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// Ticks published.
    pub fn ticks_in(&self) -> u64 {
        self.ticks_in.load(Ordering::Relaxed)
    }

    /// Inputs rejected.
    pub fn parse_errors(&self) -> u64 {
        self.parse_errors.load(Ordering::Relaxed)
    }

    /// Reconnects so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the source is connected.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Time of the last tick, if any.
    pub fn last_tick(&self) -> Option<TsMicros> {
        match self.last_tick_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(TsMicros(us)),
        }
    }
}

/// Every feed's stats, for metrics and `/readyz`.
#[derive(Debug, Default)]
pub struct FeedRegistry {
    feeds: Mutex<Vec<Arc<FeedStats>>>,
}

impl FeedRegistry {
    /// Adds a feed's stats.
    pub fn register(&self, stats: Arc<FeedStats>) {
        self.feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats);
    }

    /// All registered feeds.
    pub fn all(&self) -> Vec<Arc<FeedStats>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
