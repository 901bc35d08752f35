//! Per-topic shared state: identity, sequence counter, last-value cache and which shards listen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tickcast_core::{Frame, Seq, Topic, TsMicros};

/// Dense numeric id of a topic, used to index per-shard tables without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub u32);

/// The latest tick of a topic, as the exact bytes subscribers receive.
#[derive(Debug, Clone)]
pub struct LastTick {
    /// Its sequence number.
    pub seq: Seq,
    /// Its ingest time.
    pub ts: TsMicros,
    /// Its encoded frame.
    pub frame: Frame,
}

/// Everything the bus knows about one topic; shared by publishers and shards.
#[derive(Debug)]
pub struct TopicState {
    id: TopicId,
    topic: Topic,
    /// Next seq handed out by [`TopicState::next_seq`]; per topic, so several feeds agree.
    seq: AtomicU64,
    /// Last-value cache. A mutex rather than an atomic pointer so storing a frame allocates nothing;
    /// it is held for a refcount bump, by one publisher and the rare subscribe.
    last: Mutex<Option<LastTick>>,
    /// Bit i set = shard i has at least one subscriber; publishers skip the others.
    pub(crate) shard_mask: AtomicU64,
    /// Whether a feed has claimed this topic. A topic only subscribers asked for is "requested": it
    /// counts against the requested-topic limit, never a feed's, and is reaped once unused.
    fed: AtomicBool,
    /// When the reaper first saw this requested topic unused; cleared when it is used again.
    pub(crate) idle_since: Mutex<Option<Instant>>,
}

impl TopicState {
    pub(crate) fn new(id: TopicId, topic: Topic, fed: bool) -> Self {
        Self {
            id,
            topic,
            seq: AtomicU64::new(0),
            last: Mutex::new(None),
            shard_mask: AtomicU64::new(0),
            fed: AtomicBool::new(fed),
            idle_since: Mutex::new(None),
        }
    }

    /// Whether a feed has claimed this topic (it may still have published nothing).
    pub fn is_fed(&self) -> bool {
        self.fed.load(Ordering::Acquire)
    }

    /// Marks the topic as a feed's; true if it was only requested until now.
    pub(crate) fn claim_for_feed(&self) -> bool {
        !self.fed.swap(true, Ordering::AcqRel)
    }

    /// Whether a tick has been published (the last-value cache is filled).
    pub fn has_data(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The dense id.
    pub fn id(&self) -> TopicId {
        self.id
    }

    /// The topic name.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Assigns the next per-topic sequence number (1 for the first tick).
    pub fn next_seq(&self) -> Seq {
        Seq(self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Moves the counter forward to at least `seq`, for ticks whose seq was assigned upstream.
    pub fn observe_seq(&self, seq: Seq) {
        self.seq.fetch_max(seq.0, Ordering::Relaxed);
    }

    /// The cached latest tick, if any.
    pub fn last(&self) -> Option<LastTick> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stores `frame` as the latest tick unless a newer one is there; returns whether it was newer.
    pub(crate) fn store_last(&self, seq: Seq, ts: TsMicros, frame: &Frame) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().is_some_and(|l| l.seq >= seq) {
            return false;
        }
        *last = Some(LastTick {
            seq,
            ts,
            frame: frame.clone(),
        });
        true
    }

    /// Whether any shard has a subscriber.
    pub fn has_subscribers(&self) -> bool {
        self.shard_mask.load(Ordering::Relaxed) != 0
    }
}
