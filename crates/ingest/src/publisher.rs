//! Normalizes quotes into ticks, assigns seq and ts, encodes each once and publishes it.

use std::collections::HashMap;
use std::sync::Arc;

use tickcast_bus::{BookUpdate, Bus, BusError, PublishBatch, TopicState, Upstream};
use tickcast_core::frame::TickEncoder;
use tickcast_core::market::encode::encode_trade;
use tickcast_core::market::{BookError, Trade};
use tickcast_core::{Frame, Price, Seq, Size, Tick, Topic, TsMicros};

use crate::bars::Bars;
use crate::stats::FeedStats;

/// A price update as a source reports it, before the ingester stamps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Last trade price.
    pub last: Price,
    /// Last trade size.
    pub size: Size,
}

/// A feed's handle on the bus. Keeps a local topic cache so the hot path does no shared lookup.
pub struct Publisher {
    bus: Arc<Bus>,
    stats: Arc<FeedStats>,
    encoder: TickEncoder,
    topics: HashMap<Topic, Arc<TopicState>>,
    /// Candles built from this feed's trades.
    bars: Bars,
    /// Encoding buffer for books and trades, reused.
    scratch: Vec<u8>,
}

impl Publisher {
    /// A publisher for one feed.
    pub fn new(bus: Arc<Bus>, stats: Arc<FeedStats>) -> Self {
        Self {
            bars: Bars::new(bus.bars().clone()),
            bus,
            stats,
            encoder: TickEncoder::new(),
            topics: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The bus published to.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// The feed's stats.
    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }

    /// The topic named `name` if this publisher resolved it before; no allocation, no shared lookup.
    pub fn cached(&self, name: &str) -> Option<&Arc<TopicState>> {
        self.topics.get(name)
    }

    /// Resolves `topic` once (creating it on the bus if needed) for repeated publishing.
    pub fn topic(&mut self, topic: &Topic) -> Result<Arc<TopicState>, BusError> {
        if let Some(t) = self.topics.get(topic) {
            return Ok(t.clone());
        }
        let state = self.bus.topic(topic)?;
        self.topics.insert(topic.clone(), state.clone());
        self.stats.serves(&state);
        Ok(state)
    }

    /// Stamps `quote` with the topic's next seq and `ts`, encodes it and adds it to `batch`. On a
    /// standby ingest node ([`Bus::standby`]) the quote is discarded (and counted) before it takes
    /// a seq: the leader numbers that topic's ticks.
    pub fn publish(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        quote: Quote,
        ts: TsMicros,
    ) {
        if self.bus.standby() {
            // Its candles are still built (not published): a takeover continues them whole.
            self.bus.record_standby_discard();
        } else {
            self.encode_quote(batch, topic, topic.next_seq(), ts, quote);
        }
        self.bars.on_quote(
            &self.bus,
            batch,
            topic.topic().symbol(),
            quote.last.0,
            quote.size.0,
            ts,
        );
    }

    /// Applies a book snapshot or delta to the book of `topic` (a `book.*` topic) and publishes
    /// the message it makes (see [`PublishBatch::publish_book`]). A refused update changes nothing
    /// and takes no seq.
    pub fn publish_book(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        update: BookUpdate<'_>,
        ts: TsMicros,
    ) -> Result<Seq, BookError> {
        batch.publish_book(topic, update, ts, &mut self.scratch)
    }

    /// Applies a book update an ingest node numbered (a gateway's NATS feed) under that node's
    /// seq (see [`PublishBatch::publish_book_at`]).
    pub fn publish_book_at(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        update: BookUpdate<'_>,
        upstream: Upstream,
        ts: TsMicros,
    ) -> Result<(), BookError> {
        batch.publish_book_at(topic, update, upstream, ts, &mut self.scratch)
    }

    /// Publishes `trade` on `topic` (a `trade.*` topic) under its next seq, and folds it into the
    /// candles of the topic's symbol. An empty `trade_id` is replaced by the seq. On a standby
    /// ingest node trades cross NATS like quotes, so the trade is discarded (and counted) before it
    /// takes a seq; its candles still take it in (and are not published either).
    pub fn publish_trade(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        trade: &Trade,
        now: TsMicros,
    ) -> Option<Seq> {
        if self.bus.standby() {
            self.bus.record_standby_discard();
            self.fold_trade(batch, topic, trade, now);
            return None;
        }
        let seq = topic.next_seq();
        self.scratch.clear();
        if trade.trade_id.is_empty() {
            let named = Trade {
                trade_id: seq.0.to_string(),
                ..trade.clone()
            };
            encode_trade(&mut self.scratch, topic.topic(), seq, &named);
        } else {
            encode_trade(&mut self.scratch, topic.topic(), seq, trade);
        }
        // The bus gets the ingest time (latency, heartbeats); the message keeps the execution time.
        batch.publish(topic, seq, now, Frame::text(&self.scratch));
        self.fold_trade(batch, topic, trade, now);
        Some(seq)
    }

    fn fold_trade(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        trade: &Trade,
        now: TsMicros,
    ) {
        self.bars.on_trade(
            &self.bus,
            batch,
            topic.topic().symbol(),
            trade.ts,
            trade.price,
            trade.size,
            now,
        );
    }

    /// Stops building candles from this feed's quotes (see [`Bars::ignore_quotes`]).
    pub fn ignore_quotes_for_bars(&mut self) {
        self.bars.ignore_quotes();
    }

    /// Advances this feed's candles to `now`: closes those whose interval ended and sends open
    /// ones that changed. Feeds that publish trades call it a few times a second.
    pub fn tick_bars(&mut self, batch: &mut PublishBatch<'_>, now: TsMicros) {
        self.bars.on_clock(&self.bus, batch, now);
    }

    /// Publishes `quote` on `topic` with a `seq` and `ts` assigned upstream (by the ingest node of a
    /// NATS scale-out) instead of new ones, so every gateway serves the same numbers. The topic's
    /// counter moves forward to `seq`; a `seq` not newer than the cached tick is dropped by the bus
    /// and counted as stale.
    pub fn publish_assigned(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        seq: Seq,
        ts: TsMicros,
        quote: Quote,
    ) {
        topic.observe_seq(seq);
        self.encode_quote(batch, topic, seq, ts, quote);
    }

    /// Encodes `quote` as tick `seq` of `topic`, once, and publishes it.
    #[inline]
    fn encode_quote(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        seq: Seq,
        ts: TsMicros,
        quote: Quote,
    ) {
        let tick = Tick {
            topic: topic.topic().clone(),
            seq,
            ts,
            bid: quote.bid,
            ask: quote.ask,
            last: quote.last,
            size: quote.size,
        };
        let frame = self.encoder.encode(&tick);
        batch.publish(topic, seq, ts, frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_bus::BusConfig;
    use tickcast_core::market::{Decimal, Side};

    #[test]
    fn a_standby_counts_a_trade_without_taking_a_seq() {
        let bus = Bus::new(&BusConfig::default());
        let mut p = Publisher::new(bus.clone(), FeedStats::new("t", "tcp"));
        let topic = p.topic(&Topic::new("trade.A").unwrap()).unwrap();
        let trade = Trade {
            price: Decimal::parse("1.5").unwrap(),
            size: Decimal::parse("2").unwrap(),
            side: Side::Buy,
            trade_id: String::new(),
            ts: TsMicros(1),
        };
        let mut publish = |at| p.publish_trade(&mut bus.batch(), &topic, &trade, TsMicros(at));
        assert_eq!(publish(1), Some(Seq(1)));
        bus.set_standby(true);
        assert_eq!(publish(2), None);
        assert_eq!(bus.standby_discards(), 1);
        bus.set_standby(false);
        // The leader numbers trades: this node goes on from its own last one.
        assert_eq!(publish(3), Some(Seq(2)));
    }

    #[test]
    fn a_standby_builds_candles_without_publishing_them_and_they_go_on_whole_when_it_leads() {
        let bus = Bus::new(&BusConfig::default());
        let mut p = Publisher::new(bus.clone(), FeedStats::new("t", "tcp"));
        let topic = p.topic(&Topic::new("trade.A").unwrap()).unwrap();
        let minute = 1_700_000_040_000_000; // a whole minute, in µs
        let trade = |p: &mut Publisher, price: &str, at: u64| {
            let t = Trade {
                price: Decimal::parse(price).unwrap(),
                size: Decimal::parse("1").unwrap(),
                side: Side::Buy,
                trade_id: String::new(),
                ts: TsMicros(at),
            };
            p.publish_trade(&mut bus.batch(), &topic, &t, TsMicros(at))
        };
        bus.set_standby(true);
        assert_eq!(trade(&mut p, "10", minute + 1_000), None);
        assert_eq!(trade(&mut p, "12", minute + 2_000), None);
        let candle = bus
            .get("bar.1m.A")
            .expect("candle topic made on the first trade");
        assert!(candle.last().is_none(), "a standby publishes no candle");
        bus.set_standby(false);
        assert_eq!(trade(&mut p, "11", minute + 600_000), Some(Seq(1)));
        let last = candle.last().expect("the leader publishes the candle");
        let bar: serde_json::Value = serde_json::from_slice(last.frame.payload()).unwrap();
        // The trades seen while standby are in it.
        assert_eq!(
            (
                &bar["open"],
                &bar["high"],
                &bar["low"],
                &bar["close"],
                &bar["trades"]
            ),
            (
                &"10".into(),
                &"12".into(),
                &"10".into(),
                &"11".into(),
                &3.into()
            ),
            "{bar}"
        );
    }
}
