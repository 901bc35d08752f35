//! When the leader appends a snapshot of a book beside its deltas: at most once per
//! `book_snapshot_every` for each book it updated, and for every book right after a takeover.
//! A gateway's copy of a book that lost sync (it started late, missed a delta, or its checksum
//! differed) takes the next one; a copy in sync ignores them. A pure schedule, testable without
//! NATS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tickcast_core::Topic;

/// The last snapshot appended per book, and how often one is due.
#[derive(Debug)]
pub(super) struct SnapshotSchedule {
    every: Duration,
    /// Bounded by the bus's topic limit (one entry per book this node leads).
    sent: HashMap<Topic, Instant>,
}

impl SnapshotSchedule {
    pub(super) fn new(every: Duration) -> Self {
        Self {
            every,
            sent: HashMap::new(),
        }
    }

    /// Whether `book`, just updated at `now`, is due a snapshot; if so it counts as sent.
    pub(super) fn due(&mut self, book: &Topic, now: Instant) -> bool {
        match self.sent.get_mut(book) {
            Some(at) if now.saturating_duration_since(*at) < self.every => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                self.sent.insert(book.clone(), now);
                true
            }
        }
    }

    /// Makes every book due at its next update (a new leader: gateways resync from it).
    pub(super) fn reset(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_book_is_due_on_its_first_update_then_once_per_interval_and_again_after_a_reset() {
        let mut s = SnapshotSchedule::new(Duration::from_secs(1));
        let (a, b) = (
            Topic::new("book.A").expect("topic"),
            Topic::new("book.B").expect("topic"),
        );
        let t0 = Instant::now();
        assert!(s.due(&a, t0));
        assert!(!s.due(&a, t0 + Duration::from_millis(999)));
        assert!(
            s.due(&b, t0 + Duration::from_millis(999)),
            "each book its own"
        );
        assert!(s.due(&a, t0 + Duration::from_secs(1)));
        assert!(!s.due(&a, t0 + Duration::from_millis(1500)));
        s.reset();
        assert!(s.due(&a, t0 + Duration::from_millis(1500)));
    }
}
