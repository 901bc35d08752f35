//! A feed's way from parsed input to published ticks: topic lookup, upstream seq checks, stamping
//! (via [`Publisher`]) and per-reason reject accounting. Every text source (TCP, HTTP, replay,
//! upstream adapters) goes through one `TickSink`, so they all count and log the same way.

use std::fmt;
use std::sync::Arc;

use tickcast_bus::{BookUpdate, PublishBatch, TopicState};
use tickcast_core::market::Trade;
use tickcast_core::TopicClass;
use tickcast_core::{Topic, TsMicros};

use crate::gaps::{GapTracker, SeqCheck, SeqMode};
use crate::parse::{for_each_line, validate_topic, Line, TickLine, TickParser};
use crate::publisher::{Publisher, Quote};
use crate::reject::Reject;
use crate::stats::FeedStats;

/// Counts of one ingest call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Valid ticks (published, or skipped as an upstream duplicate).
    pub accepted: u64,
    /// Inputs rejected (counted per reason in the feed's stats).
    pub rejected: u64,
}

/// One feed's publishing state; owned by one task (or behind a mutex for HTTP).
pub struct TickSink {
    publisher: Publisher,
    gaps: GapTracker,
    parser: TickParser,
    max_line: usize,
}

impl fmt::Debug for TickSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickSink")
            .field("feed", &self.stats().name())
            .field("max_line", &self.max_line)
            .finish_non_exhaustive()
    }
}

impl TickSink {
    /// A sink publishing through `publisher`, capping lines at `max_line` bytes.
    pub fn new(publisher: Publisher, max_line: usize) -> Self {
        Self {
            publisher,
            gaps: GapTracker::default(),
            parser: TickParser::new(max_line.min(64 * 1024)),
            max_line,
        }
    }

    /// The feed's stats.
    pub fn stats(&self) -> &Arc<FeedStats> {
        self.publisher.stats()
    }

    /// The line cap.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Parses and publishes every line of `data` (whole lines; the first is number `first_line`) in
    /// one bus batch. Rejected lines are counted, logged at a bounded rate under `origin`, and passed
    /// to `on_reject`; the lines around them are published.
    pub fn ingest_ndjson(
        &mut self,
        data: &mut [u8],
        first_line: u64,
        origin: &dyn fmt::Display,
        on_reject: &mut dyn FnMut(u64, &Reject),
    ) -> Ingested {
        self.ingest_ndjson_scoped(data, first_line, origin, on_reject, &|_| true)
    }

    /// [`ingest_ndjson`](Self::ingest_ndjson) for a publisher that may publish only the topics
    /// `scope` allows; other lines are rejected as [`Reject::Forbidden`].
    pub fn ingest_ndjson_scoped(
        &mut self,
        data: &mut [u8],
        first_line: u64,
        origin: &dyn fmt::Display,
        on_reject: &mut dyn FnMut(u64, &Reject),
        scope: &dyn Fn(&str) -> bool,
    ) -> Ingested {
        let bus = self.publisher.bus().clone();
        let mut batch = bus.batch();
        let ts = TsMicros::now();
        let mut out = Ingested::default();
        let mut published = 0;
        let max_line = self.max_line;
        for_each_line(data, first_line, max_line, |n, line| {
            let result = line.and_then(|l| {
                let line = self.parser.parse_line(l)?;
                in_scope(scope, line.topic())?;
                self.publish_any(&mut batch, &line, ts)
            });
            match result {
                Ok(p) => {
                    out.accepted += 1;
                    published += p as u64;
                }
                Err(e) => {
                    out.rejected += 1;
                    self.stats().record_reject(origin, n, &e);
                    on_reject(n, &e);
                }
            }
        });
        drop(batch);
        if published > 0 {
            self.stats().record_ticks(published, ts);
        }
        out
    }

    /// The bus published to.
    pub fn bus(&self) -> &Arc<tickcast_bus::Bus> {
        self.publisher.bus()
    }

