//! The topic registry and the publish path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use tickcast_core::{Frame, Seq, Topic, TsMicros};

use crate::inbox::{Published, ShardInbox};
use crate::tap::BusTap;
use crate::topic::{TopicId, TopicState};

/// Sizes of the bus; see `config/tickcast.toml` for the operator-facing documentation.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Number of worker shards (at most 64); each has its own inbox and router.
    pub shards: usize,
    /// Capacity of each shard's inbox, in ticks. Full = the tick is dropped for that shard and counted.
    pub inbox_capacity: usize,
    /// Most topics the bus will hold; creating more (by a feed or a subscribe) is refused.
    pub max_topics: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            shards: 1,
            inbox_capacity: 65_536,
            max_topics: 100_000,
        }
    }
}

/// Why the bus refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Creating the topic would exceed `max_topics`.
    #[error("topic limit of {limit} reached; cannot create {topic}")]
    TopicLimit { limit: usize, topic: Topic },
}

/// Point-in-time view of one topic, for `/topics` and tests.
#[derive(Debug, Clone)]
pub struct TopicSnapshot {
    /// The topic.
    pub topic: Topic,
    /// Latest seq, 0 before the first tick.
    pub seq: Seq,
    /// The latest tick frame, if any.
    pub last: Option<Frame>,
}

/// The shared bus: one per server.
#[derive(Debug)]
pub struct Bus {
    topics: DashMap<Topic, Arc<TopicState>>,
    next_id: AtomicU32,
    inboxes: Box<[ShardInbox]>,
    max_topics: usize,
    published: AtomicU64,
    stale: AtomicU64,
    /// Sees every accepted tick (set once, by an ingest node's NATS sink); a `OnceLock` so the
    /// publish path pays one atomic load when there is none.
    tap: OnceLock<Arc<dyn BusTap>>,
}

impl Bus {
    /// A bus with `config.shards` shard inboxes.
    pub fn new(config: &BusConfig) -> Arc<Bus> {
        let shards = config.shards.clamp(1, 64);
        Arc::new(Bus {
            topics: DashMap::new(),
            next_id: AtomicU32::new(0),
            inboxes: (0..shards)
                .map(|_| ShardInbox::new(config.inbox_capacity))
                .collect(),
            max_topics: config.max_topics,
            published: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            tap: OnceLock::new(),
        })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    /// Shard `i`'s inbox.
    pub fn inbox(&self, i: usize) -> &ShardInbox {
        &self.inboxes[i]
    }

    /// Looks up a topic, creating it when new (within `max_topics`).
    pub fn topic(&self, topic: &Topic) -> Result<Arc<TopicState>, BusError> {
        if let Some(t) = self.topics.get(topic) {
            return Ok(t.clone());
        }
        if self.topics.len() >= self.max_topics {
            return Err(BusError::TopicLimit {
                limit: self.max_topics,
                topic: topic.clone(),
            });
        }
        let entry = self.topics.entry(topic.clone()).or_insert_with(|| {
            let id = TopicId(self.next_id.fetch_add(1, Ordering::Relaxed));
            Arc::new(TopicState::new(id, topic.clone()))
        });
        Ok(entry.clone())
    }

    /// Looks up a topic without creating it.
    pub fn get(&self, topic: &str) -> Option<Arc<TopicState>> {
        self.topics.get(topic).map(|t| t.clone())
    }

    /// Number of known topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// The configured topic limit.
    pub fn max_topics(&self) -> usize {
        self.max_topics
    }

    /// Every topic with its latest tick, sorted by name.
    pub fn snapshot(&self) -> Vec<TopicSnapshot> {
        let mut out: Vec<TopicSnapshot> = self
            .topics
            .iter()
            .map(|t| {
                let last = t.last();
                TopicSnapshot {
                    topic: t.topic().clone(),
                    seq: last.as_ref().map(|l| l.seq).unwrap_or_default(),
                    last: last.map(|l| l.frame),
                }
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// Starts a batch of publishes; shards are woken once, when the batch ends.
    pub fn batch(&self) -> PublishBatch<'_> {
        PublishBatch {
            bus: self,
            touched: 0,
        }
    }

    /// Publishes one tick and wakes the shards at once.
    pub fn publish(&self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: Frame) {
        self.batch().publish(topic, seq, ts, frame);
    }

    /// Installs `tap`, which then sees every accepted tick; `false` if a tap is already installed.
    pub fn set_tap(&self, tap: Arc<dyn BusTap>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// Ticks accepted by the bus.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Ticks refused because a newer seq of the same topic was already published.
    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }

    /// Ticks dropped because a shard's inbox was full, summed over shards.
    pub fn inbox_overflows(&self) -> u64 {
        self.inboxes.iter().map(|i| i.overflows()).sum()
    }
}

/// A run of publishes that wakes each shard once at the end (also on drop), so a feed that emits a
/// burst lets the shards see the whole burst and write it with fewer syscalls.
pub struct PublishBatch<'a> {
    bus: &'a Bus,
    touched: u64,
}

impl PublishBatch<'_> {
    /// Publishes `frame` (tick `seq` of `topic`): updates the last-value cache and pushes one entry into
    /// the inbox of each shard that has a subscriber. A tick older than the cached one is dropped.
    pub fn publish(&mut self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: Frame) {
        // Order matters: store the last value, then read the shard mask. A subscriber sets its shard's
        // bit, then reads the last value; so it either sees this tick in the cache or gets it pushed
        // (or both, and then its seq check drops the duplicate).
        if !topic.store_last(seq, ts, &frame) {
            self.bus.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.bus.published.fetch_add(1, Ordering::Relaxed);
        if let Some(tap) = self.bus.tap.get() {
            tap.published(topic, seq, ts, &frame);
        }
        let mut mask = topic.shard_mask.load(Ordering::SeqCst);
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(inbox) = self.bus.inboxes.get(shard) {
                inbox.push(Published {
                    topic: topic.id(),
                    seq,
                    ts,
                    frame: frame.clone(),
                });
                self.touched |= 1 << shard;
            }
        }
    }

    /// Wakes the shards this batch pushed to.
    pub fn finish(self) {}
}

impl Drop for PublishBatch<'_> {
    fn drop(&mut self) {
        let mut mask = self.touched;
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.bus.inboxes[shard].wake();
        }
    }
}
