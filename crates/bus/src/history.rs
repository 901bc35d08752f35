//! A topic's recent ticks, kept as the frames subscribers got, so a client that reconnects can be
//! sent exactly what it missed. Bounded by count and by age; what it holds is reported in bytes.

use std::collections::VecDeque;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

use tickcast_core::{Frame, NotRecovered, Seq};

/// Bounds of one topic's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryLimits {
    /// Most entries kept (ticks, and the `upstream` gap markers between them); 0 = no history.
    pub size: usize,
    /// Entries older than this are dropped and never replayed; zero = no age limit.
    pub ttl: Duration,
}

/// One kept frame: a tick, or an `upstream` gap marker.
#[derive(Debug)]
struct Entry {
    /// Its seq (for a marker, the last seq it covers).
    seq: Seq,
    /// For a marker, the first seq it covers.
    gap_from: Option<Seq>,
    /// When it was kept, for the age limit.
    at: Instant,
    frame: Frame,
}

impl Entry {
    fn first(&self) -> Seq {
        self.gap_from.unwrap_or(self.seq)
    }
}

/// One frame a recovery replays: a tick, or an `upstream` gap marker, as live subscribers got it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// Its seq (for a marker, the last seq it covers).
    pub seq: Seq,
    /// For an `upstream` gap marker, the first seq it covers; `None` for a tick.
    pub gap_from: Option<Seq>,
    /// The frame.
    pub frame: Frame,
}

/// Bytes one entry costs besides its frame.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>();

/// How much a change added to (or, negative, removed from) a history: for the bus's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Entries.
    pub entries: i64,
    /// Bytes: frames plus [`ENTRY_OVERHEAD`] each.
    pub bytes: i64,
}

