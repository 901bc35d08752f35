//! Which shards hold wildcard subscriptions (`ticker.*`), so that a topic a feed starts later
//! reaches them: the bus tells each such shard about the new topic and sets its bit in the topic's
//! shard mask; the shard's router then subscribes its matching subscribers.
//!
//! Routing stays per topic: a tick never looks at patterns. The registry is consulted once per
//! topic, when a feed first claims it, under a mutex that only subscribes of patterns also take.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;
use tickcast_core::TopicPattern;

use crate::topic::TopicState;

/// The shards' patterns, and each shard's notices of new matching topics.
#[derive(Debug)]
pub(crate) struct PatternRegistry {
    /// Whether any pattern exists, so a feed's new topic costs one load when none does.
    any: AtomicBool,
    /// (pattern, shard, how many subscriptions of that shard hold it).
    entries: Mutex<Vec<(TopicPattern, usize, usize)>>,
    /// Per shard: topics a pattern of it matched after it subscribed, for its router to take.
    notices: Box<[SegQueue<Arc<TopicState>>]>,
}

impl PatternRegistry {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            any: AtomicBool::new(false),
            entries: Mutex::new(Vec::new()),
            notices: (0..shards).map(|_| SegQueue::new()).collect(),
        }
    }

    /// Shard `shard` holds one more subscription of `pattern`.
    pub(crate) fn add(&self, pattern: &TopicPattern, shard: usize) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries
            .iter_mut()
            .find(|(p, s, _)| p == pattern && *s == shard)
        {
            Some(e) => e.2 += 1,
            None => entries.push((pattern.clone(), shard, 1)),
        }
        self.any.store(true, Ordering::SeqCst);
    }

    /// Shard `shard` holds one subscription of `pattern` fewer.
    pub(crate) fn remove(&self, pattern: &TopicPattern, shard: usize) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = entries
            .iter()
            .position(|(p, s, _)| p == pattern && *s == shard)
        {
            entries[i].2 -= 1;
            if entries[i].2 == 0 {
                entries.swap_remove(i);
            }
        }
        self.any.store(!entries.is_empty(), Ordering::SeqCst);
    }

    /// A feed just claimed `topic`: every shard with a matching pattern gets a notice, then its
    /// bit in the topic's mask. In that order: a tick the shard routes before it took the notice
    /// finds no route and is skipped, and the snapshot the router opens on the notice covers it.
    pub(crate) fn topic_fed(&self, topic: &Arc<TopicState>) {
        if !self.any.load(Ordering::SeqCst) {
            return;
        }
        let mut mask = 0u64;
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            for (pattern, shard, _) in entries.iter() {
                if mask & (1 << shard) == 0 && pattern.matches(topic.topic()) {
                    mask |= 1 << shard;
                    self.notices[*shard].push(topic.clone());
                }
            }
        }
        if mask != 0 {
            topic.shard_mask.fetch_or(mask, Ordering::SeqCst);
        }
    }

    /// The next new topic for shard `shard`'s patterns.
    pub(crate) fn take_notice(&self, shard: usize) -> Option<Arc<TopicState>> {
        self.notices[shard].pop()
    }
}
