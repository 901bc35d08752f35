//! OHLCV bars from trades, as a pure state machine: the caller supplies trades and the clock.

use super::decimal::Decimal;
use crate::tick::TsMicros;

/// One bar; prices keep the feed's digits, `vwap` is rounded to the finest price scale seen in the bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Interval start, a multiple of the interval since the epoch.
    pub start: TsMicros,
    /// First trade's price.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Last trade's price.
    pub close: Decimal,
    /// Sum of sizes.
    pub volume: Decimal,
    /// Sum of price * size, for the vwap.
    pub notional: Decimal,
    /// Number of trades.
    pub trades: u64,
    /// True once the interval has ended (and on a late revision of an ended bar).
    pub closed: bool,
    /// Finest price scale seen, the vwap's scale.
    price_scale: u8,
}

impl Bar {
    fn open_with(start: TsMicros, price: Decimal, size: Decimal) -> Option<Bar> {
        Some(Bar {
            start,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            notional: price.checked_mul(size)?,
            trades: 1,
            closed: false,
            price_scale: price.scale(),
        })
    }

    /// Folds one trade in; `late` trades do not move `close` (they happened before the last one seen).
    fn add(&mut self, price: Decimal, size: Decimal, late: bool) -> Option<()> {
        let volume = self.volume.checked_add(size)?;
        let notional = self.notional.checked_add(price.checked_mul(size)?)?;
        self.volume = volume;
        self.notional = notional;
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        if !late {
            self.close = price;
        }
        self.trades += 1;
        self.price_scale = self.price_scale.max(price.scale());
        Some(())
    }

    /// Volume-weighted average price; the close when the volume is zero.
    pub fn vwap(&self) -> Decimal {
        self.notional
            .checked_div_round(self.volume, self.price_scale)
            .unwrap_or(self.close)
    }
}

/// Bar length and how often an open bar may be re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    /// Interval length in microseconds (> 0).
    pub interval_us: u64,
    /// Least time between two updates of an open bar, in microseconds.
    pub update_us: u64,
}

/// What became of a trade handed to [`BarBuilder::on_trade`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeOutcome {
    /// Folded into the open bar (or opened a new one).
    Applied,
    /// Belonged to the bar that just closed: it was revised and re-sent with the same `start`.
    Revised,
    /// Older than the last closed bar, or sizes overflowed: ignored (the caller counts it).
    Rejected,
}

/// Builds bars for one symbol and one interval; emits into `out` the bars to send.
#[derive(Debug, Clone)]
pub struct BarBuilder {
    spec: BarSpec,
    open: Option<Bar>,
    last_closed: Option<Bar>,
    last_sent: Option<TsMicros>,
    dirty: bool,
}

impl BarBuilder {
    /// A builder with no bar yet.
    pub fn new(spec: BarSpec) -> BarBuilder {
        BarBuilder {
            spec: BarSpec {
                interval_us: spec.interval_us.max(1),
                update_us: spec.update_us,
            },
            open: None,
            last_closed: None,
            last_sent: None,
            dirty: false,
        }
    }

    /// The interval start a timestamp falls in.
    pub fn start_of(&self, ts: TsMicros) -> TsMicros {
        TsMicros(ts.0 - ts.0 % self.spec.interval_us)
    }

    /// The open bar, if any.
    pub fn open_bar(&self) -> Option<&Bar> {
        self.open.as_ref()
    }

    /// Folds a trade executed at `ts` in, seen at `now`; pushes bars to send into `out`.
    pub fn on_trade(
        &mut self,
        ts: TsMicros,
        price: Decimal,
        size: Decimal,
        now: TsMicros,
        out: &mut Vec<Bar>,
    ) -> TradeOutcome {
        let start = self.start_of(ts);
        // A trade for a later interval closes the open bar first.
        if let Some(open) = &self.open {
            if start > open.start {
                self.close_open(out);
            }
        }
        match &mut self.open {
            Some(open) if open.start == start => {
                if open.add(price, size, false).is_none() {
                    return TradeOutcome::Rejected;
                }
                self.dirty = true;
            }
            Some(_) => return self.revise(start, price, size, out),
            None => {
                if self.last_closed.as_ref().is_some_and(|b| start <= b.start) {
                    return self.revise(start, price, size, out);
                }
                let Some(bar) = Bar::open_with(start, price, size) else {
                    return TradeOutcome::Rejected;
                };
                self.open = Some(bar);
                self.dirty = true;
                self.last_sent = None;
            }
        }
        self.flush(now, out);
        TradeOutcome::Applied
    }

    /// Advances the clock: closes the open bar once its interval has ended and sends a pending update.
    pub fn on_clock(&mut self, now: TsMicros, out: &mut Vec<Bar>) {
        if let Some(open) = &self.open {
            if now.0 >= open.start.0.saturating_add(self.spec.interval_us) {
                self.close_open(out);
                return;
            }
        }
        self.flush(now, out);
    }

