//! Reconnect delays: exponential from `min` to `max`, with jitter so that many relays cut off by
//! the same upstream restart do not all reconnect in the same instant.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Exponential backoff with "equal jitter": each delay is uniform in `[d/2, d]` where `d` doubles
/// from `min` up to `max` with each failed attempt.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// Delays between `min` and `max`; `seed` varies the jitter between feeds and processes.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; each call doubles the next one, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        let d = self.min.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = d / 2;
        half + d.saturating_sub(half).mul_f64(self.rng.random::<f64>())
    }

    /// After a healthy connection: start again from `min`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_with_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), 1);
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        let caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, cap) in delays.iter().zip(caps) {
            assert!(*d >= ms(cap / 2) && *d <= ms(cap), "{d:?} vs cap {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }
}
