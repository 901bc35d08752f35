//! Counters and latency histograms: what each receive thread records, and how the
//! orchestrator adds the threads' reports together.
//!
//! Threads never share counters. Each keeps its own plain numbers and sends cumulative copies
//! (plus the latency samples since its last report) over a channel, so the receive path has no
//! atomics or locks, and a lost or late report cannot skew totals.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::message::{GapReason, Kind};

/// Highest latency a histogram holds, in microseconds (a minute); larger values saturate.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// Connections are either fast (read everything) or slow (simulated lagging readers); their
/// figures are kept apart so backpressure on slow readers does not hide in the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads as fast as it can.
    Fast = 0,
    /// Reads at a capped rate or stalls.
    Slow = 1,
}

impl Class {
    /// Both classes, in index order.
    pub const ALL: [Class; 2] = [Class::Fast, Class::Slow];

    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Fast => "fast",
            Class::Slow => "slow",
        }
    }
}

/// A histogram for microsecond latencies.
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2*low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Counters of one class of connections (cumulative since the start of the run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassCounters {
    /// Connections planned for this class.
    pub planned: u64,
    /// Connections that completed the upgrade and sent their subscription.
    pub connected: u64,
    /// Connections that failed to open, by stage (`refused`, `timeout`, ...).
    pub failed: BTreeMap<&'static str, u64>,
    /// Connections planned but never tried because the ramp timed out.
    pub not_started: u64,
    /// Connections closed or broken after opening, by close code or cause (`1008`, `eof`, ...).
    pub disconnects: BTreeMap<String, u64>,
    /// Ticks received, all phases.
    pub ticks: u64,
    /// Ticks received inside the measured window.
    pub ticks_window: u64,
    /// Wire bytes (frame headers + payloads) inside the window.
    pub bytes_window: u64,
    /// First tick per topic per connection (the snapshot, or the first live tick when the topic
    /// had no data yet): sets the sequence baseline, not checked, no latency sample.
    pub baselines: u64,
    /// Missing sequence numbers, announced by a gap marker or not, all phases.
    pub gaps: u64,
    /// Missing sequence numbers inside the window, announced or not.
    pub gaps_window: u64,
    /// Ticks inside the window that followed missing seqs, announced or not (one gap event may
    /// miss many seqs).
    pub gap_events_window: u64,
    /// Gap markers received, by [`GapReason::index`], all phases.
    pub gap_markers: [u64; GapReason::COUNT],
    /// Gap markers received inside the window, by reason.
    pub gap_markers_window: [u64; GapReason::COUNT],
    /// Seqs the window's gap markers announced missing (beyond what was already accounted
    /// for), by reason.
    pub announced_seqs_window: [u64; GapReason::COUNT],
    /// Gap events inside the window whose every missing seq markers announced first.
    pub announced_gaps_window: u64,
    /// Missing seqs no marker announced (a server bug), all phases.
    pub unannounced_gaps: u64,
    /// Missing seqs no marker announced, inside the window.
    pub unannounced_gaps_window: u64,
    /// Jumps (of a tick or a late marker) over unannounced seqs, inside the window.
    pub unannounced_gap_events_window: u64,
    /// Ticks whose seq was <= the highest accounted for (duplicate, reordered, or announced
    /// missing by a marker), all phases.
    pub reorders: u64,
    /// Gap markers whose `from` was not the next seq expected (late, overlapping or repeated),
    /// all phases.
    pub marker_reorders: u64,
    /// Ticks or gap markers for a topic this connection did not subscribe to.
    pub unexpected_topic: u64,
    /// Ticks missing `topic` or `seq`.
    pub bad_ticks: u64,
    /// Gap markers missing `topic`, `from` or `to`, or with `from` > `to`.
    pub bad_markers: u64,
    /// Messages by kind ([`Kind::index`]), all phases (data kinds too, except ticks).
    pub kinds: [u64; Kind::COUNT],
    /// `book` messages inside the window.
    pub book_messages_window: u64,
    /// Book snapshots applied, all phases.
    pub book_snapshots: u64,
    /// Book messages whose checksum matched the book kept from them, all phases.
    pub books_verified: u64,
    /// Book messages verified inside the window.
    pub books_verified_window: u64,
    /// Book messages whose checksum did not match (a server bug), all phases.
    pub book_checksum_mismatches: u64,
    /// `resync` gap markers followed by a snapshot at the next seq, all phases.
    pub book_resyncs: u64,
    /// Book messages that break the protocol's promises: a delta before any snapshot or right
    /// after a gap marker, an unusable message, a crossed book, a resync not followed by its
    /// snapshot. All phases.
    pub book_errors: u64,
    /// Deltas not verified because the book was already wrong (after a mismatch, an error or an
    /// unannounced gap) until the next snapshot, all phases.
    pub book_unverified: u64,
    /// `trade` messages inside the window.
    pub trades_window: u64,
    /// Trade seqs announced dropped (`gap` reason `dropped` on a trade topic) in the window.
    pub trades_dropped_announced_window: u64,
    /// Trade seqs announced dropped, all phases.
    pub trades_dropped_announced: u64,
    /// Trades at or below the highest seq accounted for (duplicates), all phases.
    pub trade_duplicates: u64,
}

impl ClassCounters {
    /// Adds another thread's counters.
    pub fn add(&mut self, o: &ClassCounters) {
        self.planned += o.planned;
        self.connected += o.connected;
        for (k, v) in &o.failed {
            *self.failed.entry(k).or_default() += v;
        }
        self.not_started += o.not_started;
        for (k, v) in &o.disconnects {
            *self.disconnects.entry(k.clone()).or_default() += v;
        }
        self.ticks += o.ticks;
        self.ticks_window += o.ticks_window;
        self.bytes_window += o.bytes_window;
        self.baselines += o.baselines;
        self.gaps += o.gaps;
        self.gaps_window += o.gaps_window;
        self.gap_events_window += o.gap_events_window;
        add_each(&mut self.gap_markers, &o.gap_markers);
        add_each(&mut self.gap_markers_window, &o.gap_markers_window);
        add_each(&mut self.announced_seqs_window, &o.announced_seqs_window);
        self.announced_gaps_window += o.announced_gaps_window;
        self.unannounced_gaps += o.unannounced_gaps;
        self.unannounced_gaps_window += o.unannounced_gaps_window;
        self.unannounced_gap_events_window += o.unannounced_gap_events_window;
        self.reorders += o.reorders;
        self.marker_reorders += o.marker_reorders;
        self.unexpected_topic += o.unexpected_topic;
        self.bad_ticks += o.bad_ticks;
        self.bad_markers += o.bad_markers;
        add_each(&mut self.kinds, &o.kinds);
        self.book_messages_window += o.book_messages_window;
        self.book_snapshots += o.book_snapshots;
        self.books_verified += o.books_verified;
        self.books_verified_window += o.books_verified_window;
        self.book_checksum_mismatches += o.book_checksum_mismatches;
        self.book_resyncs += o.book_resyncs;
        self.book_errors += o.book_errors;
        self.book_unverified += o.book_unverified;
        self.trades_window += o.trades_window;
        self.trades_dropped_announced_window += o.trades_dropped_announced_window;
        self.trades_dropped_announced += o.trades_dropped_announced;
        self.trade_duplicates += o.trade_duplicates;
    }

    /// Gap markers of every reason, all phases.
    pub fn gap_markers_total(&self) -> u64 {
        self.gap_markers.iter().sum()
    }

    /// Failed connection attempts of all stages.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Disconnects of all causes.
    pub fn disconnects_total(&self) -> u64 {
        self.disconnects.values().sum()
    }

    /// Connections that are (as far as we know) still open.
    pub fn open(&self) -> u64 {
        self.connected.saturating_sub(self.disconnects_total())
    }

    /// Connections whose opening has finished one way or the other.
    pub fn settled(&self) -> u64 {
        self.connected + self.failed_total() + self.not_started
    }
}

fn add_each<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// One receive thread's report to the orchestrator.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    /// Which thread.
    pub worker: usize,
    /// Cumulative counters per [`Class`].
    pub counters: [ClassCounters; 2],
    /// Fast-class latency samples since the previous report (all phases), for the timeline.
    pub interval_latency: Histogram<u64>,
    /// The thread's first connection error, if any (for an early, specific error message).
    pub first_error: Option<String>,
    /// Set on the thread's last report.
    pub last: Option<Box<FinalHistograms>>,
}

