//! tickcast-ingest: where ticks come from.
//!
//! Owns the [`Feed`] abstraction, the per-feed state operators watch ([`FeedStats`]), the
//! [`Publisher`] that normalizes a quote into a [`Tick`](tickcast_core::Tick) (assigning the per-topic
//! `seq` and the ingest `ts`), encodes it once and hands it to the bus, and the sources themselves
//! (today: [`synthetic`]).
//!
//! It does not route ticks to subscribers (the bus does) or speak to clients (the gateway does).
#![forbid(unsafe_code)]

mod feed;
mod publisher;
mod stats;
pub mod synthetic;

pub use feed::{Feed, FeedContext, FeedError, FeedFuture};
pub use publisher::{Publisher, Quote};
pub use stats::{FeedRegistry, FeedStats};
