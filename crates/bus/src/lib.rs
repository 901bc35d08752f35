//! tickcast-bus: moves encoded ticks from publishers to subscribers' outbound queues.
//!
//! Owns the topic registry with its last-value cache, history and epoch ([`TopicState`]), the
//! recovery of a reconnecting subscriber's missed ticks ([`TopicState::open`]), the publish path ([`Bus`],
//! [`PublishBatch`]) that hands one encoded frame to every worker shard with subscribers, the
//! single-threaded per-shard router ([`ShardRouter`]) that fans a frame out to that shard's
//! subscribers, the bounded per-subscriber queue with its overflow policy and the `gap` markers
//! that announce what the policy took away ([`OutQueue`]), and per-topic heartbeats.
//!
//! It does no I/O: sockets, the protocol and feeds live in other crates.
//!
//! Cost model: a publish touches each interested shard once (one lock-free queue push); fan-out inside a
//! shard is a refcount bump plus a push onto the subscriber's queue, with no atomics beyond the refcount,
//! no allocation once a queue has grown, and no waiting on a slow subscriber.
#![forbid(unsafe_code)]

mod bus;
mod history;
mod inbox;
mod patterns;
mod queue;
mod router;
mod tap;
mod throttle;
mod topic;

pub use bus::{
    BarsConfig, Bus, BusConfig, BusError, HistoryConfig, PublishBatch, TopicOrigin, TopicSnapshot,
    DEFAULT_BOOK_DEPTH, MAX_BOOK_DEPTH,
};
pub use history::{HistoryLimits, ENTRY_OVERHEAD as HISTORY_ENTRY_OVERHEAD};
pub use inbox::{Published, ShardInbox};
pub use queue::{
    Advanced, EntryKind, OutQueue, OverflowPolicy, Pushed, QueueEntry, QueueLimits, RoutedTick,
    Sealed, SharedTick,
};
pub use router::{
    Dirty, PatternOutcome, RouterStats, ShardRouter, StreamOptions, Subscriber, SubscriberId,
    TopicFilter,
};
pub use tap::BusTap;
pub use topic::{BookSnapshot, BookUpdate, LastTick, Opening, TopicId, TopicState, Upstream};
