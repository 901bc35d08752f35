//! The topic registry and the publish path.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tickcast_core::market::BookError;
use tickcast_core::stream::reset_frame;
use tickcast_core::{Epoch, Frame, Seq, Topic, TopicPattern, TsMicros};

use crate::history::{HistoryLimits, Stored};
use crate::inbox::{Published, ShardInbox};
use crate::patterns::PatternRegistry;
use crate::tap::BusTap;
use crate::topic::{BookAt, BookUpdate, Store, TopicId, TopicState, Upstream};

/// How much history each topic keeps: a default, and overrides per channel (the part of the topic
/// before the first `.`), e.g. little for `ticker`, more for `trade`.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// For channels without an override.
    pub default: HistoryLimits,
    /// Per channel.
    pub channels: Vec<(String, HistoryLimits)>,
}

impl Default for HistoryConfig {
    /// 100 ticks for up to a minute per topic: a browser whose network blips for a few seconds
    /// gets back what it missed on a typical ticker, and a topic costs at most 100 frames.
    fn default() -> Self {
        Self {
            default: HistoryLimits {
                size: 100,
                ttl: Duration::from_secs(60),
            },
            channels: Vec::new(),
        }
    }
}

impl HistoryConfig {
    /// The limits of topics of `channel`.
    pub fn for_channel(&self, channel: &str) -> HistoryLimits {
        self.channels
            .iter()
            .find(|(c, _)| c == channel)
            .map_or(self.default, |(_, l)| *l)
    }
}

/// Sizes of the bus; see `config/tickcast.toml` for the operator-facing documentation.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Number of worker shards (at most 64); each has its own inbox and router.
    pub shards: usize,
    /// Capacity of each shard's inbox, in ticks. Full = the tick is dropped for that shard and counted.
    pub inbox_capacity: usize,
    /// Most topics feeds may create; a feed's new topic past it is refused. Topics that only
    /// subscribers asked for never count here, so clients cannot lock a feed out.
    pub max_topics: usize,
    /// Most topics that exist only because subscribers asked for them (no feed has claimed them
    /// yet); a subscribe that would create one more is refused.
    pub max_requested_topics: usize,
    /// History kept per topic, for recovery.
    pub history: HistoryConfig,
    /// The epoch of every topic's seq space; `None` = a new one per bus (the seqs of a standalone
    /// node restart with the process, so its epoch must too).
    pub epoch: Option<Epoch>,
    /// Levels each side a `book` topic keeps (and its snapshots carry).
    pub book_depth: usize,
    /// Candles the ingesters build from trades.
    pub bars: BarsConfig,
}

/// Candle intervals built from trades (`bar.<label>.<symbol>`), and how often an open candle is
/// re-sent. Feeds read it from the bus so every feed builds the same bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarsConfig {
    /// `(label, length)`, e.g. `("1m", 60 s)`.
    pub intervals: Vec<(String, Duration)>,
    /// Least time between two sends of an open candle.
    pub update: Duration,
    /// Whether a symbol a feed sends only quotes for gets candles from the quotes' last trade.
    pub from_quotes: bool,
}

impl Default for BarsConfig {
    fn default() -> Self {
        Self {
            intervals: vec![
                ("1s".into(), Duration::from_secs(1)),
                ("1m".into(), Duration::from_secs(60)),
            ],
            update: Duration::from_millis(250),
            from_quotes: true,
        }
    }
}

/// Default of [`BusConfig::book_depth`].
pub const DEFAULT_BOOK_DEPTH: usize = 25;
/// Largest [`BusConfig::book_depth`] accepted.
pub const MAX_BOOK_DEPTH: usize = 1000;

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            shards: 1,
            inbox_capacity: 65_536,
            max_topics: 100_000,
            max_requested_topics: 10_000,
            history: HistoryConfig::default(),
            epoch: None,
            book_depth: DEFAULT_BOOK_DEPTH,
            bars: BarsConfig::default(),
        }
    }
}

/// A fresh epoch: from the wall clock and the process id, so two runs of the same node differ.
fn fresh_epoch() -> Epoch {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    Epoch::from_seed(nanos ^ (u64::from(std::process::id()) << 40))
}

/// Who is asking for a topic: decides which limit a new topic counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOrigin {
    /// A feed about to publish: the topic becomes (or stays) a feed's topic.
    Feed,
    /// A subscriber: a new topic is "requested" until a feed claims it, and is reaped once unused.
    Subscriber,
}

