//! tickcast-bus: moves encoded ticks from publishers to subscribers' outbound queues.
//!
//! Owns the topic registry with its last-value cache ([`TopicState`]), the publish path ([`Bus`],
//! [`PublishBatch`]) that hands one encoded frame to every worker shard with subscribers, the
//! single-threaded per-shard router ([`ShardRouter`]) that fans a frame out to that shard's
//! subscribers, and the bounded per-subscriber queue with its overflow policy ([`OutQueue`]).
//!
//! It does no I/O: sockets, the protocol and feeds live in other crates.
//!
//! Cost model: a publish touches each interested shard once (one lock-free queue push); fan-out inside a
//! shard is a refcount bump plus a push onto the subscriber's queue, with no atomics beyond the refcount,
//! no allocation once a queue has grown, and no waiting on a slow subscriber.
#![forbid(unsafe_code)]

mod bus;
mod inbox;
mod queue;
mod router;
mod tap;
mod topic;

pub use bus::{Bus, BusConfig, BusError, PublishBatch, TopicOrigin, TopicSnapshot};
pub use inbox::{Published, ShardInbox};
pub use queue::{Advanced, OutQueue, OverflowPolicy, Pushed, QueueLimits, RoutedTick, SharedTick};
pub use router::{Dirty, RouterStats, ShardRouter, Subscriber, SubscriberId};
pub use tap::BusTap;
pub use topic::{LastTick, TopicId, TopicState};
