//! The normalized tick every feed produces and every subscriber receives.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::topic::Topic;

/// Per-topic sequence number: 1 for a topic's first tick, +1 for each one after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// Unix time in microseconds: exact in JavaScript numbers (< 2^53) until the year 2255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TsMicros(pub u64);

impl TsMicros {
    /// Zero: no time, for frames whose latency is not measured (markers, replays).
    pub const UNMEASURED: TsMicros = TsMicros(0);

    /// The current wall-clock time.
    pub fn now() -> TsMicros {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        TsMicros(d.as_micros() as u64)
    }
}

/// A price as the feed gave it. Sent as the shortest decimal that round-trips, so a feed that quotes
/// `189.12` is sent as `189.12`, never `189.12000000000001`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Price(pub f64);

/// A traded or quoted size; fractional for crypto feeds, whole for equities.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Size(pub f64);

/// One normalized market-data update for one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Where the tick is routed, e.g. `ticker.AAPL`.
    pub topic: Topic,
    /// Assigned by the ingester, per topic.
    pub seq: Seq,
    /// Ingest time, used by clients to measure latency.
    pub ts: TsMicros,
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Last traded price.
    pub last: Price,
    /// Size of the last trade.
    pub size: Size,
}
