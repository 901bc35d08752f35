//! tickcast-ingest: where ticks come from.
//!
//! Owns the [`Feed`] abstraction, the per-feed state operators watch ([`FeedStats`]), the
//! [`Publisher`] that normalizes a quote into a [`Tick`](tickcast_core::Tick) (assigning the per-topic
//! `seq` and the ingest `ts`), encodes it once and hands it to the bus, and the sources themselves:
//! [`synthetic`], [`tcp`] (NDJSON publishers), [`replay`] (JSONL/CSV files), [`upstream`] (WebSocket
//! client of another tickcast or an exchange, via adapters), [`http`] (`POST /publish`) and [`nats`]
//! (scale-out: the sink of an ingest node and the feed of a gateway node). Text
//! inputs share one parser ([`parse`], simd-json in place), one line splitter ([`mod@line`]) and one
//! path to the bus ([`sink`]), so bad input is counted per reason ([`RejectReason`]) the same way
//! everywhere. Each source's settings struct is also its `[[feeds]]` entry of the config file, with its
//! defaults and its one set of rules; [`spec`] gathers them into [`FeedConfig`] and builds feeds
//! from it.
//!
//! It does not route ticks to subscribers (the bus does) or speak to clients (the gateway does).
#![forbid(unsafe_code)]

pub mod bars;
pub mod csv;
mod feed;
pub mod gaps;
pub mod http;
pub mod line;
pub mod market_line;
pub mod nats;
pub mod parse;
mod publisher;
pub mod reject;
pub mod replay;
pub mod sink;
pub mod spec;
mod stats;
pub mod synthetic;
pub mod synthetic_market;
pub mod tcp;
pub mod upstream;

pub use feed::{Feed, FeedContext, FeedError, FeedFuture};
pub use http::{PublishHook, PublishReport};
pub use publisher::{Publisher, Quote};
pub use reject::{Reject, RejectReason};
pub use spec::{build, BuiltFeed, FeedConfig, FeedConfigError};
pub use stats::{FeedRegistry, FeedStats};
