//! The gateway's limits and timings; `config/tickcast.toml` documents each for operators.

use std::net::SocketAddr;
use std::time::Duration;

use tickcast_bus::QueueLimits;

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
    /// Most simultaneous WebSocket sessions; further upgrades get HTTP 503.
    pub max_connections: usize,
    /// Most topics one connection may subscribe to.
    pub max_topics_per_connection: usize,
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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backlog: 4096,
            socket_send_buffer: None,
            max_connections: 100_000,
            max_topics_per_connection: 1024,
            max_message_bytes: 64 * 1024,
            queue: QueueLimits::default(),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
