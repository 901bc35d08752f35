//! The candles one feed builds from its trades: per traded symbol, one [`BarBuilder`] per interval
//! of the bus's [`BarsConfig`], each publishing on `bar.<interval>.<symbol>`.
//!
//! Built once here, at ingest, like the books: every subscriber of a candle topic gets the same
//! encoded bar. A feed calls [`Bars::on_trade`] for each trade and [`Bars::on_clock`] now and
//! then, so a candle closes when its interval ends even if no trade follows.
//!
//! A symbol the feed sends only quotes for gets candles from the quotes' `last`/`size`: a quote
//! whose last trade differs from the previous quote's counts as one trade (a quote that repeats
//! the last trade adds nothing). Once a real trade of the symbol comes, quotes stop counting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tickcast_bus::{BarsConfig, Bus, PublishBatch, TopicState};
use tickcast_core::market::encode::encode_bar;
use tickcast_core::market::{Bar, BarBuilder, BarSpec, Decimal, TradeOutcome};
use tickcast_core::{Frame, Topic, TsMicros};

/// One interval's candle of one symbol.
struct Candle {
    topic: Arc<TopicState>,
    builder: BarBuilder,
}

/// One symbol's candles, and where its trades come from.
struct Symbol {
    candles: Vec<Candle>,
    /// A `trade` of this symbol came: quotes no longer count as trades.
    traded: bool,
    /// The previous quote's (last, size), to tell a new trade from a repeated one.
    last_quote: Option<(f64, f64)>,
}

/// Every candle a feed builds.
pub struct Bars {
    config: BarsConfig,
    symbols: HashMap<String, Symbol>,
    /// Candles ready to send, and the encoding buffer (reused).
    out: Outbox,
    /// Trades a builder refused (older than the last closed candle).
    late: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Bars {
    /// The candles of the intervals in `config`.
    pub fn new(config: BarsConfig) -> Self {
        Self {
            config,
            symbols: HashMap::new(),
            out: Outbox::default(),
            late: 0,
        }
    }

    /// Stops counting quotes as trades (a feed whose candles come from its own trades, or a load
    /// test that measures quotes alone).
    pub fn ignore_quotes(&mut self) {
        self.config.from_quotes = false;
    }

    /// Trades too old for any candle (counted, not folded in).
    pub fn late_trades(&self) -> u64 {
        self.late
    }

    /// Folds a trade of `symbol` executed at `ts` into every interval's candle and publishes the
    /// candles that are due. A symbol's candle topics are created on its first trade.
    #[allow(clippy::too_many_arguments)]
    pub fn on_trade(
        &mut self,
        bus: &Bus,
        batch: &mut PublishBatch<'_>,
        symbol: &str,
        ts: TsMicros,
        price: Decimal,
        size: Decimal,
        now: TsMicros,
    ) {
        if self.config.intervals.is_empty() {
            return;
        }
        self.symbol(bus, symbol).traded = true;
        self.fold(symbol, ts, price, size, now, batch, bus.standby());
    }

    /// Counts a quote of `symbol` as a trade at `now` when its last trade (`last`, `size`) is new
    /// and the symbol has no real trades (see the module doc).
    pub fn on_quote(
        &mut self,
        bus: &Bus,
        batch: &mut PublishBatch<'_>,
        symbol: &str,
        last: f64,
        size: f64,
        now: TsMicros,
    ) {
        if !self.config.from_quotes
            || self.config.intervals.is_empty()
            || size <= 0.0
            || !size.is_finite()
        {
            return;
        }
        let s = self.symbol(bus, symbol);
        if s.traded || s.last_quote == Some((last, size)) {
            return;
        }
        s.last_quote = Some((last, size));
        let (Some(price), Some(size)) = (shortest(last), shortest(size)) else {
            return; // exponent notation: a value no candle needs
        };
        self.fold(symbol, now, price, size, now, batch, bus.standby());
    }

    /// The state of `symbol`, made (with its candle topics) on first use.
    fn symbol(&mut self, bus: &Bus, symbol: &str) -> &mut Symbol {
        if !self.symbols.contains_key(symbol) {
            let candles = self.candles_of(bus, symbol);
            self.symbols.insert(
                symbol.to_string(),
                Symbol {
                    candles,
                    traded: false,
                    last_quote: None,
                },
            );
        }
        // Looked up by `&str`: no allocation once the symbol is known (every quote comes here).
        self.symbols
            .get_mut(symbol)
            .expect("the symbol was inserted above")
    }

    /// Folds one trade into every interval's candle of `symbol` and publishes what is due (on a
    /// standby, nothing: see [`publish`]).
    #[allow(clippy::too_many_arguments)]
    fn fold(
        &mut self,
        symbol: &str,
        ts: TsMicros,
        price: Decimal,
        size: Decimal,
        now: TsMicros,
        batch: &mut PublishBatch<'_>,
        standby: bool,
    ) {
        let Some(s) = self.symbols.get_mut(symbol) else {
            return;
        };
        for c in s.candles.iter_mut() {
            if c.builder
                .on_trade(ts, price, size, now, &mut self.out.ready)
                == TradeOutcome::Rejected
            {
                self.late += 1;
            }
            self.out.send(batch, &c.topic, now, standby);
        }
    }

    /// Closes the candles whose interval has ended and sends open ones that changed and are due.
    pub fn on_clock(&mut self, bus: &Bus, batch: &mut PublishBatch<'_>, now: TsMicros) {
        let standby = bus.standby();
        for s in self.symbols.values_mut() {
            for c in s.candles.iter_mut() {
                c.builder.on_clock(now, &mut self.out.ready);
                self.out.send(batch, &c.topic, now, standby);
            }
        }
    }

    /// The candle topics of `symbol`; an interval whose topic the bus refuses (topic limit, or a
    /// symbol that makes an invalid name) is left out.
    fn candles_of(&self, bus: &Bus, symbol: &str) -> Vec<Candle> {
        let update_us = micros(self.config.update);
        self.config
            .intervals
            .iter()
            .filter_map(|(label, length)| {
                let topic = Topic::new(&format!("bar.{label}.{symbol}")).ok()?;
                let topic = bus.topic(&topic).ok()?;
                Some(Candle {
                    topic,
                    builder: BarBuilder::new(BarSpec {
                        interval_us: micros(*length),
                        update_us,
                    }),
                })
            })
            .collect()
    }
}

/// The shortest decimal that round-trips `v`, as the feed most likely wrote it (`189.13`, and `100`
/// rather than ryu's `100.0`); `None` for what needs an exponent.
fn shortest(v: f64) -> Option<Decimal> {
    let mut buf = ryu::Buffer::new();
    let s = buf.format(v);
    Decimal::parse(s.strip_suffix(".0").unwrap_or(s)).ok()
}

/// Candles a builder made ready, waiting to be sent, and the buffer they are encoded in.
#[derive(Default)]
struct Outbox {
    ready: Vec<Bar>,
    scratch: Vec<u8>,
}

impl Outbox {
    /// Publishes the ready candles (in order) on `topic`, each under the topic's next seq. A
    /// standby ingest node publishes none: candles cross NATS and the leader numbers them. It
    /// still builds them from the same feeds, so after a takeover its candles go on whole.
    fn send(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        now: TsMicros,
        standby: bool,
    ) {
        if standby {
            self.ready.clear();
            return;
        }
        for bar in self.ready.drain(..) {
            let seq = topic.next_seq();
            self.scratch.clear();
            encode_bar(&mut self.scratch, topic.topic(), seq, &bar);
            batch.publish(topic, seq, now, Frame::text(&self.scratch));
        }
    }
}