    /// Sends the open bar if it changed and `update_us` has passed since the last send.
    fn flush(&mut self, now: TsMicros, out: &mut Vec<Bar>) {
        let Some(open) = &self.open else { return };
        let due = self
            .last_sent
            .is_none_or(|t| now.0.saturating_sub(t.0) >= self.spec.update_us);
        if self.dirty && due {
            out.push(open.clone());
            self.last_sent = Some(now);
            self.dirty = false;
        }
    }

    /// Sends the open bar once with `closed: true` and keeps it for late trades.
    fn close_open(&mut self, out: &mut Vec<Bar>) {
        if let Some(mut bar) = self.open.take() {
            bar.closed = true;
            out.push(bar.clone());
            self.last_closed = Some(bar);
            self.dirty = false;
            self.last_sent = None;
        }
    }

    /// A trade for the last closed bar revises it and re-sends it (same `start`, `closed: true`).
    fn revise(
        &mut self,
        start: TsMicros,
        price: Decimal,
        size: Decimal,
        out: &mut Vec<Bar>,
    ) -> TradeOutcome {
        match &mut self.last_closed {
            Some(bar) if bar.start == start => {
                if bar.add(price, size, true).is_none() {
                    return TradeOutcome::Rejected;
                }
                out.push(bar.clone());
                TradeOutcome::Revised
            }
            _ => TradeOutcome::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    const SEC: u64 = 1_000_000;

    fn builder() -> BarBuilder {
        BarBuilder::new(BarSpec {
            interval_us: 60 * SEC,
            update_us: SEC,
        })
    }

    #[test]
    fn ohlcv_and_vwap_by_hand() {
        let mut b = builder();
        let mut out = Vec::new();
        let t0 = 120 * SEC;
        for (i, (p, s)) in [("10.0", "1"), ("12.5", "2"), ("9.5", "1"), ("11.0", "4")]
            .iter()
            .enumerate()
        {
            let ts = TsMicros(t0 + i as u64 * 10);
            assert_eq!(
                b.on_trade(ts, d(p), d(s), ts, &mut out),
                TradeOutcome::Applied
            );
        }
        // Only the first trade was sent: the rest fell inside update_us.
        assert_eq!(out.len(), 1);
        b.on_clock(TsMicros(t0 + 2 * SEC), &mut out);
        let bar = out.last().unwrap();
        assert_eq!(bar.start, TsMicros(t0));
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (d("10.0"), d("12.5"), d("9.5"), d("11.0"))
        );
        assert_eq!(bar.volume.to_string(), "8");
        // (10 + 25 + 9.5 + 44) / 8 = 11.0625 -> 11.1 at the prices' scale.
        assert_eq!(bar.vwap().to_string(), "11.1");
        assert_eq!(bar.trades, 4);
        assert!(!bar.closed);
    }

    #[test]
    fn closes_once_at_interval_end_and_revises_on_a_late_trade() {
        let mut b = builder();
        let mut out = Vec::new();
        b.on_trade(
            TsMicros(5 * SEC),
            d("1"),
            d("1"),
            TsMicros(5 * SEC),
            &mut out,
        );
        out.clear();
        b.on_clock(TsMicros(60 * SEC), &mut out);
        b.on_clock(TsMicros(61 * SEC), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].closed);
        out.clear();
        let late = b.on_trade(
            TsMicros(59 * SEC),
            d("3"),
            d("1"),
            TsMicros(62 * SEC),
            &mut out,
        );
        assert_eq!(late, TradeOutcome::Revised);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start, TsMicros(0));
        assert_eq!(
            (out[0].high, out[0].close, out[0].trades),
            (d("3"), d("1"), 2)
        );
        // Once a later bar has closed, a trade for the first one is rejected.
        b.on_trade(
            TsMicros(130 * SEC),
            d("2"),
            d("1"),
            TsMicros(130 * SEC),
            &mut out,
        );
        b.on_clock(TsMicros(180 * SEC), &mut out);
        out.clear();
        assert_eq!(
            b.on_trade(TsMicros(SEC), d("2"), d("1"), TsMicros(131 * SEC), &mut out),
            TradeOutcome::Rejected
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_trade_in_the_next_interval_closes_the_open_bar() {
        let mut b = builder();
        let mut out = Vec::new();
        b.on_trade(TsMicros(SEC), d("1"), d("1"), TsMicros(SEC), &mut out);
        b.on_trade(
            TsMicros(61 * SEC),
            d("2"),
            d("1"),
            TsMicros(61 * SEC),
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert!(out[1].closed && out[1].start == TsMicros(0));
        assert!(!out[2].closed && out[2].start == TsMicros(60 * SEC));
    }
}
