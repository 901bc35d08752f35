//! The synthetic feed's order books and trades: per symbol an exact book in integer cents whose
//! levels come and go, and trades that hit its best levels, so `book.*`, `trade.*` and the candles
//! built from the trades all agree with each other.
//!
//! Pure: [`SimBook::step`] turns (book, random numbers) into the changed levels and the trade, if
//! any; the feed publishes them.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::Rng;
use tickcast_core::market::{Decimal, Level, Side};

/// Levels the simulated book keeps each side (below the default book depth, so a server at the
/// default depth holds every level).
const LEVELS: usize = 20;
/// Shares per lot.
const LOT: i128 = 100;

/// One step's output: the changed levels (size 0 = removed) and the trade, if one happened.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Changed bid levels.
    pub bids: Vec<Level>,
    /// Changed ask levels.
    pub asks: Vec<Level>,
    /// `(taker side, price, size)`.
    pub trade: Option<(Side, Decimal, Decimal)>,
}

/// A book in cents and lots.
#[derive(Debug, Clone)]
pub struct SimBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

fn price(cents: i64) -> Decimal {
    Decimal::new(i128::from(cents), 2)
}

fn size(lots: i64) -> Decimal {
    Decimal::new(i128::from(lots) * LOT, 0)
}

impl SimBook {
    /// A full book around `mid_cents` with a one-cent spread.
    pub fn new(mid_cents: i64, rng: &mut SmallRng) -> SimBook {
        let mid = mid_cents.max(LEVELS as i64 + 2);
        let mut b = SimBook {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
        };
        for i in 0..LEVELS as i64 {
            b.bids.insert(mid - 1 - i, rng.random_range(1..=40));
            b.asks.insert(mid + i, rng.random_range(1..=40));
        }
        b
    }

    /// The whole book as levels, best first.
    pub fn levels(&self) -> (Vec<Level>, Vec<Level>) {
        let bids = self.bids.iter().rev().map(|(p, s)| (price(*p), size(*s)));
        let asks = self.asks.iter().map(|(p, s)| (price(*p), size(*s)));
        (bids.collect(), asks.collect())
    }

    fn best_bid(&self) -> i64 {
        self.bids.keys().next_back().copied().unwrap_or(0)
    }

    fn best_ask(&self) -> i64 {
        self.asks.keys().next().copied().unwrap_or(i64::MAX)
    }

    /// One change: a trade at the touch (one step in five), a level resized or removed, or a new
    /// level inside the spread. Each side keeps [`LEVELS`] levels: a removed one is replaced at
    /// the far end, a new best one pushes the farthest out.
    pub fn step(&mut self, rng: &mut SmallRng) -> Step {
        let mut out = Step::default();
        let buy = rng.random_bool(0.5);
        let roll: f64 = rng.random();
        if roll < 0.2 {
            // A market order takes part or all of the best level on the other side.
            let (book_side, at) = if buy {
                (Side::Sell, self.best_ask())
            } else {
                (Side::Buy, self.best_bid())
            };
            let side = self.side_mut(book_side);
            let Some(level) = side.get_mut(&at) else {
                return out;
            };
            let lots = rng.random_range(1..=(*level).min(10));
            *level -= lots;
            let left = *level;
            if left == 0 {
                side.remove(&at);
            }
            self.record(book_side, at, left, &mut out);
            self.refill(book_side, &mut out, rng);
            let taker = if buy { Side::Buy } else { Side::Sell };
            out.trade = Some((taker, price(at), size(lots)));
        } else if roll < 0.35 && self.best_ask() - self.best_bid() > 1 {
            // A new best level inside the spread.
            let (book_side, at) = if buy {
                (Side::Buy, self.best_bid() + 1)
            } else {
                (Side::Sell, self.best_ask() - 1)
            };
            let lots = rng.random_range(1..=40);
            self.side_mut(book_side).insert(at, lots);
            self.record(book_side, at, lots, &mut out);
            self.trim(book_side, &mut out);
        } else {
            let book_side = if buy { Side::Buy } else { Side::Sell };
            let side = self.side_mut(book_side);
            let n = side.len();
            if n == 0 {
                return out;
            }
            let Some(at) = side.keys().nth(rng.random_range(0..n)).copied() else {
                return out;
            };
            if rng.random_bool(0.25) && n > 1 {
                side.remove(&at);
                self.record(book_side, at, 0, &mut out);
                self.refill(book_side, &mut out, rng);
            } else {
                let lots = rng.random_range(1..=40);
                side.insert(at, lots);
                self.record(book_side, at, lots, &mut out);
            }
        }
        out
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<i64, i64> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn record(&self, side: Side, at: i64, lots: i64, out: &mut Step) {
        let level = (price(at), size(lots));
        match side {
            Side::Buy => out.bids.push(level),
            Side::Sell => out.asks.push(level),
        }
    }

    /// Adds levels past the far end until the side has [`LEVELS`].
    fn refill(&mut self, side: Side, out: &mut Step, rng: &mut SmallRng) {
        loop {
            let book = self.side_mut(side);
            if book.len() >= LEVELS {
                return;
            }
            let at = match side {
                Side::Buy => book.keys().next().map_or(1, |p| p - 1),
                Side::Sell => book.keys().next_back().map_or(2, |p| p + 1),
            };
            if at <= 0 {
                return;
            }
            let lots = rng.random_range(1..=40);
            book.insert(at, lots);
            self.record(side, at, lots, out);
        }
    }

    /// Removes levels past [`LEVELS`] from the far end.
    fn trim(&mut self, side: Side, out: &mut Step) {
        loop {
            let book = self.side_mut(side);
            if book.len() <= LEVELS {
                return;
            }
            let far = match side {
                Side::Buy => book.keys().next().copied(),
                Side::Sell => book.keys().next_back().copied(),
            };
            let Some(far) = far else { return };
            book.remove(&far);
            self.record(side, far, 0, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tickcast_core::market::Book;

    /// The steps, applied as deltas to a real book, keep it equal to the simulation, never
    /// crossed, and with trades at the touch.
    #[test]
    fn steps_are_consistent_deltas_and_trades_hit_the_touch() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut sim = SimBook::new(18_950, &mut rng);
        let mut book = Book::new(25);
        let (b, a) = sim.levels();
        book.apply_snapshot(&b, &a).unwrap();
        let mut trades = 0;
        for i in 0..20_000 {
            let before = (book.best_bid(), book.best_ask());
            let step = sim.step(&mut rng);
            if let Some((side, p, s)) = step.trade {
                trades += 1;
                let touch = match side {
                    Side::Buy => before.1.unwrap(),
                    Side::Sell => before.0.unwrap(),
                };
                assert_eq!(p, touch.0, "step {i}");
                assert!(s <= touch.1, "step {i}");
            }
            book.apply_delta(&step.bids, &step.asks)
                .unwrap_or_else(|e| panic!("step {i}: {e}"));
            let (b, a) = sim.levels();
            assert_eq!(book.bids().collect::<Vec<_>>(), b, "step {i}");
            assert_eq!(book.asks().collect::<Vec<_>>(), a, "step {i}");
            assert_eq!(b.len(), LEVELS);
            assert_eq!(a.len(), LEVELS);
        }
        assert!(trades > 2_000, "{trades}");
    }
}