    /// Parses one JSON tick line in place with the sink's reusable simd-json buffers.
    pub fn parse_json<'a>(&mut self, line: &'a mut [u8]) -> Result<TickLine<'a>, Reject> {
        self.parser.parse(line)
    }

    /// Parses and publishes `doc` as one JSON tick that may span lines (the caller bounds its size),
    /// if `scope` allows its topic.
    pub fn ingest_document(
        &mut self,
        doc: &mut [u8],
        origin: &dyn fmt::Display,
        on_reject: &mut dyn FnMut(u64, &Reject),
        scope: &dyn Fn(&str) -> bool,
    ) -> Ingested {
        let bus = self.publisher.bus().clone();
        let mut batch = bus.batch();
        let ts = TsMicros::now();
        let result = self.parser.parse_line(doc).and_then(|line| {
            in_scope(scope, line.topic())?;
            self.publish_any(&mut batch, &line, ts)
        });
        drop(batch);
        match result {
            Ok(published) => {
                if published {
                    self.stats().record_ticks(1, ts);
                }
                Ingested {
                    accepted: 1,
                    rejected: 0,
                }
            }
            Err(e) => {
                self.stats().record_reject(origin, 1, &e);
                on_reject(1, &e);
                Ingested {
                    accepted: 0,
                    rejected: 1,
                }
            }
        }
    }

    /// Publishes a validated line of any type into `batch`; `Ok(false)` when nothing was published
    /// (an upstream duplicate).
    pub fn publish_any(
        &mut self,
        batch: &mut PublishBatch<'_>,
        line: &Line<'_>,
        ts: TsMicros,
    ) -> Result<bool, Reject> {
        match line {
            Line::Quote(tick) => self.publish_line(batch, tick, ts),
            Line::Book(book) => {
                let topic = self.resolve(&book.topic)?;
                let update = BookUpdate {
                    snapshot: book.snapshot,
                    bids: &book.bids,
                    asks: &book.asks,
                };
                self.publisher
                    .publish_book(batch, &topic, update, ts)
                    .map_err(Reject::BookRefused)?;
                Ok(true)
            }
            Line::Trade(t) => {
                let topic = self.resolve(&t.topic)?;
                let trade = Trade {
                    price: t.price,
                    size: t.size,
                    side: t.side,
                    trade_id: t.trade_id.as_deref().unwrap_or_default().to_string(),
                    ts: t.ts.map_or(ts, TsMicros),
                };
                self.publisher.publish_trade(batch, &topic, &trade, ts);
                Ok(true)
            }
        }
    }

    /// Advances the feed's candles to `now` (see [`Publisher::tick_bars`]).
    pub fn tick_bars(&mut self, now: TsMicros) {
        let bus = self.publisher.bus().clone();
        let mut batch = bus.batch();
        self.publisher.tick_bars(&mut batch, now);
    }

    /// Publishes a validated line into `batch`; `Ok(false)` when its upstream seq shows a duplicate.
    pub fn publish_line(
        &mut self,
        batch: &mut PublishBatch<'_>,
        tick: &TickLine<'_>,
        ts: TsMicros,
    ) -> Result<bool, Reject> {
        let topic = self.resolve(&tick.topic)?;
        if topic.class() != TopicClass::Latest {
            // A quote would be a foreign message in a book's deltas or a trade tape.
            return Err(Reject::BadTopic(format!(
                "{}: a quote line on a {} topic; send \"type\":\"{}\" lines there",
                tick.topic,
                topic.topic().channel(),
                topic.topic().channel()
            )));
        }
        if let Some(seq) = tick.seq {
            if !self.check_upstream_seq(&topic, 0, seq, SeqMode::Contiguous) {
                return Ok(false);
            }
        }
        self.publisher.publish(batch, &topic, tick.quote, ts);
        Ok(true)
    }

    /// Publishes `quote` on `topic` into `batch` (the caller counts it with [`FeedStats::record_ticks`]).
    pub fn publish(
        &mut self,
        batch: &mut PublishBatch<'_>,
        topic: &TopicState,
        quote: Quote,
        ts: TsMicros,
    ) {
        self.publisher.publish(batch, topic, quote, ts);
    }

    /// The bus state of topic `name`, creating the topic on first use.
    pub fn resolve(&mut self, name: &str) -> Result<Arc<TopicState>, Reject> {
        if let Some(t) = self.publisher.cached(name) {
            return Ok(t.clone());
        }
        validate_topic(name)?;
        let topic = Topic::new(name).map_err(|e| Reject::BadTopic(e.to_string()))?;
        self.publisher
            .topic(&topic)
            .map_err(|e| Reject::TopicLimit(e.to_string()))
    }

    /// Checks upstream `seq` of sub-stream `stream` of `topic`: gaps and resets are counted and
    /// logged; returns `false` for a duplicate, which the caller skips.
    pub fn check_upstream_seq(
        &mut self,
        topic: &TopicState,
        stream: u8,
        seq: u64,
        mode: SeqMode,
    ) -> bool {
        let key = (u64::from(topic.id().0) << 8) | u64::from(stream);
        let stats = self.publisher.stats();
        match self.gaps.check(key, seq, mode) {
            SeqCheck::First | SeqCheck::InOrder => true,
            SeqCheck::Duplicate => false,
            SeqCheck::Gap { missed } => {
                stats.record_upstream_gap(
                    topic.topic().as_str(),
                    format_args!("seq {seq} follows {}: {missed} missed", seq - missed - 1),
                );
                // Leave as many of our seqs unused: the bus then announces them to subscribers
                // as an `upstream` gap, so the loss is visible in every client's stream.
                topic.skip_seqs(missed);
                true
            }
            SeqCheck::Backwards { last } => {
                stats.record_upstream_gap(
                    topic.topic().as_str(),
                    format_args!("seq went back from {last} to {seq} (upstream restarted?)"),
                );
                true
            }
        }
    }
}

