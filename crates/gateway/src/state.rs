//! State shared by every shard and the accept loop.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use dashmap::DashMap;
use tickcast_bus::Bus;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::hooks::{PublishHandler, ReadinessSource};
use crate::metrics::Metrics;

/// What the whole server shares: one per process.
#[derive(Debug)]
pub struct ServerState {
    /// Settings.
    pub config: GatewayConfig,
    /// The topic bus.
    pub bus: Arc<Bus>,
    /// What `/readyz` waits for besides shutdown (the feeds, set up by the binary).
    readiness: RwLock<Vec<Arc<dyn ReadinessSource>>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Cancelled on shutdown: readiness turns false, new sessions are refused, sessions close 1001.
    pub shutdown: CancellationToken,
    /// Live WebSocket sessions, for the connection limit.
    sessions: AtomicUsize,
    /// Live sessions per source IP, kept only while `max_connections_per_ip` is set; an entry is
    /// removed when its count drops to zero, so the map holds only connected addresses.
    per_ip: DashMap<IpAddr, u32>,
    draining: AtomicBool,
    /// What `POST /publish` calls; set once at startup when an HTTP feed is configured, else 404.
    publish: OnceLock<Arc<dyn PublishHandler>>,
}

impl ServerState {
    /// Shared state for a server.
    pub fn new(config: GatewayConfig, bus: Arc<Bus>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            config,
            bus,
            readiness: RwLock::new(Vec::new()),
            metrics: Metrics::new(),
            shutdown,
            sessions: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            draining: AtomicBool::new(false),
            publish: OnceLock::new(),
        })
    }

    /// Enables `POST /publish` through `handler`; only the first call takes effect.
    pub fn set_publish_handler(&self, handler: Arc<dyn PublishHandler>) {
        let _ = self.publish.set(handler);
    }

    /// The `POST /publish` handler, if one is set.
    pub fn publish_handler(&self) -> Option<&Arc<dyn PublishHandler>> {
        self.publish.get()
    }

    /// Makes `/readyz` wait for `source` too.
    pub fn add_readiness(&self, source: Arc<dyn ReadinessSource>) {
        self.readiness
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Takes a connection slot for a client at `peer` reading over `transport`, or
    /// says which limit refused it. Both transports share the limits.
    pub(crate) fn try_open_session(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        transport: Wire,
    ) -> Result<SessionSlot, SlotRefused> {
        let prev = self.sessions.fetch_add(1, Ordering::AcqRel);
        if prev >= self.config.max_connections {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(SlotRefused::Global);
        }
        let per_ip_limit = self.config.max_connections_per_ip;
        // IPv4-mapped IPv6 addresses count as the IPv4 address they are.
        let ip = peer
            .map(|ip| ip.to_canonical())
            .filter(|_| per_ip_limit > 0);
        if let Some(ip) = ip {
            // The entry guard locks the shard of the map, so check-and-increment is atomic.
            let mut count = self.per_ip.entry(ip).or_insert(0);
            // `per_ip_limit >= 1`, so a refused entry is never a fresh zero left behind.
            if *count as usize >= per_ip_limit {
                drop(count);
                self.sessions.fetch_sub(1, Ordering::AcqRel);
                return Err(SlotRefused::PerIp);
            }
            *count += 1;
        }
        self.metrics
            .connections_open
            .with_label_values(&[transport.label()])
            .inc();
        Ok(SessionSlot {
            state: self.clone(),
            ip,
            transport,
        })
    }

    /// Live sessions from `ip` (counted only while `max_connections_per_ip` is set).
    pub fn sessions_from(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&ip.to_canonical()).map_or(0, |n| *n)
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

    /// Readiness: not shutting down and every [`ReadinessSource`] ready. `Err` says why not.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if self.is_draining() {
            why.push("shutting down".to_string());
        }
        for source in self
            .readiness
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            source.not_ready(&mut why);
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }
}

/// Which limit refused a session slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRefused {
    /// `max_connections` (HTTP 503).
    Global,
    /// `max_connections_per_ip` (HTTP 429).
    PerIp,
}

/// A held session slot; releases it (and its per-IP count) on drop.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    state: Arc<ServerState>,
    /// The address counted in `per_ip`, if one was.
    ip: Option<IpAddr>,
    /// What the client reads over (a byte, where `&str` would grow every session's task).
    transport: Wire,
}

/// The transport a client reads over: the `transport` label of the connection metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// A WebSocket session (`/ws`).
    Ws,
    /// A Server-Sent Events stream (`/sse`).
    Sse,
}

impl Wire {
    /// Its metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Wire::Ws => "ws",
            Wire::Sse => "sse",
        }
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            if let Some(mut n) = self.state.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
            }
            self.state.per_ip.remove_if(&ip, |_, n| *n == 0);
        }
        self.state.sessions.fetch_sub(1, Ordering::AcqRel);
        self.state
            .metrics
            .connections_open
            .with_label_values(&[self.transport.label()])
            .dec();
    }
}
