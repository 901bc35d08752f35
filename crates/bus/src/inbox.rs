//! A shard's inbox: the one lock-free queue publishers push into, and the wake-up that goes with it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use tickcast_core::{Frame, Seq, TopicClass, TsMicros};
use tokio::sync::Notify;

use crate::topic::TopicId;

/// One published tick on its way to a shard.
#[derive(Debug, Clone)]
pub struct Published {
    /// Which topic.
    pub topic: TopicId,
    /// Its seq, so a subscriber that just got the same tick as a snapshot skips it.
    pub seq: Seq,
    /// Its ingest time, for the tick-to-write latency metric.
    pub ts: TsMicros,
    /// The encoded frame, shared with every other shard and subscriber.
    pub frame: Frame,
    /// For an `upstream` gap marker (its seq is then the last seq it covers), the first seq it
    /// covers; `None` for a tick.
    pub gap_from: Option<Seq>,
    /// A `reset` (the frame): the topic's seq space started over, so subscribers' positions go
    /// back to 0 before the new epoch's ticks.
    pub reset: bool,
    /// The topic's class, so a queue knows how it may lose this tick without a topic lookup.
    pub class: TopicClass,
}

/// Bounded multi-producer queue into one shard. Bounded so a stalled shard cannot grow memory without
/// limit; when full, the publish is dropped for that shard and counted in `overflows`, never waited on.
#[derive(Debug)]
pub struct ShardInbox {
    queue: ArrayQueue<Published>,
    /// Set by the shard before it parks, so publishers only pay for a wake-up when it sleeps.
    sleeping: AtomicBool,
    notify: Notify,
    overflows: AtomicU64,
}

impl ShardInbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
            sleeping: AtomicBool::new(false),
            notify: Notify::new(),
            overflows: AtomicU64::new(0),
        }
    }

    pub(crate) fn push(&self, item: Published) {
        if self.queue.push(item).is_err() {
            self.overflows.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes the shard if it is parked.
    pub(crate) fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Takes the oldest item.
    pub fn pop(&self) -> Option<Published> {
        self.queue.pop()
    }

    /// Waits until something may be in the queue.
    pub async fn wait(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        self.notify.notified().await;
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Ticks dropped because this inbox was full.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
