//! Sequence checking of one topic on one connection: ticks against the previous tick and the
//! server's `gap` markers (protocol v2).
//!
//! tickcast numbers each topic's ticks 1, 2, 3, ... When a subscriber's stream is going to skip
//! seqs for any reason other than a throttle it asked for (its queue conflated or dropped ticks,
//! or the feed itself skipped), the server first sends `{"type":"gap","from":F,"to":T,...}` for
//! exactly the seqs that will not arrive, before that topic's next tick. So a client can tell a
//! loss it was told about from one it was not:
//!
//! - an **announced** gap: the seqs between two ticks were all covered, in order, by markers that
//!   arrived in between;
//! - an **unannounced** gap: a tick (or a marker) skipped seqs that no marker covered. The server
//!   promises this never happens; one is a server bug.
//!
//! [`TopicSeq`] keeps the highest seq accounted for (received, or announced missing), so a marker
//! moves it forward like a tick would. The functions are pure: the receive loop turns their
//! outcomes into counters.

/// Sequence state of one topic on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicSeq {
    /// Highest seq accounted for: the last tick's, or the last one a marker announced missing.
    /// Meaningless until `seen`.
    last: u64,
    /// A tick or a marker of this topic has arrived (`last` is set).
    seen: bool,
    /// A tick of this topic has arrived (the first one is the baseline).
    ticked: bool,
    /// Markers moved `last` forward since the last tick: the next tick closes an announced gap.
    announced: bool,
}

/// How a tick fits the topic's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickCheck {
    /// Nothing came before it: it sets the baseline and is not checked.
    Unchecked,
    /// The next seq, nothing skipped.
    Next,
    /// The next seq after markers that covered every seq since the previous tick.
    Announced,
    /// Skipped `missing` seqs that no marker announced (all of the jump, or what lies beyond the
    /// markers that came first).
    Unannounced {
        /// Seqs skipped without a marker.
        missing: u64,
    },
    /// Not above the highest seq accounted for: a duplicate, a reordered tick, or a tick a
    /// marker had said would not arrive. The state is left as it was.
    Reorder,
}

/// What [`TopicSeq::tick`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickOutcome {
    /// The topic's first tick on this connection: the snapshot (or first live tick), counted as
    /// a baseline and never a latency sample. It is still checked when a marker came before it.
    pub first: bool,
    /// How it fits.
    pub check: TickCheck,
}

/// What [`TopicSeq::marker`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarkerOutcome {
    /// Seqs above the highest one accounted for that this marker announces.
    pub announced: u64,
    /// Seqs between the highest one accounted for and the marker's `from` that nothing
    /// announced (the marker came late): an unannounced gap.
    pub unannounced: u64,
    /// `from` was not the next seq expected: the marker overlaps seqs already received or
    /// announced, or came after an unannounced skip. Never set for a topic's first message.
    pub misplaced: bool,
}

impl TopicSeq {
    /// A topic nothing has arrived for yet.
    pub const fn new() -> Self {
        Self {
            last: 0,
            seen: false,
            ticked: false,
            announced: false,
        }
    }

    /// Accounts for a tick with seq `seq`.
    #[inline]
    pub fn tick(&mut self, seq: u64) -> TickOutcome {
        let first = !self.ticked;
        self.ticked = true;
        if !self.seen {
            self.seen = true;
            self.last = seq;
            return TickOutcome {
                first,
                check: TickCheck::Unchecked,
            };
        }
        let check = if seq <= self.last {
            return TickOutcome {
                first,
                check: TickCheck::Reorder,
            };
        } else if seq == self.last + 1 {
            if self.announced {
                TickCheck::Announced
            } else {
                TickCheck::Next
            }
        } else {
            TickCheck::Unannounced {
                missing: seq - self.last - 1,
            }
        };
        self.last = seq;
        self.announced = false;
        TickOutcome { first, check }
    }

