//! Per-feed counters and liveness, shared with metrics and readiness.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tickcast_bus::TopicState;
use tickcast_core::TsMicros;

use crate::reject::{LogLimiter, Reject, RejectReason};

/// What operators want to know about one feed.
#[derive(Debug)]
pub struct FeedStats {
    name: String,
    kind: &'static str,
    ticks_in: AtomicU64,
    /// Rejected inputs, indexed by [`RejectReason`]; a fixed array keeps the label set bounded.
    rejects: [AtomicU64; RejectReason::ALL.len()],
    reconnects: AtomicU64,
    /// Upstream sequence discontinuities (jumps forward or back) seen in sources that carry a seq.
    upstream_gaps: AtomicU64,
    /// Ticks this feed (or sink) had to drop, e.g. the NATS sink's queue being full.
    dropped: AtomicU64,
    last_tick_us: AtomicU64,
    connected: AtomicBool,
    /// Why the feed stopped for good (an error or a panic), once it has.
    failure: Mutex<Option<String>>,
    /// Whether `/readyz` waits for this feed.
    required: AtomicBool,
    /// With a non-zero value, a feed whose last tick is older than this (ms) is not live.
    max_idle_ms: AtomicU64,
    /// Bounds the rate of reject warnings.
    reject_log: LogLimiter,
    /// Bounds the rate of upstream-gap warnings.
    gap_log: LogLimiter,
    /// The topics this feed has published to, so that when it goes down their heartbeats say so.
    topics: Mutex<Vec<Arc<TopicState>>>,
}

impl FeedStats {
    /// Stats for feed `name` of kind `kind` (e.g. `synthetic`).
    pub fn new(name: impl Into<String>, kind: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            kind,
            ticks_in: AtomicU64::new(0),
            rejects: Default::default(),
            reconnects: AtomicU64::new(0),
            upstream_gaps: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_tick_us: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            failure: Mutex::new(None),
            required: AtomicBool::new(true),
            max_idle_ms: AtomicU64::new(0),
            reject_log: LogLimiter::default(),
            gap_log: LogLimiter::default(),
            topics: Mutex::new(Vec::new()),
        })
    }

    /// Sets how readiness treats this feed: whether it is `required`, and after how long without a
    /// tick it stops counting as live (`None`: silence is fine).
    pub fn set_readiness(&self, required: bool, max_idle: Option<Duration>) {
        self.required.store(required, Ordering::Relaxed);
        self.max_idle_ms.store(
            max_idle.map_or(0, |d| d.as_millis().max(1) as u64),
            Ordering::Relaxed,
        );
    }

    /// Whether `/readyz` waits for this feed.
    pub fn required(&self) -> bool {
        self.required.load(Ordering::Relaxed)
    }

    /// Why this feed is not ready at `now` (not connected, or silent for longer than its
    /// `max_idle`), or `None` when it is.
    pub fn not_ready_reason(&self, now: TsMicros) -> Option<String> {
        if let Some(why) = self.failure() {
            return Some(format!("feed {} stopped: {why}", self.name));
        }
        if !self.connected() {
            return Some(format!("feed {} is not connected", self.name));
        }
        let max_idle_ms = self.max_idle_ms.load(Ordering::Relaxed);
        if max_idle_ms > 0 {
            let idle = self
                .last_tick()
                .map(|t| Duration::from_micros(now.0.saturating_sub(t.0)));
            match idle {
                None => return Some(format!("feed {} has not published a tick yet", self.name)),
                Some(d) if d.as_millis() as u64 > max_idle_ms => {
                    return Some(format!(
                        "feed {} has published no tick for {:.1} s",
                        self.name,
                        d.as_secs_f64()
                    ))
                }
                Some(_) => {}
            }
        }
        None
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

    /// Counts one input that could not be used.
    pub fn record_parse_error(&self, reason: RejectReason) {
        self.rejects[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected input and logs it (with where it came from and its line number, 0 when
    /// inputs have no lines) at most once per [`crate::reject::LOG_INTERVAL`].
    pub fn record_reject(&self, origin: &dyn fmt::Display, line: u64, reject: &Reject) {
        self.record_parse_error(reject.reason());
        if let Some(suppressed) = self.reject_log.admit() {
            tracing::warn!(
                feed = %self.name,
                %origin,
                line,
                reason = reject.reason().label(),
                suppressed,
                "input skipped: {reject}"
            );
        }
    }

    /// Counts an upstream sequence discontinuity on `topic` and logs it at a bounded rate.
    pub fn record_upstream_gap(&self, topic: &str, detail: fmt::Arguments<'_>) {
        self.upstream_gaps.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.gap_log.admit() {
            tracing::warn!(feed = %self.name, topic, suppressed, "upstream sequence gap: {detail}");
        }
    }

    /// Counts one tick dropped by this feed or sink.
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one reconnect to the source.
    pub fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the feed as stopped for good because of `why`: not connected, and not ready.
    pub fn set_failed(&self, why: String) {
        self.set_connected(false);
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Why the feed stopped for good, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the source connected (or not). Going down also marks every topic it served as not
    /// served (`feed_up: false` in their heartbeats) until a feed publishes to it again.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        if !up {
            for t in self.topics.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                t.set_feed_down();
            }
        }
    }

    /// Notes that this feed publishes to `topic` (once per topic, when a publisher first resolves
    /// it).
    pub fn serves(&self, topic: &Arc<TopicState>) {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(topic.clone());
    }

    /// Ticks published.
    pub fn ticks_in(&self) -> u64 {
        self.ticks_in.load(Ordering::Relaxed)
    }

    /// Inputs rejected, all reasons.
    pub fn parse_errors(&self) -> u64 {
        self.rejects.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Inputs rejected for `reason`.
    pub fn parse_errors_for(&self, reason: RejectReason) -> u64 {
        self.rejects[reason.index()].load(Ordering::Relaxed)
    }

    /// Upstream sequence discontinuities seen.
    pub fn upstream_gaps(&self) -> u64 {
        self.upstream_gaps.load(Ordering::Relaxed)
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
