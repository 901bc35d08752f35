//! `[server]`: the node's role, its listener and threads, and how often it writes. Defaults are the
//! gateway's and the bus's own; `workers = 0` (one shard per core) is the binary's.

use std::net::SocketAddr;

use serde::Deserialize;
use tickcast_bus::BusConfig;
use tickcast_gateway::GatewayConfig;

use super::{millis, ConfigError};

/// Most worker shards accepted.
const MAX_WORKERS: usize = 64;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// `standalone` (default) or `ingest` (also publish every tick to NATS, see `[nats]`).
    pub role: Role,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Worker shards (threads serving connections); 0 = one per CPU core.
    pub workers: usize,
    /// Listen backlog.
    pub backlog: u32,
    /// Ticks buffered per shard between the feeds and the shard.
    pub shard_inbox_capacity: usize,
    /// SO_SNDBUF of client sockets in bytes; 0 keeps the kernel's autotuning.
    pub socket_send_buffer_bytes: usize,
    /// Write queued ticks every this many milliseconds; 0 = as soon as they are routed.
    pub flush_interval_ms: u64,
    /// With `flush_interval_ms = 0`: longest a write pass waits behind the previous one, which it
    /// waits as long as that one took; 0 = no waiting.
    pub adaptive_flush_max_ms: u64,
    /// Batch the write pass's sends through io_uring (Linux; falls back to send(2) where it is
    /// unavailable).
    pub io_uring: bool,
    /// Time given to flush queued frames at shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        let g = GatewayConfig::default();
        Self {
            role: Role::Standalone,
            listen: g.listen,
            workers: 0,
            backlog: g.backlog,
            shard_inbox_capacity: BusConfig::default().inbox_capacity,
            socket_send_buffer_bytes: g.socket_send_buffer.unwrap_or(0),
            flush_interval_ms: millis(g.flush_interval),
            adaptive_flush_max_ms: millis(g.adaptive_flush_max),
            io_uring: g.io_uring,
            shutdown_grace_ms: millis(g.shutdown_grace),
        }
    }
}

/// What a node does in a NATS scale-out. A gateway node is a `standalone` node whose feed is
/// `kind = "nats"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Feeds and gateway in one process.
    #[default]
    Standalone,
    /// Feeds, plus every tick published to NATS for gateway nodes; the listener still serves
    /// `/healthz`, `/readyz`, `/metrics` (and `/ws`, for debugging).
    Ingest,
}

impl ServerSection {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers > MAX_WORKERS {
            return Err(ConfigError::Invalid(format!(
                "server.workers is {}, at most {MAX_WORKERS}",
                self.workers
            )));
        }
        if self.shard_inbox_capacity == 0 {
            return Err(ConfigError::Invalid(
                "server.shard_inbox_capacity must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Number of shards after resolving `workers = 0`.
    pub fn shards(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    /// Writes the gateway settings this section holds into `g`.
    pub(super) fn configure(&self, g: &mut GatewayConfig) {
        let ms = std::time::Duration::from_millis;
        g.listen = self.listen;
        g.backlog = self.backlog;
        g.socket_send_buffer =
            (self.socket_send_buffer_bytes > 0).then_some(self.socket_send_buffer_bytes);
        g.flush_interval = ms(self.flush_interval_ms);
        g.adaptive_flush_max = ms(self.adaptive_flush_max_ms);
        g.io_uring = self.io_uring;
        g.shutdown_grace = ms(self.shutdown_grace_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn workers_and_inbox_are_checked() {
        let invalid = |toml: &str| match Config::from_toml(toml).and_then(Config::resolve) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{toml}: {other:?}"),
        };
        assert!(invalid("[server]\nworkers = 65").contains("server.workers is 65, at most 64"));
        assert!(invalid("[server]\nshard_inbox_capacity = 0").contains("shard_inbox_capacity"));
        let s = Config::from_toml("[server]\nworkers = 3\nsocket_send_buffer_bytes = 8192")
            .and_then(Config::resolve)
            .unwrap();
        assert_eq!(s.bus.shards, 3);
        assert_eq!(s.gateway.socket_send_buffer, Some(8192));
        assert!(ServerSection::default().shards() >= 1, "0 = one per core");
    }

    #[test]
    fn roles_parse() {
        let c = Config::from_toml("[server]\nrole = \"ingest\"").unwrap();
        assert_eq!(c.server.role, Role::Ingest);
        assert!(matches!(
            Config::from_toml("[server]\nrole = \"edge\""),
            Err(ConfigError::Parse { .. })
        ));
    }
}