/// Why the bus refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Creating the topic would exceed `max_topics` (a feed's) or `max_requested_topics` (a
    /// subscriber's).
    #[error("topic limit of {limit} reached; cannot create {topic}")]
    TopicLimit {
        /// The limit that was reached.
        limit: usize,
        /// The topic that could not be created.
        topic: Topic,
        /// Whose limit it was.
        origin: TopicOrigin,
    },
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
    /// Ids of reaped topics, reused so that per-shard tables indexed by id stay as small as the
    /// number of live topics, however many made-up topics clients churn through.
    free_ids: Mutex<Vec<u32>>,
    inboxes: Box<[ShardInbox]>,
    max_topics: usize,
    max_requested: usize,
    /// Topics a feed has claimed.
    fed_count: AtomicUsize,
    /// Topics only subscribers asked for.
    requested_count: AtomicUsize,
    reaped: AtomicU64,
    published: AtomicU64,
    stale: AtomicU64,
    /// Upstream gaps seen: a feed's seq skipped.
    upstream_gaps: AtomicU64,
    /// Topics with ticks moved to a new epoch.
    epoch_resets: AtomicU64,
    history: HistoryConfig,
    epoch: Epoch,
    /// Entries and bytes held by every topic's history.
    history_entries: AtomicI64,
    history_bytes: AtomicI64,
    /// Sees every accepted tick (set once, by an ingest node's NATS sink); a `OnceLock` so the
    /// publish path pays one atomic load when there is none.
    tap: OnceLock<Arc<dyn BusTap>>,
    /// Set while this node is a standby of an ingest tier: feeds' new ticks are discarded before
    /// they take a seq (the leader numbers them), while ticks with upstream seqs still go in.
    standby: AtomicBool,
    /// Ticks discarded by feeds because of `standby`.
    standby_discards: AtomicU64,
    /// Shards' wildcard subscriptions, told about topics feeds start later.
    pub(crate) patterns: PatternRegistry,
    /// When the bus was made: every shard's throttle grid starts here, so subscribers of a topic
    /// at one rate get the same ticks at the same moments whichever shard serves them.
    pub(crate) created: Instant,
    /// Levels each side a book keeps.
    book_depth: usize,
    /// Book updates refused as corrupting.
    book_refusals: AtomicU64,
    /// Books that lost sync with their upstream node and took its snapshot.
    book_resyncs: AtomicU64,
    bars: BarsConfig,
}

