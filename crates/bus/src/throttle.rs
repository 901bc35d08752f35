//! Throttled streams' clocks: when each throttle interval next delivers, and which topics have a
//! tick waiting for it.
//!
//! Every interval runs on one grid per shard (boundaries at `base + k * every`), and a throttled
//! tick leaves at the first boundary after it arrived. So all the topics a client throttles at the
//! same rate leave together, in one write, and two deliveries of a topic are never closer than the
//! interval. The grid costs a tick up to one interval of delay (Binance's `@100ms` streams work
//! the same way).

use std::time::{Duration, Instant};

use crate::topic::TopicId;

/// The first grid boundary strictly after `now`, for a grid of `every` starting at `base`.
pub(crate) fn next_boundary(base: Instant, every: Duration, now: Instant) -> Instant {
    let every_ns = every.as_nanos().max(1);
    let elapsed = now.saturating_duration_since(base).as_nanos();
    let k = elapsed / every_ns + 1;
    // k * every fits a u64 of nanoseconds for any uptime below ~584 years.
    base + Duration::from_nanos((k * every_ns).min(u128::from(u64::MAX)) as u64)
}

/// One interval's clock: its next boundary and the topics with a tick held for it.
#[derive(Debug)]
struct Clock {
    every: Duration,
    next: Instant,
    due: Vec<TopicId>,
}

/// The clocks of one shard's throttled streams.
#[derive(Debug)]
pub(crate) struct Clocks {
    base: Instant,
    clocks: Vec<Clock>,
    /// The earliest boundary with a topic due, cached so the dispatcher's check is one compare.
    earliest: Option<Instant>,
}

impl Clocks {
    /// No clocks yet; grids start at `base`.
    pub(crate) fn new(base: Instant) -> Self {
        Self {
            base,
            clocks: Vec::new(),
            earliest: None,
        }
    }

    /// Records that `topic` now holds a tick for interval `every` (call it once per held tick
    /// that had none before).
    pub(crate) fn hold(&mut self, topic: TopicId, every: Duration, now: Instant) {
        let clock = match self.clocks.iter_mut().position(|c| c.every == every) {
            Some(i) => &mut self.clocks[i],
            None => {
                self.clocks.push(Clock {
                    every,
                    next: now,
                    due: Vec::new(),
                });
                self.clocks.last_mut().expect("just pushed")
            }
        };
        if clock.due.is_empty() {
            clock.next = next_boundary(self.base, every, now);
        }
        clock.due.push(topic);
        self.earliest = Some(self.earliest.map_or(clock.next, |e| e.min(clock.next)));
    }

    /// When the next held tick is due, if any.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.earliest
    }

    /// Takes the (interval, topic) pairs due at `now` into `out`.
    pub(crate) fn take_due(&mut self, now: Instant, out: &mut Vec<(Duration, TopicId)>) {
        if self.earliest.is_none_or(|e| e > now) {
            return;
        }
        let mut earliest: Option<Instant> = None;
        for clock in &mut self.clocks {
            if clock.due.is_empty() {
                continue;
            }
            if clock.next <= now {
                out.extend(clock.due.drain(..).map(|t| (clock.every, t)));
            } else {
                earliest = Some(earliest.map_or(clock.next, |e| e.min(clock.next)));
            }
        }
        self.earliest = earliest;
        // An interval nobody holds a tick for keeps its slot only while few exist: clients pick
        // intervals, and this list is scanned per held tick.
        if self.clocks.len() > 16 {
            self.clocks.retain(|c| !c.due.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_on_the_grid_and_strictly_after_now() {
        let base = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(next_boundary(base, ms(250), base), base + ms(250));
        assert_eq!(next_boundary(base, ms(250), base + ms(1)), base + ms(250));
        assert_eq!(next_boundary(base, ms(250), base + ms(250)), base + ms(500));
        assert_eq!(
            next_boundary(base, ms(250), base + ms(999)),
            base + ms(1000)
        );
        assert_eq!(
            next_boundary(base, ms(10), base + ms(10_001)),
            base + ms(10_010)
        );
    }

    #[test]
    fn topics_held_in_one_interval_leave_together_at_its_boundary() {
        let base = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Clocks::new(base);
        assert_eq!(c.earliest(), None);
        c.hold(TopicId(1), ms(250), base + ms(10));
        c.hold(TopicId(2), ms(250), base + ms(200));
        c.hold(TopicId(3), ms(1000), base + ms(20));
        assert_eq!(c.earliest(), Some(base + ms(250)));
        let mut out = Vec::new();
        c.take_due(base + ms(249), &mut out);
        assert!(out.is_empty());
        c.take_due(base + ms(250), &mut out);
        assert_eq!(out, vec![(ms(250), TopicId(1)), (ms(250), TopicId(2))]);
        assert_eq!(c.earliest(), Some(base + ms(1000)));
        // A tick held after the boundary waits for the next one.
        c.hold(TopicId(1), ms(250), base + ms(260));
        assert_eq!(c.earliest(), Some(base + ms(500)));
        out.clear();
        c.take_due(base + ms(1000), &mut out);
        assert_eq!(out, vec![(ms(250), TopicId(1)), (ms(1000), TopicId(3))]);
        assert_eq!(c.earliest(), None);
    }
}
