//! The integration tests that need nothing of their own process, linked into one binary so the
//! suite links once instead of once per file: protocol v1, feeds, the HTTP surface, limits and
//! authentication, TLS, and the lingering close. Each runs the real server on 127.0.0.1:0 and talks
//! to it over real sockets with independent clients.
//!
//! Kept as separate binaries: `heap.rs` (its own global allocator), `abuse.rs` and `fanout.rs`
//! (they assert on this process's RSS, so other tests must not share it), and the ones that spawn
//! the real binary or other programs (`browser.rs`, `memory.rs`, `observability.rs`,
//! `scaleout.rs`).

#[path = "../support/mod.rs"]
mod support;

mod feeds;
mod http;
mod linger;
mod protocol;
mod security;
mod tls;
