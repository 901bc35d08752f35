//! The feeds as the gateway sees them: the gateway owns small traits ([`ReadinessSource`],
//! [`PublishHandler`], [`MetricsSource`]) and this module implements them over the ingest crate's
//! feed registry and HTTP publish hook, so the edge never depends on how feeds work.

use std::sync::Arc;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};
use tickcast_core::TsMicros;
use tickcast_gateway::metrics::sync_counter;
use tickcast_gateway::{Metrics, MetricsSource, PublishHandler, ReadinessSource};
use tickcast_ingest::{FeedRegistry, PublishHook, RejectReason};

/// `/readyz` waits for every required feed to be connected (and live, with a `max_idle`).
#[derive(Debug)]
pub struct FeedReadiness(pub Arc<FeedRegistry>);

impl ReadinessSource for FeedReadiness {
    fn not_ready(&self, reasons: &mut Vec<String>) {
        let now = TsMicros::now();
        for f in self.0.all() {
            if let Some(reason) = f.not_ready_reason(now).filter(|_| f.required()) {
                reasons.push(reason);
            }
        }
    }
}

/// `POST /publish` goes to the HTTP feed's hook.
#[derive(Debug)]
pub struct HttpPublish(pub Arc<dyn PublishHook>);

impl PublishHandler for HttpPublish {
    fn max_body_bytes(&self) -> usize {
        self.0.max_body_bytes()
    }

    fn publish(&self, body: &mut [u8], single: bool, scope: &dyn Fn(&str) -> bool) -> Vec<u8> {
        self.0.publish(body, single, scope).to_json()
    }
}

/// The per-feed metrics, sampled from the feeds' stats at each scrape.
pub struct FeedMetrics {
    feeds: Arc<FeedRegistry>,
    ticks: IntCounterVec,
    parse_errors: IntCounterVec,
    last_tick_age: GaugeVec,
    upstream_gaps: IntCounterVec,
    dropped: IntCounterVec,
    reconnects: IntCounterVec,
    up: IntGaugeVec,
}

impl FeedMetrics {
    /// Creates the feed metrics and registers them (and their refresh) with `metrics`.
    pub fn install(feeds: Arc<FeedRegistry>, metrics: &Metrics) -> prometheus::Result<()> {
        let per_feed =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["feed"]);
        let m = Arc::new(FeedMetrics {
            feeds,
            ticks: per_feed("tickcast_feed_ticks_total", "Ticks ingested, per feed.")?,
            parse_errors: IntCounterVec::new(
                Opts::new(
                    "tickcast_feed_parse_errors_total",
                    "Malformed inputs counted and skipped, per feed and reason.",
                ),
                &["feed", "reason"],
            )?,
            last_tick_age: GaugeVec::new(
                Opts::new(
                    "tickcast_feed_last_tick_age_seconds",
                    "Seconds since the feed's last tick.",
                ),
                &["feed"],
            )?,
            upstream_gaps: per_feed(
                "tickcast_feed_upstream_gaps_total",
                "Upstream sequence jumps and resets seen by the feed (ticks the source lost).",
            )?,
            dropped: per_feed(
                "tickcast_feed_dropped_total",
                "Ticks a feed or sink had to drop (e.g. the NATS sink's queue was full), per feed.",
            )?,
            reconnects: per_feed(
                "tickcast_feed_reconnects_total",
                "Reconnect attempts to the source after the first connection, successful or not, per feed.",
            )?,
            up: IntGaugeVec::new(
                Opts::new("tickcast_feed_up", "1 when the feed is connected and running."),
                &["feed"],
            )?,
        });
        metrics.register(Box::new(m.ticks.clone()))?;
        metrics.register(Box::new(m.parse_errors.clone()))?;
        metrics.register(Box::new(m.last_tick_age.clone()))?;
        metrics.register(Box::new(m.upstream_gaps.clone()))?;
        metrics.register(Box::new(m.dropped.clone()))?;
        metrics.register(Box::new(m.reconnects.clone()))?;
        metrics.register(Box::new(m.up.clone()))?;
        metrics.add_source(m);
        Ok(())
    }
}

impl MetricsSource for FeedMetrics {
    fn refresh(&self) {
        for f in self.feeds.all() {
            let l = [f.name()];
            sync_counter(&self.ticks.with_label_values(&l), f.ticks_in());
            for reason in RejectReason::ALL {
                sync_counter(
                    &self
                        .parse_errors
                        .with_label_values(&[f.name(), reason.label()]),
                    f.parse_errors_for(reason),
                );
            }
            sync_counter(&self.upstream_gaps.with_label_values(&l), f.upstream_gaps());
            sync_counter(&self.dropped.with_label_values(&l), f.dropped());
            if let Some(last) = f.last_tick() {
                let age_us = TsMicros::now().0.saturating_sub(last.0);
                self.last_tick_age
                    .with_label_values(&l)
                    .set(age_us as f64 / 1e6);
            }
            sync_counter(&self.reconnects.with_label_values(&l), f.reconnects());
            self.up.with_label_values(&l).set(f.connected() as i64);
        }
    }
}