/// Histograms sent once, at the end.
#[derive(Debug, Clone)]
pub struct FinalHistograms {
    /// Window latency per [`Class`], microseconds.
    pub window_latency: [Histogram<u64>; 2],
    /// Time from starting TCP connect to the 101 response, microseconds.
    pub handshake: Histogram<u64>,
    /// First few connection error messages, for the report.
    pub error_samples: Vec<String>,
    /// First few book checksum mismatches and errors, for the report.
    pub book_samples: Vec<String>,
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: u64,
    /// Smallest sample.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a histogram; `None` when it holds no samples.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        // hdrhistogram reports a bucket's highest equivalent value; clamp so p50 <= ... <= max
        // holds exactly even when the top samples share a bucket with max.
        let max = h.max() as f64;
        let q = |p: f64| (h.value_at_quantile(p) as f64).min(max);
        Some(Self {
            samples: h.len(),
            min: h.min() as f64,
            mean: h.mean(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max,
        })
    }
}

/// Bytes a server→client frame of `payload` bytes takes on the wire (unmasked header + payload).
#[inline]
pub fn wire_len(payload: usize) -> u64 {
    let head = if payload < 126 {
        2
    } else if payload < 65_536 {
        4
    } else {
        10
    };
    (payload + head) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_counters() {
        let mut a = ClassCounters {
            connected: 2,
            ticks: 10,
            ..Default::default()
        };
        a.disconnects.insert("1008".into(), 1);
        a.failed.insert("refused", 1);
        a.gap_markers[GapReason::Dropped.index()] = 2;
        a.unannounced_gaps = 1;
        let mut b = a.clone();
        b.kinds[Kind::Pong.index()] = 3;
        a.add(&b);
        assert_eq!(a.gap_markers[GapReason::Dropped.index()], 4);
        assert_eq!(a.gap_markers_total(), 4);
        assert_eq!(a.unannounced_gaps, 2);
        assert_eq!(a.connected, 4);
        assert_eq!(a.ticks, 20);
        assert_eq!(a.disconnects["1008"], 2);
        assert_eq!(a.failed_total(), 2);
        assert_eq!(a.open(), 2);
        assert_eq!(a.settled(), 6);
        assert_eq!(a.kinds[Kind::Pong.index()], 3);
    }

    #[test]
    fn summary_is_ordered() {
        let mut h = latency_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 37 % 5_000 + 1).unwrap();
        }
        h.record(123_457).unwrap();
        let s = LatencySummary::of(&h).unwrap();
        assert!(
            s.min <= s.p50
                && s.p50 <= s.p90
                && s.p90 <= s.p99
                && s.p99 <= s.p999
                && s.p999 <= s.max
        );
        assert_eq!(s.samples, 10_001);
        assert!(LatencySummary::of(&latency_histogram()).is_none());
    }

    #[test]
    fn wire_lengths() {
        assert_eq!(wire_len(125), 127);
        assert_eq!(wire_len(126), 130);
        assert_eq!(wire_len(70_000), 70_010);
    }
}