/// Refuses a line whose topic the publisher may not publish.
fn in_scope(scope: &dyn Fn(&str) -> bool, topic: &str) -> Result<(), Reject> {
    if scope(topic) {
        Ok(())
    } else {
        Err(Reject::Forbidden(topic.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectReason;
    use tickcast_bus::{Bus, BusConfig};

    fn sink() -> (TickSink, Arc<Bus>) {
        let bus = Bus::new(&BusConfig {
            max_topics: 3,
            max_requested_topics: 0,
            // No candles: these tests count the quotes' own topics against the limit.
            bars: tickcast_bus::BarsConfig {
                from_quotes: false,
                ..Default::default()
            },
            ..Default::default()
        });
        let stats = FeedStats::new("t", "tcp");
        (TickSink::new(Publisher::new(bus.clone(), stats), 200), bus)
    }

    #[test]
    fn good_lines_around_bad_ones_are_published_in_order() {
        let (mut s, bus) = sink();
        let mut data = concat!(
            r#"{"topic":"ticker.A","bid":1,"ask":2,"last":1.5,"size":10}"#,
            "\n",
            "garbage\n",
            r#"{"topic":"ticker.A","bid":1.1,"ask":2,"last":1.5,"size":10}"#,
            "\n",
            r#"{"topic":"ticker.A","bid":1,"ask":2,"last":1.5}"#,
            "\n",
            r#"{"topic":"bad topic","bid":1,"ask":2,"last":1.5,"size":1}"#,
            "\n",
            r#"{"topic":"ticker.B","bid":1,"ask":2,"last":1.5,"size":1}"#,
            "\n",
            r#"{"topic":"ticker.C","bid":1,"ask":2,"last":1.5,"size":1}"#,
            "\n",
            r#"{"topic":"ticker.D","bid":1,"ask":2,"last":1.5,"size":1}"#,
            "\n",
        )
        .as_bytes()
        .to_vec();
        let mut errors = Vec::new();
        let r = s.ingest_ndjson(&mut data, 1, &"test", &mut |n, e| {
            errors.push((n, e.reason()))
        });
        assert_eq!(
            r,
            Ingested {
                accepted: 4,
                rejected: 4
            }
        );
        assert_eq!(
            errors,
            vec![
                (2, RejectReason::BadJson),
                (4, RejectReason::MissingField),
                (5, RejectReason::BadTopic),
                (8, RejectReason::TopicLimit),
            ]
        );
        assert_eq!(bus.get("ticker.A").unwrap().last().unwrap().seq.0, 2);
        let stats = s.stats();
        assert_eq!(stats.ticks_in(), 4);
        assert_eq!(stats.parse_errors(), 4);
        assert_eq!(stats.parse_errors_for(RejectReason::BadJson), 1);
    }

    #[test]
    fn upstream_seq_gaps_are_counted_and_duplicates_skipped() {
        let (mut s, bus) = sink();
        let line = |seq: u64| {
            format!(r#"{{"topic":"ticker.A","bid":1,"ask":2,"last":1.5,"size":1,"seq":{seq}}}"#)
        };
        let mut data = [1, 2, 5, 5, 6, 1].map(line).join("\n").into_bytes();
        let r = s.ingest_ndjson(&mut data, 1, &"test", &mut |_, _| {});
        assert_eq!(r.accepted, 6);
        // 5 after 2 is a gap, 1 after 6 a reset; the second 5 is not republished.
        assert_eq!(s.stats().upstream_gaps(), 2);
        assert_eq!(s.stats().ticks_in(), 5);
        // Ours: 1, 2, then 3 and 4 left unused for the 2 lost upstream, 5 (upstream 5), 6, 7.
        assert_eq!(bus.get("ticker.A").unwrap().last().unwrap().seq.0, 7);
        assert_eq!(bus.upstream_gaps(), 1, "announced to subscribers once");
    }
}