impl Bus {
    /// A bus with `config.shards` shard inboxes.
    pub fn new(config: &BusConfig) -> Arc<Bus> {
        let shards = config.shards.clamp(1, 64);
        Arc::new(Bus {
            topics: DashMap::new(),
            next_id: AtomicU32::new(0),
            free_ids: Mutex::new(Vec::new()),
            inboxes: (0..shards)
                .map(|_| ShardInbox::new(config.inbox_capacity))
                .collect(),
            max_topics: config.max_topics,
            max_requested: config.max_requested_topics,
            fed_count: AtomicUsize::new(0),
            requested_count: AtomicUsize::new(0),
            reaped: AtomicU64::new(0),
            published: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            upstream_gaps: AtomicU64::new(0),
            epoch_resets: AtomicU64::new(0),
            history: config.history.clone(),
            epoch: config.epoch.clone().unwrap_or_else(fresh_epoch),
            history_entries: AtomicI64::new(0),
            history_bytes: AtomicI64::new(0),
            tap: OnceLock::new(),
            standby: AtomicBool::new(false),
            standby_discards: AtomicU64::new(0),
            patterns: PatternRegistry::new(shards),
            created: Instant::now(),
            book_depth: config.book_depth.clamp(1, MAX_BOOK_DEPTH),
            book_refusals: AtomicU64::new(0),
            book_resyncs: AtomicU64::new(0),
            bars: config.bars.clone(),
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

    /// Looks up a topic for a feed, creating it when new (within `max_topics`). A topic that only
    /// subscribers had asked for becomes the feed's.
    pub fn topic(&self, topic: &Topic) -> Result<Arc<TopicState>, BusError> {
        self.resolve(topic, TopicOrigin::Feed)
    }

    /// Looks up a topic, creating it when new within the limit of `origin`.
    pub fn resolve(&self, topic: &Topic, origin: TopicOrigin) -> Result<Arc<TopicState>, BusError> {
        let fed = origin == TopicOrigin::Feed;
        if let Some(t) = self.topics.get(topic) {
            let t = t.clone();
            if fed && !t.is_fed() {
                self.claim(&t)?;
            }
            return Ok(t);
        }
        let (count, limit) = self.counter(origin);
        if count.load(Ordering::Acquire) >= limit {
            return Err(BusError::TopicLimit {
                limit,
                topic: topic.clone(),
                origin,
            });
        }
        let mut created = false;
        let entry = self.topics.entry(topic.clone()).or_insert_with(|| {
            created = true;
            count.fetch_add(1, Ordering::AcqRel);
            Arc::new(TopicState::new(
                self.new_id(),
                topic.clone(),
                fed,
                self.epoch.clone(),
                self.history.for_channel(topic.channel()),
            ))
        });
        let t = entry.clone();
        drop(entry);
        if !created && fed && !t.is_fed() {
            self.claim(&t)?;
        } else if created && fed {
            self.patterns.topic_fed(&t);
        }
        Ok(t)
    }

    /// Moves a requested topic into the feeds' count, when there is room for it there.
    fn claim(&self, t: &Arc<TopicState>) -> Result<(), BusError> {
        if self.fed_count.load(Ordering::Acquire) >= self.max_topics {
            return Err(BusError::TopicLimit {
                limit: self.max_topics,
                topic: t.topic().clone(),
                origin: TopicOrigin::Feed,
            });
        }
        if t.claim_for_feed() {
            self.requested_count.fetch_sub(1, Ordering::AcqRel);
            self.fed_count.fetch_add(1, Ordering::AcqRel);
            self.patterns.topic_fed(t);
        }
        Ok(())
    }

    fn counter(&self, origin: TopicOrigin) -> (&AtomicUsize, usize) {
        match origin {
            TopicOrigin::Feed => (&self.fed_count, self.max_topics),
            TopicOrigin::Subscriber => (&self.requested_count, self.max_requested),
        }
    }

    fn new_id(&self) -> TopicId {
        let reused = self
            .free_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        TopicId(reused.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed)))
    }

    /// Removes requested topics (no feed has claimed them) that nobody has used for `grace`, and
    /// returns how many went. Call it periodically; a topic goes between `grace` and `grace` plus
    /// the call interval after its last subscriber left.
    ///
    /// "Unused" is exact: the map holds the only reference. Subscribers and feeds hold a topic's
    /// `Arc` while they use it, and take it from the map under the map's lock, which the removal
    /// also holds, so nobody can pick up a topic that is being removed. A requested topic never
    /// had a tick (publishing needs a feed, which claims it first), so no inbox or queue can still
    /// carry its id when the id is reused.
    pub fn reap_requested(&self, now: Instant, grace: Duration) -> usize {
        if self.requested_count.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut due = Vec::new();
        for t in self.topics.iter() {
            if t.is_fed() {
                continue;
            }
            let mut idle = t.idle_since.lock().unwrap_or_else(|e| e.into_inner());
            if Arc::strong_count(t.value()) > 1 {
                *idle = None;
                continue;
            }
            match *idle {
                None => *idle = Some(now),
                Some(since) if now.saturating_duration_since(since) >= grace => {
                    due.push(t.key().clone())
                }
                Some(_) => {}
            }
        }
        let mut removed = 0;
        for name in due {
            let gone = self
                .topics
                .remove_if(&name, |_, t| !t.is_fed() && Arc::strong_count(t) == 1);
            if let Some((_, t)) = gone {
                self.requested_count.fetch_sub(1, Ordering::AcqRel);
                self.free_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(t.id().0);
                removed += 1;
            }
        }
        self.reaped.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Drops history entries past their age in every topic; call it periodically (a busy topic
    /// also drops them as it publishes, so this only matters for topics gone quiet).
    pub fn expire_history(&self, now: Instant) {
        if self.history_entries.load(Ordering::Relaxed) == 0 {
            return;
        }
        for t in self.topics.iter() {
            let freed = t.expire_history(now);
            self.account_history(freed);
        }
    }

    fn account_history(&self, change: Stored) {
        if change != Stored::default() {
            self.history_entries
                .fetch_add(change.entries, Ordering::Relaxed);
            self.history_bytes
                .fetch_add(change.bytes, Ordering::Relaxed);
        }
    }

    /// How much history each topic keeps, as configured.
    pub fn history_config(&self) -> &HistoryConfig {
        &self.history
    }

    /// Entries (ticks and upstream gap markers) held by every topic's history.
    pub fn history_entries(&self) -> u64 {
        self.history_entries.load(Ordering::Relaxed).max(0) as u64
    }

    /// Bytes held by every topic's history: frames plus per-entry bookkeeping.
    pub fn history_bytes(&self) -> u64 {
        self.history_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// The epoch new topics get.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Times a feed's seqs skipped (each announced to subscribers as an `upstream` gap).
    pub fn upstream_gaps(&self) -> u64 {
        self.upstream_gaps.load(Ordering::Relaxed)
    }

    /// Looks up a topic without creating it.
    pub fn get(&self, topic: &str) -> Option<Arc<TopicState>> {
        self.topics.get(topic).map(|t| t.clone())
    }

    /// The topics feeds publish that `pattern` matches, sorted by name (for a new wildcard
    /// subscription; walks every topic).
    pub fn matching(&self, pattern: &TopicPattern) -> Vec<Arc<TopicState>> {
        let mut out: Vec<_> = self
            .topics
            .iter()
            .filter(|t| t.is_fed() && pattern.matches(t.topic()))
            .map(|t| t.clone())
            .collect();
        out.sort_by(|a, b| a.topic().cmp(b.topic()));
        out
    }

    /// Number of known topics (feeds' and requested).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Number of topics only subscribers asked for (no feed has claimed them).
    pub fn requested_topic_count(&self) -> usize {
        self.requested_count.load(Ordering::Acquire)
    }

    /// Requested topics removed so far by [`reap_requested`](Self::reap_requested).
    pub fn reaped_topics(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }

    /// The configured limit of feed topics.
    pub fn max_topics(&self) -> usize {
        self.max_topics
    }

    /// The configured limit of requested topics.
    pub fn max_requested_topics(&self) -> usize {
        self.max_requested
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
            now: None,
        }
    }

    /// Publishes one tick and wakes the shards at once.
    pub fn publish(&self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: Frame) {
        self.batch().publish(topic, seq, ts, frame);
    }

    /// Moves `topic` to the seq space `epoch` when it is in another one (its upstream started
    /// over): drops its latest tick, history and seq counter, and queues a `reset` for every shard
    /// with subscribers of it, ahead of the new epoch's ticks. Returns whether it changed.
    pub fn reset_topic(&self, topic: &TopicState, epoch: &Epoch) -> bool {
        let Some((freed, had_data)) = topic.reset(epoch) else {
            return false;
        };
        self.account_history(freed);
        if had_data {
            // A topic taking its first epoch from upstream (no tick yet) is no seq space ending.
            self.epoch_resets.fetch_add(1, Ordering::Relaxed);
        }
        let frame = reset_frame(topic.topic(), epoch);
        let mut mask = topic.shard_mask.load(Ordering::SeqCst);
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(inbox) = self.inboxes.get(shard) {
                inbox.push(Published {
                    topic: topic.id(),
                    seq: Seq(0),
                    ts: TsMicros::UNMEASURED,
                    frame: frame.clone(),
                    gap_from: None,
                    reset: true,
                    class: topic.class(),
                });
                inbox.wake();
            }
        }
        true
    }

    /// Topics that had ticks and were moved to a new epoch by [`reset_topic`](Self::reset_topic).
    pub fn epoch_resets(&self) -> u64 {
        self.epoch_resets.load(Ordering::Relaxed)
    }

    /// Makes this node a standby (`true`: feeds' ticks are discarded before taking a seq) or the
    /// publisher of its seq space again (`false`, the default).
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// Whether feeds' ticks are discarded (see [`set_standby`](Self::set_standby)); one relaxed
    /// load, checked per tick by the publishing side.
    pub fn standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
    }

    /// Counts one feed tick discarded while standby.
    pub fn record_standby_discard(&self) {
        self.standby_discards.fetch_add(1, Ordering::Relaxed);
    }

    /// Feed ticks discarded while standby.
    pub fn standby_discards(&self) -> u64 {
        self.standby_discards.load(Ordering::Relaxed)
    }

    /// Every topic feeds publish, unordered (walks every topic).
    pub fn fed_topics(&self) -> Vec<Arc<TopicState>> {
        self.topics
            .iter()
            .filter(|t| t.is_fed())
            .map(|t| t.clone())
            .collect()
    }

    /// Installs `tap`, which then sees every accepted tick; `false` if a tap is already installed.
    pub fn set_tap(&self, tap: Arc<dyn BusTap>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// The books that refused an update and await a snapshot (for `/readyz` and the metrics).
    pub fn untrusted_books(&self) -> Vec<Topic> {
        let mut out: Vec<Topic> = self
            .topics
            .iter()
            .filter(|t| t.is_untrusted())
            .map(|t| t.topic().clone())
            .collect();
        out.sort();
        out
    }

    /// Levels each side a book keeps.
    pub fn book_depth(&self) -> usize {
        self.book_depth
    }

    /// The candles feeds build.
    pub fn bars(&self) -> &BarsConfig {
        &self.bars
    }

    /// Book updates refused because they would corrupt the book (negative size, crossed result).
    pub fn book_refusals(&self) -> u64 {
        self.book_refusals.load(Ordering::Relaxed)
    }

    /// Books that lost sync with their upstream node (a gateway's, behind an ingest node) and
    /// took its snapshot.
    pub fn book_resyncs(&self) -> u64 {
        self.book_resyncs.load(Ordering::Relaxed)
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
    /// Read once per batch, for the history's age limit.
    now: Option<Instant>,
}

impl PublishBatch<'_> {
    /// Publishes `frame` (tick `seq` of `topic`): updates the last-value cache and the history, and
    /// pushes one entry into the inbox of each shard that has a subscriber (preceded by the
    /// `upstream` gap marker when the seq skipped). A tick older than the cached one is dropped.
    pub fn publish(&mut self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: Frame) {
        // Order matters: store the last value, then read the shard mask. A subscriber sets its shard's
        // bit, then reads the last value (and history); so it either sees this tick in the cache or
        // gets it pushed (or both, and then its seq check drops the duplicate).
        let now = *self.now.get_or_insert_with(Instant::now);
        let stored = topic.store(seq, ts, &frame, now);
        self.fan_out(topic, seq, ts, frame, stored);
    }

    /// Applies `update` to the order book of `topic` (a `book` topic) and publishes the message it
    /// makes under the topic's next seq: the changed levels, or the whole book for a snapshot,
    /// with the checksum of the book after it. The book is built here once, whoever subscribes; a
    /// refused update (negative size, crossed result) takes no seq, changes nothing and is
    /// counted. `scratch` is the caller's encoding buffer, reused across calls.
    pub fn publish_book(
        &mut self,
        topic: &TopicState,
        update: BookUpdate<'_>,
        ts: TsMicros,
        scratch: &mut Vec<u8>,
    ) -> Result<Seq, BookError> {
        let now = *self.now.get_or_insert_with(Instant::now);
        match topic.store_book(update, self.bus.book_depth, ts, now, scratch) {
            Ok((seq, frame, stored)) => {
                self.fan_out(topic, seq, ts, frame, stored);
                Ok(seq)
            }
            Err(e) => {
                self.bus.book_refusals.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Applies a book update numbered upstream (see [`TopicState::store_book_at`]) and publishes
    /// the message it makes under that seq. A refused update is counted, as is a resync taken.
    pub fn publish_book_at(
        &mut self,
        topic: &TopicState,
        update: BookUpdate<'_>,
        upstream: Upstream,
        ts: TsMicros,
        scratch: &mut Vec<u8>,
    ) -> Result<(), BookError> {
        let now = *self.now.get_or_insert_with(Instant::now);
        match topic.store_book_at(update, upstream, self.bus.book_depth, ts, now, scratch) {
            Ok(BookAt::Stored(frame, stored)) => {
                if upstream.resync {
                    self.bus.book_resyncs.fetch_add(1, Ordering::Relaxed);
                }
                self.fan_out(topic, upstream.seq, ts, frame, stored);
                Ok(())
            }
            Ok(BookAt::Stale) => {
                self.bus.stale.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(BookAt::InSync) => Ok(()),
            Err(e) => {
                self.bus.book_refusals.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Accounts a stored tick and pushes it (after its `upstream` marker, if any) to every shard
    /// with a subscriber.
    fn fan_out(&mut self, topic: &TopicState, seq: Seq, ts: TsMicros, frame: Frame, stored: Store) {
        let gap = match stored {
            Store::Stale => {
                self.bus.stale.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Store::Stored { gap, history } => {
                self.bus.account_history(history);
                gap
            }
        };
        self.bus.published.fetch_add(1, Ordering::Relaxed);
        if let Some(tap) = self.bus.tap.get() {
            tap.published(topic, seq, ts, &frame);
        }
        if gap.is_some() {
            self.bus.upstream_gaps.fetch_add(1, Ordering::Relaxed);
        }
        let class = topic.class();
        let mut mask = topic.shard_mask.load(Ordering::SeqCst);
        while mask != 0 {
            let shard = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(inbox) = self.bus.inboxes.get(shard) {
                if let Some((from, gap)) = &gap {
                    // Its seq is the last one it covers, so a subscriber whose snapshot is past
                    // the gap skips it as it skips older ticks.
                    inbox.push(Published {
                        topic: topic.id(),
                        seq: Seq(seq.0 - 1),
                        ts,
                        frame: gap.clone(),
                        gap_from: Some(*from),
                        reset: false,
                        class,
                    });
                }
                inbox.push(Published {
                    topic: topic.id(),
                    seq,
                    ts,
                    frame: frame.clone(),
                    gap_from: None,
                    reset: false,
                    class,
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
