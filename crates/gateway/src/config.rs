//! The gateway's limits and timings; `config/tickcast.toml` documents each for operators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickcast_bus::QueueLimits;

use crate::auth::{Authenticator, Secret};
use crate::limits::RateLimit;

/// Everything the gateway needs to know, already validated by the binary.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Listen backlog: connections the kernel holds while the accept loop catches up.
    pub backlog: u32,
    /// SO_SNDBUF for client sockets; `None` keeps the kernel's autotuning. Smaller means a stalled
    /// client is detected (and conflated) sooner and costs less kernel memory.
    pub socket_send_buffer: Option<usize>,
    /// How often queued ticks are written; zero writes as soon as a dispatch round ends (lowest
    /// latency). A few milliseconds gives fewer, fuller writes for less CPU per message.
    pub flush_interval: Duration,
    /// With `flush_interval` zero: after a write pass that took D, the next pass waits min(D, this)
    /// so that under load each connection's frames gather into fewer writes; idle, passes take
    /// microseconds and nothing waits. Zero: every pass right after routing.
    pub adaptive_flush_max: Duration,
    /// Most simultaneous WebSocket sessions; further upgrades get HTTP 503.
    pub max_connections: usize,
    /// Most simultaneous sessions from one source IP (0 = no limit); further upgrades get HTTP 429.
    pub max_connections_per_ip: usize,
    /// Inbound message rate per connection.
    pub rate_limit: RateLimit,
    /// Most topics one connection may subscribe to.
    pub max_topics_per_connection: usize,
    /// How long a topic that only subscribers asked for (no feed has published it) outlives its
    /// last subscriber before it is removed.
    pub requested_topic_grace: Duration,
    /// Largest client message (after reassembling fragments); larger closes with 1009.
    pub max_message_bytes: usize,
    /// Outbound queue bounds and overflow policy per connection.
    pub queue: QueueLimits,
    /// Idle time after which the server pings a client.
    pub ping_interval: Duration,
    /// Silence after a ping after which the client is considered dead and closed.
    pub pong_timeout: Duration,
    /// Longest a socket may refuse writes before the client is dropped.
    pub write_timeout: Duration,
    /// Longest an HTTP request head may take to arrive (slowloris guard).
    pub handshake_timeout: Duration,
    /// How long shutdown waits for queued frames to flush.
    pub shutdown_grace: Duration,
    /// The `heartbeat_ms` a subscribe may ask for; outside it the request gets `invalid_field`.
    pub heartbeats: HeartbeatLimits,
    /// Verifies credentials at the upgrade; `None` = authentication off (every topic allowed).
    pub auth: Option<Arc<Authenticator>>,
    /// Serve https/wss with this TLS config; `None` = plain http/ws.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Browser origins allowed to open a WebSocket or publish (403 otherwise); empty = any origin
    /// may subscribe, and only the server's own pages may publish.
    pub allowed_origins: Vec<String>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this>` (401
    /// otherwise), whether or not auth is on.
    pub metrics_token: Option<Secret>,
    /// Called on a shard's thread after many of its sessions closed at once, to hand the memory
    /// they freed back to the OS (the binary passes its allocator's collect; `None`: nothing). An
    /// allocator returns memory lazily, as its threads allocate again: a shard that went quiet after
    /// a mass disconnect would otherwise keep it.
    pub heap_trim: Option<fn()>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backlog: 4096,
            socket_send_buffer: None,
            flush_interval: Duration::ZERO,
            adaptive_flush_max: Duration::ZERO,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            rate_limit: RateLimit::default(),
            max_topics_per_connection: 1024,
            requested_topic_grace: Duration::from_secs(30),
            max_message_bytes: 64 * 1024,
            queue: QueueLimits::default(),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            heartbeats: HeartbeatLimits::default(),
            auth: None,
            tls: None,
            allowed_origins: Vec::new(),
            metrics_token: None,
            heap_trim: None,
        }
    }
}

/// The heartbeat intervals clients may ask for: the shortest bounds what one client can make a
/// shard do per second, the longest keeps "no heartbeat yet" meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatLimits {
    /// Shortest `heartbeat_ms`.
    pub min: Duration,
    /// Longest `heartbeat_ms`.
    pub max: Duration,
}

impl Default for HeartbeatLimits {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(100),
            max: Duration::from_secs(3600),
        }
    }
}

impl HeartbeatLimits {
    /// `ms` as an interval, if within the limits.
    pub fn interval(&self, ms: u64) -> Option<Duration> {
        let d = Duration::from_millis(ms);
        (self.min..=self.max).contains(&d).then_some(d)
    }
}
