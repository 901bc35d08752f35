//! The inbound message rate limit of one connection: a token bucket plus a count of consecutive
//! violations.
//!
//! Each client text or binary message takes a token; tokens come back at `per_second` up to `burst`.
//! A message without a token is answered with `error` `rate_limited` (and not served); a client that
//! keeps going for more than `max_violations` messages in a row is closed with 1008. Control frames
//! (ping/pong/close) are not counted: fastwebsockets answers them and the priority-lane backpressure
//! already bounds what a ping flood can queue.

use std::time::Instant;

/// Rate-limit settings; `per_second == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: u32,
    /// Messages that may arrive at once after a quiet period.
    pub burst: u32,
    /// Over-limit messages in a row answered with `rate_limited` before the connection closes 1008.
    pub max_violations: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 100,
            // A client may subscribe its whole topic allowance (1,024 by default) one message per
            // topic right after it connects, as dashboards restoring a watchlist do.
            burst: 1100,
            max_violations: 20,
        }
    }
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Allow,
    /// Answer `rate_limited` and drop it.
    Refuse,
    /// Close the connection (1008).
    Close,
}

/// One connection's bucket; `Copy` so it lives in a `Cell` in the session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    /// `f32`, so the bucket and its session stay in a smaller allocation size class.
    tokens: f32,
    last: Instant,
    violations: u32,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> Self {
        Self {
            tokens: limit.burst.max(1) as f32,
            last: now,
            violations: 0,
        }
    }

    /// Takes a token for one message arriving at `now`.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) -> Verdict {
        if limit.per_second == 0 {
            return Verdict::Allow;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let cap = f64::from(limit.burst.max(1));
        let tokens = (f64::from(self.tokens) + elapsed * f64::from(limit.per_second)).min(cap);
        let allowed = tokens >= 1.0;
        self.tokens = (if allowed { tokens - 1.0 } else { tokens }) as f32;
        if allowed {
            self.violations = 0;
            return Verdict::Allow;
        }
        self.violations = self.violations.saturating_add(1);
        if self.violations > limit.max_violations {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10,
        burst: 3,
        max_violations: 2,
    };

    #[test]
    fn burst_then_refuse_then_close() {
        let t0 = Instant::now();
        let mut b = Bucket::new(&LIMIT, t0);
        let verdicts: Vec<_> = (0..6).map(|_| b.take(&LIMIT, t0)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Allow, Allow, Allow, Refuse, Refuse, Close]);
    }

    #[test]
    fn tokens_come_back_and_reset_the_violations() {
        let t0 = Instant::now();
        let mut b = Bucket::new(&LIMIT, t0);
        for _ in 0..3 {
            assert_eq!(b.take(&LIMIT, t0), Verdict::Allow);
        }
        assert_eq!(b.take(&LIMIT, t0), Verdict::Refuse);
        // 100 ms at 10/s is one token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.take(&LIMIT, t1), Verdict::Allow);
        assert_eq!(b.take(&LIMIT, t1), Verdict::Refuse);
        assert_eq!(b.take(&LIMIT, t1), Verdict::Refuse);
        assert_eq!(b.take(&LIMIT, t1), Verdict::Close);
        // Never more than the burst, however long the pause.
        let mut b = Bucket::new(&LIMIT, t0);
        let later = t0 + Duration::from_secs(3600);
        let allowed = (0..10)
            .filter(|_| b.take(&LIMIT, later) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn zero_rate_is_off() {
        let off = RateLimit {
            per_second: 0,
            ..LIMIT
        };
        let t0 = Instant::now();
        let mut b = Bucket::new(&off, t0);
        assert!((0..1000).all(|_| b.take(&off, t0) == Verdict::Allow));
    }
}
