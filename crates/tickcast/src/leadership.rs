//! The ingest node's leadership as `/metrics` shows it: whether this node publishes, its term, and
//! how often leadership moved (sampled from the NATS sink's [`LeaderStats`] at each scrape).

use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};
use tickcast_bus::Bus;
use tickcast_gateway::metrics::sync_counter;
use tickcast_gateway::{Metrics, MetricsSource};
use tickcast_ingest::nats::sink::LeaderStats;

/// Leadership metrics of an ingest node.
pub struct LeaderMetrics {
    stats: Arc<LeaderStats>,
    bus: Arc<Bus>,
    leader: IntGauge,
    term: IntGauge,
    takeovers: IntCounter,
    lost: IntCounter,
    step_downs: IntCounter,
    refused: IntCounter,
    discards: IntCounter,
}

impl LeaderMetrics {
    /// Creates the metrics and registers them (and their refresh) with `metrics`.
    pub fn install(
        stats: Arc<LeaderStats>,
        bus: Arc<Bus>,
        metrics: &Metrics,
    ) -> prometheus::Result<()> {
        let m = Arc::new(LeaderMetrics {
            stats,
            bus,
            leader: IntGauge::new(
                "tickcast_ingest_leader",
                "1 while this ingest node holds the lease and publishes, 0 while standby.",
            )?,
            term: IntGauge::new(
                "tickcast_ingest_term",
                "The term this node leads or last led: the stream sequence of its winning heartbeat.",
            )?,
            takeovers: IntCounter::new(
                "tickcast_ingest_takeovers_total",
                "Times this ingest node won the lease and started publishing.",
            )?,
            lost: IntCounter::new(
                "tickcast_ingest_takeover_attempts_lost_total",
                "Takeover attempts another node won (its append came first).",
            )?,
            step_downs: IntCounter::new(
                "tickcast_ingest_step_downs_total",
                "Times this node stopped publishing: an append refused or lost, NATS gone, a newer leader heard.",
            )?,
            refused: IntCounter::new(
                "tickcast_ingest_refused_appends_total",
                "Appends the stream refused because another node had appended since (the fence).",
            )?,
            discards: IntCounter::new(
                "tickcast_ingest_standby_discards_total",
                "Feed ticks discarded because this node was standby (the leader publishes them).",
            )?,
        });
        metrics.register(Box::new(m.leader.clone()))?;
        metrics.register(Box::new(m.term.clone()))?;
        metrics.register(Box::new(m.takeovers.clone()))?;
        metrics.register(Box::new(m.lost.clone()))?;
        metrics.register(Box::new(m.step_downs.clone()))?;
        metrics.register(Box::new(m.refused.clone()))?;
        metrics.register(Box::new(m.discards.clone()))?;
        metrics.add_source(m);
        Ok(())
    }
}

impl MetricsSource for LeaderMetrics {
    fn refresh(&self) {
        let s = &self.stats;
        self.leader.set(i64::from(s.is_leader()));
        self.term.set(s.term() as i64);
        sync_counter(&self.takeovers, s.takeovers());
        sync_counter(&self.lost, s.lost_attempts());
        sync_counter(&self.step_downs, s.step_downs());
        sync_counter(&self.refused, s.refused_appends());
        sync_counter(&self.discards, self.bus.standby_discards());
    }
}
