//! tickcast-gateway: the network edge.
//!
//! Owns the HTTP surface (`/ws`, `/healthz`, `/readyz`, `/topics`, `/metrics`, `POST /publish`, the
//! embedded dashboard), the WebSocket sessions (reading and answering client requests, and the
//! writer that drains each connection's queue in gathered writes), the worker shards that each run
//! a single-threaded runtime with their slice of connections and their bus router, TLS for
//! https/wss, authentication, and the gateway's metrics.
//!
//! It does not make ticks (feeds do) or decide routing (the bus does), and it does not know the
//! feeds: what it needs of them (readiness, publishing, metrics) are the traits in [`hooks`], which
//! the binary implements. Reading WebSocket frames is fastwebsockets' job (unmasking, UTF-8 and
//! close checks); writing is ours, because every tick is written as pre-encoded bytes shared by all
//! subscribers.
//!
//! The modules form a tree without cycles; each imports only modules below it:
//!
//! ```text
//! gateway  (bind + run)
//!   └─ shard    (thread and runtime, accept loop, write pass, timers)
//!        └─ http     (upgrade, publish, status, assets)
//!             └─ session  (state, reader, requests, writer, keepalive decisions, inbound stream,
//!                          lingering close)
//!                  └─ local    (per-shard state: router, cork, counters, session list)
//! and, used from anywhere above: state, net (listener, transport, TLS), auth, metrics, hooks,
//! limits, config, process.
//! ```
//! The unit tests in `module_tree.rs` fail on a cycle or an upward import.
#![forbid(unsafe_code)]

pub mod auth;
mod config;
mod gateway;
pub mod hooks;
mod http;
pub mod limits;
mod local;
pub mod metrics;
pub mod net;
mod process;
mod session;
mod shard;
mod state;

pub use auth::{AuthConfig, Authenticator};
pub use config::{GatewayConfig, IntervalLimits, LingerLimits};
pub use gateway::Gateway;
pub use hooks::{MetricsSource, PublishHandler, ReadinessSource};
pub use limits::RateLimit;
pub use metrics::Metrics;
pub use net::listener::bind;
pub use net::tls;
pub use net::tls::{server_config as tls_server_config, TlsError};
pub use state::ServerState;

#[cfg(test)]
mod module_tree;
