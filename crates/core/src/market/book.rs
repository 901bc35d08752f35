//! An L2 order book keyed by exact price, with Kraken's v2 checksum.

use std::collections::BTreeMap;

use super::crc32::crc32;
use super::decimal::Decimal;

/// Levels each side that the checksum covers (Kraken: top 10 regardless of depth).
pub const CHECKSUM_LEVELS: usize = 10;

/// Which side of the book, or which side a trade's taker was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bids, or a buyer-initiated trade.
    Buy,
    /// Asks, or a seller-initiated trade.
    Sell,
}

impl Side {
    /// The side as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// Parses `"buy"` / `"sell"`.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// One price level: `(price, size)`.
pub type Level = (Decimal, Decimal);

/// Why a snapshot or delta was refused; the book is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// A level's size is below zero.
    #[error("negative size")]
    NegativeSize,
    /// A snapshot level has size zero (only deltas remove levels).
    #[error("zero size in a snapshot")]
    ZeroSizeInSnapshot,
    /// The best bid would be at or above the best ask.
    #[error("crossed book")]
    Crossed,
    /// A delta for a book that has had no snapshot: it has nothing to apply to.
    #[error("delta for a book with no snapshot yet")]
    NoSnapshot,
    /// A delta for a book that refused an earlier update: it may differ from the feed's book,
    /// so only a snapshot is accepted until one comes.
    #[error("delta for a book awaiting a snapshot after a refused update")]
    AwaitingSnapshot,
    /// The book after the update has another checksum than its source's after the same update:
    /// a copy that lost sync (it missed an update), so it waits for a snapshot.
    #[error("checksum differs from the source's after the update")]
    ChecksumMismatch,
}

/// A book with bids and asks keyed by exact price and at most `depth` levels a side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
    depth: usize,
}

impl Book {
    /// An empty book keeping at most `depth` levels each side (at least 1).
    pub fn new(depth: usize) -> Book {
        Book {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            depth: depth.max(1),
        }
    }

    /// Levels kept each side.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Replaces the whole book; refused (book unchanged) on a negative or zero size or a crossed result.
    pub fn apply_snapshot(&mut self, bids: &[Level], asks: &[Level]) -> Result<(), BookError> {
        for &(_, size) in bids.iter().chain(asks) {
            if size.is_negative() {
                return Err(BookError::NegativeSize);
            }
            if size.is_zero() {
                return Err(BookError::ZeroSizeInSnapshot);
            }
        }
        let mut next = Book::new(self.depth);
        next.bids.extend(bids.iter().copied());
        next.asks.extend(asks.iter().copied());
        next.truncate();
        if next.is_crossed() {
            return Err(BookError::Crossed);
        }
        *self = next;
        Ok(())
    }

    /// Applies changed levels (size zero removes the level), then trims to depth; refused (book unchanged)
    /// on a negative size or a crossed result.
    pub fn apply_delta(&mut self, bids: &[Level], asks: &[Level]) -> Result<(), BookError> {
        if bids.iter().chain(asks).any(|&(_, s)| s.is_negative()) {
            return Err(BookError::NegativeSize);
        }
        if Self::would_cross(self, bids, asks) {
            return Err(BookError::Crossed);
        }
        for &(p, s) in bids {
            upsert(&mut self.bids, p, s);
        }
        for &(p, s) in asks {
            upsert(&mut self.asks, p, s);
        }
        self.truncate();
        Ok(())
    }

    /// True when the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_bid(), self.best_ask()), (Some(b), Some(a)) if b.0 >= a.0)
    }

    /// Highest bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.iter().next_back().map(|(p, s)| (*p, *s))
    }

    /// Lowest ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.iter().next().map(|(p, s)| (*p, *s))
    }

    /// Bids best first (highest price first).
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids.iter().rev().map(|(p, s)| (*p, *s))
    }

    /// Asks best first (lowest price first).
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.iter().map(|(p, s)| (*p, *s))
    }

    /// Kraken v2 checksum: for the top 10 asks (low to high) then the top 10 bids (high to low), price and
    /// size with `.` and leading zeros removed, concatenated, CRC-32 of the string.
    pub fn checksum(&self) -> u32 {
        let mut buf = Vec::with_capacity(CHECKSUM_LEVELS * 2 * 24);
        for (p, s) in self.asks().take(CHECKSUM_LEVELS) {
            p.write_checksum_digits(&mut buf);
            s.write_checksum_digits(&mut buf);
        }
        for (p, s) in self.bids().take(CHECKSUM_LEVELS) {
            p.write_checksum_digits(&mut buf);
            s.write_checksum_digits(&mut buf);
        }
        crc32(&buf)
    }

    /// Whether applying the delta would leave best bid >= best ask, decided without copying the book:
    /// the new best is the better of the best changed level and the best untouched old level.
    fn would_cross(&self, bids: &[Level], asks: &[Level]) -> bool {
        let touched = |side: &[Level], p: &Decimal| side.iter().any(|(q, _)| q == p);
        let new_bid = bids.iter().filter(|l| !l.1.is_zero()).map(|l| l.0).max();
        let old_bid = self.bids.keys().rev().find(|p| !touched(bids, p)).copied();
        let new_ask = asks.iter().filter(|l| !l.1.is_zero()).map(|l| l.0).min();
        let old_ask = self.asks.keys().find(|p| !touched(asks, p)).copied();
        let bid = new_bid.max(old_bid);
        let ask = match (new_ask, old_ask) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        matches!((bid, ask), (Some(b), Some(a)) if b >= a)
    }

    /// Drops the worst levels beyond `depth` (bids lowest first, asks highest first).
    fn truncate(&mut self) {
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
    }
}

