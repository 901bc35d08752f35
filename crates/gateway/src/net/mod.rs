//! The network below HTTP: binding the listener ([`listener`]), the byte stream of an upgraded
//! connection, plain or TLS ([`transport`]), and loading TLS certificates ([`tls`]).
//!
//! Knows nothing of sessions, shards or HTTP routes.

pub mod listener;
pub mod tls;
pub(crate) mod transport;
