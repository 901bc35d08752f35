//! Wiring: one bus, the feeds publishing to it, the gateway serving it, one shutdown token for all.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tickcast_bus::Bus;
use tickcast_gateway::{Gateway, ServerState};
use tickcast_ingest::nats::sink::LeaderStats;
use tickcast_ingest::{Feed, FeedContext, FeedRegistry, FeedStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::feeds::{FeedMetrics, FeedReadiness, HttpPublish};
use crate::leadership::LeaderMetrics;

/// A started server.
pub struct Running {
    addr: SocketAddr,
    state: Arc<ServerState>,
    feed_registry: Arc<FeedRegistry>,
    gateway: JoinHandle<std::io::Result<()>>,
    feeds: Vec<JoinHandle<()>>,
    /// Addresses feeds listen on (TCP feeds), by feed name.
    feed_addrs: Vec<(String, SocketAddr)>,
    /// Leadership of an ingest node (its NATS sink), `None` for other roles.
    leader: Option<Arc<LeaderStats>>,
}

impl Running {
    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Leadership of an ingest node's NATS sink (`None` unless `server.role = "ingest"`).
    pub fn leader(&self) -> Option<&Arc<LeaderStats>> {
        self.leader.as_ref()
    }

    /// Shared server state (bus, metrics), for tests and embedding.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Every feed's stats.
    pub fn feeds(&self) -> &Arc<FeedRegistry> {
        &self.feed_registry
    }

    /// The address feed `name` listens on (TCP feeds; resolves port 0), if any.
    pub fn feed_addr(&self, name: &str) -> Option<SocketAddr> {
        self.feed_addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Starts a graceful shutdown and waits for it: readiness turns false, clients get 1001, queued
    /// frames flush within the grace period, feeds stop.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.set_draining();
        self.state.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after its token is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.gateway
            .await
            .context("gateway task failed")?
            .context("gateway failed")?;
        for f in self.feeds {
            let _ = f.await;
        }
        Ok(())
    }
}

/// Runs one feed and watches it: a feed that fails or panics is logged and marked stopped, which
/// turns `/readyz` false (when the feed is required) and `tickcast_feed_up` 0. The server keeps
/// serving cached data rather than dropping every client; it never reports ready on a dead feed.
async fn supervise(feed: Box<dyn Feed>, ctx: FeedContext, stats: Arc<FeedStats>) {
    let name = feed.name().to_string();
    // A task of its own, so a panic is caught by the runtime and seen here as a JoinError.
    let failure = match tokio::spawn(feed.run(ctx)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            format!("panicked: {what}")
        }
        Err(e) => e.to_string(),
    };
    tracing::error!(feed = %name, error = %failure, "feed stopped");
    stats.set_failed(failure);
}

/// Builds and starts the server described by `settings` (a config, resolved) on the current tokio
/// runtime.
pub async fn start(mut settings: Settings) -> anyhow::Result<Running> {
    // The ingest role's seq space lives in the JetStream stream, and so does its epoch: connect
    // first, so the bus (and every client of this node) uses the epoch the stream holds.
    let mut sink = None;
    if let Some(config) = settings.nats_sink.take() {
        let connected = tickcast_ingest::nats::sink::connect(config)
            .await
            .context("cannot start the NATS sink")?;
        settings.bus.epoch = Some(connected.epoch().clone());
        sink = Some(connected);
    }
    let bus = Bus::new(&settings.bus);
    let registry = Arc::new(FeedRegistry::default());
    let shutdown = CancellationToken::new();
    let listen = settings.gateway.listen;
    let state = ServerState::new(settings.gateway, bus.clone(), shutdown.clone());
    state.add_readiness(Arc::new(FeedReadiness(registry.clone())));
    FeedMetrics::install(registry.clone(), &state.metrics)
        .context("cannot register the feed metrics")?;

    // Build every feed before binding, so a bad feed (busy port, missing file, bad URL) fails
    // startup with one clear message naming it. Nothing runs until all are built.
    let mut feeds: Vec<(Box<dyn Feed>, Arc<FeedStats>)> = Vec::new();
    let mut feed_addrs = Vec::new();
    for feed in settings.feeds {
        let built = tickcast_ingest::build(feed, &bus)?;
        if let Some(addr) = built.local_addr {
            feed_addrs.push((built.feed.name().to_string(), addr));
        }
        if let Some(hook) = built.publish_hook {
            state.set_publish_handler(Arc::new(HttpPublish(hook)));
        }
        feeds.push((built.feed, built.stats));
    }

    // The ingest role's NATS sink starts before any feed publishes (and before the listener, so a
    // failure leaves nothing running): it resumes every topic's seq from JetStream first, so a
    // restarted ingest node continues the sequences gateways know.
    let mut sink_task = None;
    let mut leader = None;
    if let Some(sink) = sink {
        let sink = sink
            .start(&bus, shutdown.clone())
            .await
            .context("cannot start the NATS sink")?;
        registry.register(sink.stats.clone());
        LeaderMetrics::install(sink.leader.clone(), bus.clone(), &state.metrics)
            .context("cannot register the leadership metrics")?;
        leader = Some(sink.leader.clone());
        sink_task = Some(sink.task);
    }

    let gateway =
        Gateway::bind(state.clone()).with_context(|| format!("cannot listen on {listen}"))?;
    let addr = gateway.local_addr()?;
    let gateway = tokio::spawn(gateway.run());

    let mut handles = Vec::new();
    handles.extend(sink_task);
    for (feed, stats) in feeds {
        registry.register(stats.clone());
        let ctx = FeedContext::new(bus.clone(), stats.clone(), shutdown.clone());
        handles.push(tokio::spawn(supervise(feed, ctx, stats)));
    }
    let scheme = if state.config.tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    tracing::info!(%addr, shards = bus.shard_count(), "tickcast listening; WebSocket at {scheme}://{addr}/ws");
    Ok(Running {
        addr,
        state,
        feed_registry: registry,
        gateway,
        feeds: handles,
        feed_addrs,
        leader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_bus::BusConfig;
    use tickcast_core::TsMicros;
    use tickcast_ingest::{FeedError, FeedFuture};

    /// A feed that fails at once, by panicking or with an error.
    struct Dies {
        panics: bool,
    }

    impl Feed for Dies {
        fn name(&self) -> &str {
            "dies"
        }

        fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
            Box::pin(async move {
                ctx.publisher.stats().set_connected(true);
                if self.panics {
                    panic!("boom");
                }
                Err(FeedError::Config {
                    feed: "dies".into(),
                    reason: "gone".into(),
                })
            })
        }
    }

    #[tokio::test]
    async fn a_feed_that_panics_or_fails_is_marked_stopped_and_not_ready() {
        for panics in [true, false] {
            let bus = Bus::new(&BusConfig::default());
            let stats = FeedStats::new("dies", "test");
            let ctx = FeedContext::new(bus, stats.clone(), CancellationToken::new());
            supervise(Box::new(Dies { panics }), ctx, stats.clone()).await;
            let why = stats.not_ready_reason(TsMicros::now()).expect("not ready");
            let expected = if panics { "panicked: boom" } else { "gone" };
            assert!(why.contains("stopped") && why.contains(expected), "{why}");
            assert!(!stats.connected());
        }
    }
}
