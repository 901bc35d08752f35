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
    /// Hand the write pass's sends to the kernel in batches through io_uring (Linux) instead of
    /// one `send(2)` each; where io_uring is unavailable the shard keeps `send(2)`.
    pub io_uring: bool,
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
    /// How long shutdown waits for queued frames to flush (and for closed connections to finish
    /// lingering).
    pub shutdown_grace: Duration,
    /// The `heartbeat_ms` a subscribe may ask for; outside it the request gets `invalid_field`.
    pub heartbeats: IntervalLimits,
    /// The `throttle_ms` (or `@<n>ms`) a subscribe may ask for; outside it the request gets
    /// `invalid_field`.
    pub throttle: IntervalLimits,
    /// Most wildcard subscriptions (`ticker.*`) one connection may hold; the topics they match
    /// count against `max_topics_per_connection`.
    pub max_patterns_per_connection: usize,
    /// How long, and for how many bytes, a connection the server closed keeps reading (and
    /// discarding) what the client still sends before the socket is closed.
    pub lingering: LingerLimits,
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
            io_uring: true,
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
            heartbeats: IntervalLimits::HEARTBEATS,
            throttle: IntervalLimits::THROTTLE,
            max_patterns_per_connection: 16,
            lingering: LingerLimits::default(),
            auth: None,
            tls: None,
            allowed_origins: Vec::new(),
            metrics_token: None,
            heap_trim: None,
        }
    }
}

/// The intervals clients may ask for (heartbeats, throttles): the shortest bounds what one client
/// can make a shard do per second, the longest keeps the interval meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalLimits {
    /// Shortest interval.
    pub min: Duration,
    /// Longest interval.
    pub max: Duration,
}

impl IntervalLimits {
    /// `heartbeat_ms`: 100 ms to an hour.
    pub const HEARTBEATS: IntervalLimits = IntervalLimits {
        min: Duration::from_millis(100),
        max: Duration::from_secs(3600),
    };
    /// `throttle_ms`: 10 ms (faster is hardly a throttle) to a minute.
    pub const THROTTLE: IntervalLimits = IntervalLimits {
        min: Duration::from_millis(10),
        max: Duration::from_secs(60),
    };

    /// `ms` as an interval, if within the limits.
    pub fn interval(&self, ms: u64) -> Option<Duration> {
        let d = Duration::from_millis(ms);
        (self.min..=self.max).contains(&d).then_some(d)
    }
}

/// The bounds of a lingering close, as nginx's `lingering_close`: after the server's close frame
/// and its FIN, the connection reads and discards the client's input until the client closes its
/// side, so that bytes the client sent before it saw the close never reach a closed socket (the
/// kernel would answer them with a reset, which can destroy the close frame in flight: browsers
/// then report 1006 instead of the code the server sent).
///
/// nginx defaults to 30 s in all and 5 s of silence, sized for HTTP request bodies; a WebSocket
/// client that saw our close frame stops sending at once (or after the one frame it was writing),
/// so a well-behaved client ends the linger within a round trip and these bounds only limit what a
/// client that does not close can cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LingerLimits {
    /// Longest a connection lingers in all (nginx `lingering_time`); zero turns lingering off
    /// (the socket closes as soon as the close frame is out).
    pub time: Duration,
    /// Longest a lingering connection waits for the client's next byte (nginx
    /// `lingering_timeout`): a client that went quiet has nothing left in flight.
    pub timeout: Duration,
    /// Most bytes discarded per connection; reaching it ends the linger at once, so a client
    /// sending at full speed costs at most this much reading.
    pub max_bytes: u64,
}

impl LingerLimits {
    /// Whether connections linger at all.
    pub fn enabled(&self) -> bool {
        !self.time.is_zero()
    }
}

impl Default for LingerLimits {
    fn default() -> Self {
        Self {
            // 2 s bounds what shutdown may wait for a client that keeps sending; 500 ms of
            // silence is above the round trip of almost every client, so one that answers our
            // close with its own close and FIN is waited for.
            time: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            // Room for a client that was sending a message of a few MiB when it was closed for
            // it (1009), at one read per 64 KiB.
            max_bytes: 4 * 1024 * 1024,
        }
    }
}
