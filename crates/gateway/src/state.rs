//! State shared by every shard and the accept loop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tickcast_bus::Bus;
use tickcast_core::TsMicros;
use tickcast_ingest::{FeedRegistry, PublishHook};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::metrics::Metrics;

/// What the whole server shares: one per process.
#[derive(Debug)]
pub struct ServerState {
    /// Settings.
    pub config: GatewayConfig,
    /// The topic bus.
    pub bus: Arc<Bus>,
    /// Feeds, for `/readyz` and metrics.
    pub feeds: Arc<FeedRegistry>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Cancelled on shutdown: readiness turns false, new sessions are refused, sessions close 1001.
    pub shutdown: CancellationToken,
    /// Live WebSocket sessions, for the connection limit.
    sessions: AtomicUsize,
    draining: AtomicBool,
    /// What `POST /publish` calls; set once at startup when an HTTP feed is configured, else 404.
    publish_hook: OnceLock<Arc<dyn PublishHook>>,
}

impl ServerState {
    /// Shared state for a server.
    pub fn new(
        config: GatewayConfig,
        bus: Arc<Bus>,
        feeds: Arc<FeedRegistry>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            bus,
            feeds,
            metrics: Metrics::new(),
            shutdown,
            sessions: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            publish_hook: OnceLock::new(),
        })
    }

    /// Enables `POST /publish` through `hook`; only the first call takes effect.
    pub fn set_publish_hook(&self, hook: Arc<dyn PublishHook>) {
        let _ = self.publish_hook.set(hook);
    }

    /// The `POST /publish` handler, if an HTTP feed is configured.
    pub fn publish_hook(&self) -> Option<&Arc<dyn PublishHook>> {
        self.publish_hook.get()
    }

    /// Takes a session slot, or `None` at the connection limit.
    pub(crate) fn try_open_session(self: &Arc<Self>) -> Option<SessionSlot> {
        let prev = self.sessions.fetch_add(1, Ordering::AcqRel);
        if prev >= self.config.max_connections {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.metrics.connections_open.inc();
        Some(SessionSlot {
            state: self.clone(),
        })
    }

    /// Live sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    /// Marks the server as shutting down (readiness false).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire) || self.shutdown.is_cancelled()
    }

    /// Readiness: not shutting down and every required feed connected (and live, when it has a
    /// `max_idle`). `Err` says why not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if self.is_draining() {
            why.push("shutting down".to_string());
        }
        let now = TsMicros::now();
        for f in self.feeds.all() {
            if let Some(reason) = f.not_ready_reason(now).filter(|_| f.required()) {
                why.push(reason);
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }
}

/// A held session slot; releases it on drop.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    state: Arc<ServerState>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.state.sessions.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.connections_open.dec();
    }
}
