//! tickcast-loadgen: drives a tickcast server with WebSocket subscribers and NDJSON
//! publishers on loopback and reports delivered rate, latency, sequence gaps (announced by the
//! server's gap markers or not) and disconnects.
//!
//! The binary (`src/main.rs`) only calls [`cli::run_cli`]; everything else lives here so tests
//! and benchmarks can use the pieces directly.
#![deny(unsafe_code)]

pub mod book;
pub mod cli;
pub mod control;
pub mod curves;
pub mod message;
pub mod plot;
pub mod procstat;
pub mod progress;
pub mod publish;
pub mod report;
pub mod run;
pub mod scenario;
pub mod seqcheck;
pub mod stats;
pub mod subscribe;
pub mod sys;
pub mod target;
pub mod topics;
pub mod ws;
