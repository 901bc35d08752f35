//! tickcast: assembles the server from its parts and runs it.
//!
//! Owns the configuration file format, its overrides and its resolution into each part's settings
//! ([`config`]; the `[[feeds]]` entries are the ingest crate's), the wiring of bus, feeds and
//! gateway with one shutdown token ([`server`]), the adapters through which the gateway sees the
//! feeds ([`feeds`]), and the helper every integration test uses to start
//! a real server on a free port ([`test_support`]). The `tickcast` binary (`main.rs`) adds the CLI,
//! logging, the allocator and signal handling on top.
#![forbid(unsafe_code)]

pub mod config;
pub mod feeds;
pub mod leadership;
pub mod server;
pub mod test_support;

pub use config::{Config, Settings};
pub use server::{start, Running};
