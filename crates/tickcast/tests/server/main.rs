//! The integration tests that need nothing of their own process, linked into one binary so the
//! suite links once instead of once per file: protocol v1, protocol v2's stream guarantees
//! (recovery, gap markers, heartbeats), feeds, the HTTP surface, limits and authentication, TLS,
//! the lingering close, and `docs/asyncapi.yaml` checked against real messages. Each runs the real
//! server on 127.0.0.1:0 and talks to it over real sockets with independent clients.
//!
//! Kept as separate binaries: `heap.rs` (its own global allocator), `abuse.rs` and `fanout.rs`
//! (they assert on this process's RSS, so other tests must not share it), and the ones that spawn
//! the real binary or run other programs alongside it (`browser.rs`, `memory.rs`,
//! `observability.rs`, `scaleout.rs`). `asyncapi.rs` stays here: it runs `node` only once its
//! in-process server has shut down, on the messages it recorded.

#[path = "../support/mod.rs"]
mod support;

mod asyncapi;
mod feeds;
mod http;
mod linger;
mod market;
mod protocol;
mod security;
mod shaping;
mod sse;
mod streams;
mod tls;