impl AddAssign for Stored {
    fn add_assign(&mut self, o: Stored) {
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}

/// The ring of one topic's recent frames, oldest first, in seq order.
#[derive(Debug)]
pub(crate) struct History {
    limits: HistoryLimits,
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl History {
    pub(crate) fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    pub(crate) fn limits(&self) -> HistoryLimits {
        self.limits
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps tick `seq`.
    pub(crate) fn push(&mut self, seq: Seq, frame: &Frame, now: Instant) -> Stored {
        self.keep(seq, None, frame, now)
    }

    /// Keeps the `upstream` marker for seqs `from..=to`.
    pub(crate) fn push_gap(&mut self, from: Seq, to: Seq, frame: &Frame, now: Instant) -> Stored {
        self.keep(to, Some(from), frame, now)
    }

    fn keep(&mut self, seq: Seq, gap_from: Option<Seq>, frame: &Frame, now: Instant) -> Stored {
        if self.limits.size == 0 {
            return Stored::default();
        }
        let mut change = self.expire(now);
        while self.entries.len() >= self.limits.size {
            change += self.pop();
        }
        let cost = frame.len() + ENTRY_OVERHEAD;
        self.entries.push_back(Entry {
            seq,
            gap_from,
            at: now,
            frame: frame.clone(),
        });
        self.bytes += cost;
        change += Stored {
            entries: 1,
            bytes: cost as i64,
        };
        change
    }

    fn pop(&mut self) -> Stored {
        match self.entries.pop_front() {
            Some(e) => {
                let cost = e.frame.len() + ENTRY_OVERHEAD;
                self.bytes -= cost;
                Stored {
                    entries: -1,
                    bytes: -(cost as i64),
                }
            }
            None => Stored::default(),
        }
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        !self.limits.ttl.is_zero() && now.saturating_duration_since(e.at) > self.limits.ttl
    }

    /// Drops every entry (the seq space they belong to ended); returns what was freed.
    pub(crate) fn clear(&mut self) -> Stored {
        let freed = Stored {
            entries: -(self.entries.len() as i64),
            bytes: -(self.bytes as i64),
        };
        self.entries = VecDeque::new();
        self.bytes = 0;
        freed
    }

    /// Drops the entries past their age; returns what was freed.
    pub(crate) fn expire(&mut self, now: Instant) -> Stored {
        let mut change = Stored::default();
        while self.entries.front().is_some_and(|e| self.expired(e, now)) {
            change += self.pop();
        }
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            // A topic gone quiet gives its ring back.
            self.entries = VecDeque::new();
        }
        change
    }

    /// Every frame after seq `from`, oldest first, if the history still holds all of them (its
    /// oldest live entry starts at or before `from + 1`). The caller has checked that `from` is
    /// below the latest seq.
    pub(crate) fn after(&self, from: Seq, now: Instant) -> Result<Vec<Replayed>, NotRecovered> {
        if self.limits.size == 0 {
            return Err(NotRecovered::NoHistory);
        }
        let live = self.entries.iter().skip_while(|e| self.expired(e, now));
        let mut frames = Vec::new();
        let mut first = true;
        for e in live {
            if first {
                if e.first() > from.next() {
                    return Err(NotRecovered::TooOld);
                }
                first = false;
            }
            if e.seq > from {
                frames.push(Replayed {
                    seq: e.seq,
                    gap_from: e.gap_from,
                    frame: e.frame.clone(),
                });
            }
        }
        if first {
            return Err(NotRecovered::TooOld);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame::text(format!("{{\"seq\":{seq}}}").as_bytes())
    }

    fn seqs(frames: &[Replayed]) -> Vec<String> {
        frames
            .iter()
            .map(|r| String::from_utf8_lossy(r.frame.payload()).into_owned())
            .collect()
    }

    fn filled(size: usize, ttl: Duration, n: u64, now: Instant) -> History {
        let mut h = History::new(HistoryLimits { size, ttl });
        for s in 1..=n {
            h.push(Seq(s), &frame(s), now);
        }
        h
    }

    #[test]
    fn keeps_the_newest_size_entries_and_counts_their_bytes() {
        let now = Instant::now();
        let h = filled(3, Duration::ZERO, 10, now);
        assert_eq!(h.len(), 3);
        let expected: usize = (8..=10).map(|s| frame(s).len() + ENTRY_OVERHEAD).sum();
        assert_eq!(h.bytes(), expected);
        assert_eq!(
            seqs(&h.after(Seq(7), now).unwrap()),
            ["{\"seq\":8}", "{\"seq\":9}", "{\"seq\":10}"]
        );
        assert_eq!(seqs(&h.after(Seq(9), now).unwrap()), ["{\"seq\":10}"]);
        assert_eq!(h.after(Seq(6), now), Err(NotRecovered::TooOld));
    }

    #[test]
    fn size_zero_keeps_nothing() {
        let now = Instant::now();
        let h = filled(0, Duration::ZERO, 5, now);
        assert_eq!(h.len(), 0);
        assert_eq!(h.after(Seq(4), now), Err(NotRecovered::NoHistory));
    }

    #[test]
    fn entries_past_their_age_are_not_replayed_and_are_freed() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut h = History::new(HistoryLimits { size: 100, ttl });
        h.push(Seq(1), &frame(1), t0);
        h.push(Seq(2), &frame(2), t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(12);
        assert_eq!(h.after(Seq(0), later), Err(NotRecovered::TooOld));
        assert_eq!(seqs(&h.after(Seq(1), later).unwrap()), ["{\"seq\":2}"]);
        let freed = h.expire(later);
        assert_eq!(freed.entries, -1);
        assert_eq!(h.len(), 1);
        let freed = h.expire(t0 + Duration::from_secs(20));
        assert_eq!(freed.entries, -1);
        assert_eq!((h.len(), h.bytes()), (0, 0));
    }

    #[test]
    fn an_upstream_gap_marker_is_replayed_in_place() {
        let now = Instant::now();
        let mut h = filled(10, Duration::ZERO, 3, now);
        let marker = Frame::text(b"gap 4..5");
        h.push_gap(Seq(4), Seq(5), &marker, now);
        h.push(Seq(6), &frame(6), now);
        assert_eq!(
            seqs(&h.after(Seq(3), now).unwrap()),
            ["gap 4..5", "{\"seq\":6}"]
        );
        assert_eq!(seqs(&h.after(Seq(5), now).unwrap()), ["{\"seq\":6}"]);
    }
}