    /// Accounts for a marker saying seqs `from..=to` will not arrive; `None` (state unchanged)
    /// when `from > to` or `from` is 0 (seqs start at 1), which no valid marker has.
    pub fn marker(&mut self, from: u64, to: u64) -> Option<MarkerOutcome> {
        if from > to || from == 0 {
            return None;
        }
        if !self.seen {
            // Before any tick (say the snapshot was conflated away): the marker sets the
            // baseline; the next tick must be `to + 1`.
            self.seen = true;
            self.last = to;
            self.announced = true;
            return Some(MarkerOutcome {
                announced: to - from + 1,
                ..MarkerOutcome::default()
            });
        }
        let expected = self.last.saturating_add(1);
        let mut out = MarkerOutcome {
            misplaced: from != expected,
            ..MarkerOutcome::default()
        };
        if to <= self.last {
            // Covers nothing new (repeated, or about seqs that already arrived).
            return Some(out);
        }
        out.unannounced = from.saturating_sub(expected);
        out.announced = to - from.max(expected) + 1;
        self.last = to;
        self.announced = true;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(t: &mut TopicSeq, seqs: &[u64]) -> Vec<TickCheck> {
        seqs.iter().map(|&s| t.tick(s).check).collect()
    }

    #[test]
    fn first_tick_is_the_unchecked_baseline() {
        let mut t = TopicSeq::new();
        assert_eq!(
            t.tick(41),
            TickOutcome {
                first: true,
                check: TickCheck::Unchecked
            }
        );
        assert_eq!(
            t.tick(42),
            TickOutcome {
                first: false,
                check: TickCheck::Next
            }
        );
    }

    #[test]
    fn a_jump_without_a_marker_is_unannounced() {
        let mut t = TopicSeq::new();
        assert_eq!(
            ticks(&mut t, &[10, 11, 15, 16]),
            [
                TickCheck::Unchecked,
                TickCheck::Next,
                TickCheck::Unannounced { missing: 3 },
                TickCheck::Next
            ]
        );
    }

    #[test]
    fn a_marker_covering_exactly_the_jump_announces_it() {
        let mut t = TopicSeq::new();
        t.tick(1234);
        let m = t.marker(1235, 1240).unwrap();
        assert_eq!(
            m,
            MarkerOutcome {
                announced: 6,
                unannounced: 0,
                misplaced: false
            }
        );
        assert_eq!(t.tick(1241).check, TickCheck::Announced);
        // The announcement is used up: the next jump is judged on its own.
        assert_eq!(t.tick(1243).check, TickCheck::Unannounced { missing: 1 });
    }

    #[test]
    fn chained_markers_announce_one_jump() {
        // drop_oldest can drop a tick right behind a marker that already left: two markers.
        let mut t = TopicSeq::new();
        t.tick(5);
        assert_eq!(t.marker(6, 8).unwrap().announced, 3);
        let m = t.marker(9, 9).unwrap();
        assert_eq!((m.announced, m.unannounced, m.misplaced), (1, 0, false));
        assert_eq!(t.tick(10).check, TickCheck::Announced);
    }

    #[test]
    fn a_marker_short_of_the_jump_leaves_the_rest_unannounced() {
        let mut t = TopicSeq::new();
        t.tick(5);
        t.marker(6, 7).unwrap();
        assert_eq!(t.tick(10).check, TickCheck::Unannounced { missing: 2 });
        assert_eq!(t.tick(11).check, TickCheck::Next);
    }

    #[test]
    fn a_tick_the_marker_said_would_not_arrive_is_a_reorder() {
        let mut t = TopicSeq::new();
        t.tick(5);
        t.marker(6, 8).unwrap();
        assert_eq!(t.tick(7).check, TickCheck::Reorder);
        assert_eq!(t.tick(9).check, TickCheck::Announced);
    }

    #[test]
    fn ticks_at_or_below_the_last_are_reorders_and_change_nothing() {
        let mut t = TopicSeq::new();
        assert_eq!(
            ticks(&mut t, &[10, 11, 11, 9, 12]),
            [
                TickCheck::Unchecked,
                TickCheck::Next,
                TickCheck::Reorder,
                TickCheck::Reorder,
                TickCheck::Next
            ]
        );
    }

    #[test]
    fn a_late_marker_is_misplaced_and_what_it_skipped_unannounced() {
        let mut t = TopicSeq::new();
        t.tick(5);
        // 6 and 7 vanish without a word, then 8..=9 are announced.
        let m = t.marker(8, 9).unwrap();
        assert_eq!(
            m,
            MarkerOutcome {
                announced: 2,
                unannounced: 2,
                misplaced: true
            }
        );
        assert_eq!(t.tick(10).check, TickCheck::Announced);
    }

    #[test]
    fn an_overlapping_or_repeated_marker_is_misplaced() {
        let mut t = TopicSeq::new();
        t.tick(5);
        // Overlaps 5, which arrived: only 6..=7 are new.
        let m = t.marker(5, 7).unwrap();
        assert_eq!(
            m,
            MarkerOutcome {
                announced: 2,
                unannounced: 0,
                misplaced: true
            }
        );
        // The same marker again covers nothing new.
        assert_eq!(
            t.marker(6, 7).unwrap(),
            MarkerOutcome {
                announced: 0,
                unannounced: 0,
                misplaced: true
            }
        );
        assert_eq!(t.tick(8).check, TickCheck::Announced);
    }

    #[test]
    fn a_marker_before_the_first_tick_sets_the_baseline() {
        let mut t = TopicSeq::new();
        let m = t.marker(3, 6).unwrap();
        assert_eq!(
            m,
            MarkerOutcome {
                announced: 4,
                unannounced: 0,
                misplaced: false
            }
        );
        assert_eq!(
            t.tick(7),
            TickOutcome {
                first: true,
                check: TickCheck::Announced
            }
        );
        let mut t = TopicSeq::new();
        t.marker(3, 6).unwrap();
        assert_eq!(
            t.tick(9),
            TickOutcome {
                first: true,
                check: TickCheck::Unannounced { missing: 2 }
            }
        );
    }

    #[test]
    fn invalid_markers_change_nothing() {
        let mut t = TopicSeq::new();
        t.tick(5);
        let before = t;
        assert_eq!(t.marker(9, 8), None);
        assert_eq!(t.marker(0, 3), None);
        assert_eq!(t, before);
        assert_eq!(t.tick(6).check, TickCheck::Next);
    }

    #[test]
    fn huge_seqs_do_not_overflow() {
        let mut t = TopicSeq::new();
        t.tick(u64::MAX - 1);
        let m = t.marker(u64::MAX, u64::MAX).unwrap();
        assert_eq!((m.announced, m.misplaced), (1, false));
        assert_eq!(t.tick(u64::MAX).check, TickCheck::Reorder);
        let mut t = TopicSeq::new();
        t.tick(u64::MAX);
        assert_eq!(t.marker(5, u64::MAX).unwrap().announced, 0);
        assert_eq!(t.tick(u64::MAX).check, TickCheck::Reorder);
    }
}
