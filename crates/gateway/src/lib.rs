//! tickcast-gateway: the network edge.
//!
//! Owns the listener and accept loop ([`accept`]), the worker shards that each run a single-threaded
//! runtime with their slice of connections and their bus router ([`shard`]), the HTTP surface
//! (`/ws`, `/healthz`, `/readyz`, `/topics`, `/metrics`, the embedded dashboard: [`http`]), the
//! WebSocket session (reading and answering client requests: [`connection`]), the per-connection
//! writer that drains the outbound queue in gathered writes ([`writer`]), TLS for https/wss
//! ([`tls`], `transport`), and the gateway metrics.
//!
//! It does not make ticks (feeds do) or decide routing (the bus does). Reading WebSocket frames is
//! fastwebsockets' job (unmasking, UTF-8 and close checks); writing is ours, because every tick is
//! written as pre-encoded bytes shared by all subscribers.
#![forbid(unsafe_code)]

pub mod accept;
mod assets;
pub mod auth;
mod config;
mod connection;
mod credentials;
pub mod entitlements;
pub mod hooks;
mod http;
mod inbound;
pub mod limits;
pub mod metrics;
mod process;
pub mod shard;
mod state;
mod sweep;
pub mod tls;
mod transport;
mod writer;

pub use accept::{bind, Gateway};
pub use auth::{AuthConfig, Authenticator};
pub use config::GatewayConfig;
pub use hooks::{MetricsSource, PublishHandler, ReadinessSource};
pub use limits::RateLimit;
pub use metrics::Metrics;
pub use state::ServerState;
pub use tls::{server_config as tls_server_config, TlsError};