/// Sets a level, removing it on size zero; the new key replaces the old so its digits are the feed's latest.
fn upsert(side: &mut BTreeMap<Decimal, Decimal>, price: Decimal, size: Decimal) {
    if size.is_zero() {
        side.remove(&price);
    } else {
        side.remove(&price);
        side.insert(price, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    fn lv(p: &str, s: &str) -> Level {
        (d(p), d(s))
    }

    #[test]
    fn delta_with_zero_size_removes_a_level() {
        let mut b = Book::new(10);
        b.apply_snapshot(&[lv("100.0", "1"), lv("99.5", "2")], &[lv("100.5", "3")])
            .unwrap();
        b.apply_delta(&[lv("99.50", "0")], &[lv("101", "4")])
            .unwrap();
        let bids: Vec<_> = b.bids().collect();
        assert_eq!(bids, vec![lv("100.0", "1")]);
        assert_eq!(b.asks().count(), 2);
    }

    #[test]
    fn refuses_negative_sizes_and_crossed_books_unchanged() {
        let mut b = Book::new(10);
        b.apply_snapshot(&[lv("100", "1")], &[lv("101", "1")])
            .unwrap();
        let before = b.clone();
        assert_eq!(
            b.apply_delta(&[lv("100", "-1")], &[]),
            Err(BookError::NegativeSize)
        );
        assert_eq!(
            b.apply_delta(&[lv("101", "1")], &[]),
            Err(BookError::Crossed)
        );
        assert_eq!(b, before);
        assert_eq!(
            b.apply_snapshot(&[lv("102", "1")], &[lv("101", "1")]),
            Err(BookError::Crossed)
        );
        assert_eq!(b, before);
    }

    #[test]
    fn depth_keeps_the_best_levels() {
        let mut b = Book::new(2);
        b.apply_snapshot(
            &[lv("1", "1"), lv("2", "1"), lv("3", "1")],
            &[lv("6", "1"), lv("5", "1"), lv("4", "1")],
        )
        .unwrap();
        assert_eq!(
            b.bids().map(|l| l.0).collect::<Vec<_>>(),
            vec![d("3"), d("2")]
        );
        assert_eq!(
            b.asks().map(|l| l.0).collect::<Vec<_>>(),
            vec![d("4"), d("5")]
        );
    }

    #[test]
    fn checksum_concatenates_asks_then_bids() {
        let mut b = Book::new(10);
        b.apply_snapshot(
            &[lv("0.05005", "0.00000500")],
            &[lv("0.05015", "0.00100000")],
        )
        .unwrap();
        // asks "5015" "100000", then bids "5005" "500".
        assert_eq!(b.checksum(), crc32(b"50151000005005500"));
    }

    #[test]
    fn checksums_in_protocol_md_match() {
        // The example in docs/protocol.md; values computed independently with Python's zlib.crc32.
        let mut b = Book::new(10);
        b.apply_snapshot(&[lv("64000.5", "1.25")], &[lv("64001.0", "0.5")])
            .unwrap();
        assert_eq!(b.checksum(), 2_238_815_152);
        b.apply_delta(&[lv("64000.5", "0")], &[]).unwrap();
        assert_eq!(b.checksum(), 878_852_093);
    }

    #[test]
    fn checksum_covers_only_ten_levels() {
        let mut a = Book::new(25);
        let bids: Vec<Level> = (1..=20).map(|i| (Decimal::new(i, 1), d("1"))).collect();
        let asks: Vec<Level> = (30..=50).map(|i| (Decimal::new(i, 1), d("1"))).collect();
        a.apply_snapshot(&bids, &asks).unwrap();
        let mut b = a.clone();
        b.apply_delta(
            &[(Decimal::new(1, 1), d("0"))],
            &[(Decimal::new(50, 1), d("0"))],
        )
        .unwrap();
        assert_eq!(a.checksum(), b.checksum());
        b.apply_delta(&[(Decimal::new(20, 1), d("2"))], &[])
            .unwrap();
        assert_ne!(a.checksum(), b.checksum());
    }

    fn level() -> impl Strategy<Value = (bool, i128, i128)> {
        // (is_bid, price ticks, size lots); bids below 1000 ticks, asks above, so no delta crosses.
        (any::<bool>(), 0i128..200, 0i128..5)
    }

    proptest! {
        #[test]
        fn deltas_equal_a_rebuilt_snapshot(deltas in proptest::collection::vec(proptest::collection::vec(level(), 1..6), 1..60)) {
            let mut live = Book::new(15);
            for delta in &deltas {
                let bids: Vec<Level> = delta.iter().filter(|l| l.0).map(|l| (Decimal::new(800 + l.1, 1), Decimal::new(l.2, 2))).collect();
                let asks: Vec<Level> = delta.iter().filter(|l| !l.0).map(|l| (Decimal::new(1000 + l.1, 1), Decimal::new(l.2, 2))).collect();
                live.apply_delta(&bids, &asks).unwrap();
                prop_assert!(live.bids().count() <= 15 && live.asks().count() <= 15);
            }
            let mut rebuilt = Book::new(15);
            let bids: Vec<Level> = live.bids().collect();
            let asks: Vec<Level> = live.asks().collect();
            rebuilt.apply_snapshot(&bids, &asks).unwrap();
            prop_assert_eq!(&rebuilt, &live);
            prop_assert_eq!(rebuilt.checksum(), live.checksum());
        }
    }
}
