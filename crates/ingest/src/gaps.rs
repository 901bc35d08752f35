//! Upstream sequence tracking: a source that numbers its messages lets us see what it lost.
//!
//! tickcast always assigns its own per-topic seq; the upstream one is only checked, so a jump is
//! logged and counted (`tickcast_feed_upstream_gaps_total`) and never hidden or "repaired": the
//! sink leaves as many of tickcast's seqs unused, which subscribers see as an `upstream` gap.

use std::collections::HashMap;

/// How a source numbers its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqMode {
    /// +1 per message of the stream (tickcast's seq, Binance trade ids): any jump is a loss.
    Contiguous,
    /// Increasing but not dense (Coinbase `sequence`, Binance book update ids): only going back counts.
    Increasing,
}

/// What one upstream seq says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// The first seq seen for the stream.
    First,
    /// The expected next one.
    InOrder,
    /// Contiguous stream: `missed` messages never arrived.
    Gap {
        /// Messages skipped.
        missed: u64,
    },
    /// The same seq again (e.g. the snapshot after a reconnect when nothing happened meanwhile).
    Duplicate,
    /// Lower than the last one: the source restarted or reordered.
    Backwards {
        /// The last seq seen.
        last: u64,
    },
}

/// Last upstream seq per stream key (a topic id, or a topic id and a sub-stream).
#[derive(Debug, Default)]
pub struct GapTracker {
    last: HashMap<u64, u64>,
}

impl GapTracker {
    /// Records `seq` for stream `key` and classifies it.
    pub fn check(&mut self, key: u64, seq: u64, mode: SeqMode) -> SeqCheck {
        let Some(last) = self.last.insert(key, seq) else {
            return SeqCheck::First;
        };
        if seq == last {
            SeqCheck::Duplicate
        } else if seq < last {
            SeqCheck::Backwards { last }
        } else if mode == SeqMode::Contiguous && seq > last + 1 {
            SeqCheck::Gap {
                missed: seq - last - 1,
            }
        } else {
            SeqCheck::InOrder
        }
    }

    /// Forgets stream `key` (its seqs started over): its next seq counts as the first.
    pub fn forget(&mut self, key: u64) {
        self.last.remove(&key);
    }

    /// Like [`GapTracker::check`] for a contiguous stream that may replay older messages (a NATS
    /// gateway reading JetStream's last message per subject while live messages already flow):
    /// a seq at or below the last one is reported but not recorded, so the stream's position never
    /// moves back and the next live seq is not mistaken for a gap.
    pub fn check_forward(&mut self, key: u64, seq: u64) -> SeqCheck {
        match self.last.get(&key) {
            Some(&last) if seq == last => SeqCheck::Duplicate,
            Some(&last) if seq < last => SeqCheck::Backwards { last },
            _ => self.check(key, seq, SeqMode::Contiguous),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_contiguous_and_increasing_streams() {
        let mut g = GapTracker::default();
        assert_eq!(g.check(1, 10, SeqMode::Contiguous), SeqCheck::First);
        assert_eq!(g.check(1, 11, SeqMode::Contiguous), SeqCheck::InOrder);
        assert_eq!(
            g.check(1, 15, SeqMode::Contiguous),
            SeqCheck::Gap { missed: 3 }
        );
        assert_eq!(g.check(1, 15, SeqMode::Contiguous), SeqCheck::Duplicate);
        assert_eq!(
            g.check(1, 2, SeqMode::Contiguous),
            SeqCheck::Backwards { last: 15 }
        );
        // Streams are independent.
        assert_eq!(g.check(2, 100, SeqMode::Increasing), SeqCheck::First);
        assert_eq!(g.check(2, 190, SeqMode::Increasing), SeqCheck::InOrder);
        assert_eq!(
            g.check(2, 150, SeqMode::Increasing),
            SeqCheck::Backwards { last: 190 }
        );
    }

    #[test]
    fn check_forward_never_moves_back() {
        let mut g = GapTracker::default();
        assert_eq!(g.check_forward(1, 5), SeqCheck::First);
        assert_eq!(g.check_forward(1, 9), SeqCheck::Gap { missed: 3 });
        assert_eq!(g.check_forward(1, 7), SeqCheck::Backwards { last: 9 });
        assert_eq!(g.check_forward(1, 9), SeqCheck::Duplicate);
        assert_eq!(g.check_forward(1, 10), SeqCheck::InOrder);
    }
}
