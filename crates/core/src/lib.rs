//! tickcast-core: the vocabulary every other tickcast crate speaks.
//!
//! Owns the tick model ([`Tick`], [`Seq`], [`TsMicros`], [`Price`]), [`Topic`] validation, the frame
//! codec that serializes a tick once into a complete, unmasked RFC 6455 text frame ([`Frame`]), the
//! client protocol (parsing requests, encoding replies; the v2 epochs, gap markers and heartbeats in
//! [`stream`]), the market-data model ([`market`]: exact decimals, order books, trades, bars), and the inbound frame-boundary tracker
//! ([`wire`]).
//!
//! It does no I/O and knows nothing about sockets, subscribers or feeds: the bus, the ingesters and the
//! gateway build on it, and it can be tested and fuzzed on bytes alone.
#![deny(unsafe_code)]

pub mod frame;
pub mod json;
pub mod market;
pub mod prefetch;
pub mod protocol;
pub mod stream;
pub mod tick;
pub mod topic;
pub mod wire;

pub use frame::{CloseCode, Frame};
pub use protocol::{ClientRequest, ProtocolError, RequestId, ServerReply};
pub use stream::{Epoch, GapReason, NotRecovered};
pub use tick::{Price, Seq, Size, Tick, TsMicros};
pub use topic::{Topic, TopicClass, TopicError, TopicPattern};
