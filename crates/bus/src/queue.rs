//! A subscriber's bounded outbound queue: a priority lane for control frames and replies, a data lane
//! for ticks bounded in frames and bytes, and the overflow policy that applies when the data lane is full.
//!
//! The writer drains it in wire order: the remainder of a partly written frame, then control, then
//! data, then conflated ticks. Per topic, ticks leave in seq order under every policy.
//!
//! No loss is silent: when the policy replaces (`conflate`) or drops (`drop_oldest`) a tick, the
//! queue puts a `gap` marker for the lost seqs right before the next entry of that topic, and
//! widens it if more are lost before it leaves. Markers are this subscriber's own frames, encoded
//! only when the writer is about to send them ([`OutQueue::seal_gaps`]), so a lagging subscriber
//! whose ticks are replaced at the feed's rate pays no encoding per replacement.

use std::collections::VecDeque;
#[cfg(test)]
use std::io::IoSlice;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tickcast_core::prefetch::prefetch;
use tickcast_core::stream::gap_frame;
use tickcast_core::{Frame, GapReason, Seq, Topic, TopicClass, TsMicros};

use crate::topic::{BookSnapshot, TopicId};

/// How much of the queue's front [`OutQueue::prefetch_front`] loads: the entries of a typical write.
const FRONT_PREFETCH_BYTES: usize = 256;

/// What happens when a subscriber's data lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Keep only the newest pending tick per topic until the client catches up (default: a slow
    /// dashboard always shows the latest price, with no growing backlog).
    #[default]
    Conflate,
    /// Drop the oldest queued tick to make room for the new one.
    DropOldest,
    /// Close the connection with 1008 "slow consumer".
    Disconnect,
}

impl std::str::FromStr for OverflowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "conflate" => Ok(Self::Conflate),
            "drop_oldest" => Ok(Self::DropOldest),
            "disconnect" => Ok(Self::Disconnect),
            other => Err(format!(
                "unknown policy {other:?}; expected conflate, drop_oldest or disconnect"
            )),
        }
    }
}

/// Bounds of one subscriber's data lane.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most ticks queued before the policy applies.
    pub max_frames: usize,
    /// Most tick bytes queued before the policy applies.
    pub max_bytes: usize,
    /// What to do on overflow.
    pub policy: OverflowPolicy,
    /// A subscriber that stays backlogged this long is disconnected whatever the policy.
    pub max_lag: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_frames: 1024,
            max_bytes: 256 * 1024,
            policy: OverflowPolicy::Conflate,
            max_lag: Duration::from_secs(30),
        }
    }
}

/// Result of pushing a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued normally.
    Queued,
    /// Replaced an older pending tick of the same topic (conflation).
    Conflated,
    /// Queued after dropping this many of the oldest queued ticks.
    DroppedOldest(u32),
    /// Not queued: an event (trade) that found the lane full, announced with a `dropped` marker.
    DroppedNew,
    /// A book delta that will reach the subscriber as part of a fresh snapshot instead (the
    /// lane was full: see [`TopicClass::Book`]).
    Resynced,
    /// The subscriber must be disconnected as a slow consumer; nothing was queued.
    Disconnect,
    /// The queue is closed; nothing was queued.
    Closed,
}

/// A tick as the router hands it to the queues of one shard: wrapped once per shard with what a
/// queue needs to know of it, so each subscriber's entry is one pointer (a plain, non-atomic count
/// bump) instead of a copy of the topic, the timestamp and an atomic bump of the shared `Bytes`.
#[derive(Debug)]
pub struct RoutedTick {
    /// Its topic, for conflation and purging.
    pub topic: TopicId,
    /// Its seq; for a gap marker, the last seq it covers.
    pub seq: Seq,
    /// Ingest time, to measure tick-to-write latency when it leaves; [`TsMicros::UNMEASURED`]
    /// for what is not live (markers, replayed history).
    pub ts: TsMicros,
    /// The frame, serialized once (empty for a marker not sealed yet).
    pub frame: Frame,
    /// A tick, or a gap marker.
    pub kind: EntryKind,
    /// How the subscriber may lose it when its lane is full.
    pub class: TopicClass,
}

/// What a queue entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A tick.
    Tick,
    /// A `gap` marker for seqs `from..=seq`.
    Gap {
        /// The first seq it covers.
        from: Seq,
        /// Why they are missing.
        reason: GapReason,
    },
    /// A `reset`: the topic's seq space started over (seq 0, before the new epoch's ticks).
    Reset,
    /// Stands in for a book's deltas `from..=seq` that were pending when the lane filled up: when
    /// the writer is about to send it, it becomes a `resync` marker and the book's current
    /// snapshot ([`OutQueue::seal_gaps`]).
    Resync {
        /// The first seq it stands for.
        from: Seq,
    },
    /// A book's snapshot, sent by a resync: the book at `seq`.
    Snapshot,
}

/// A queue entry: one shard's shared handle on a [`RoutedTick`].
pub type SharedTick = Rc<RoutedTick>;

/// One entry taken from a queue by [`OutQueue::pop_front`].
#[derive(Debug)]
pub enum QueueEntry {
    /// A reply, control frame or heartbeat (priority lane).
    Control(Frame),
    /// A tick or gap marker (data lane).
    Data(SharedTick),
}

impl RoutedTick {
    /// Wraps a tick for the queues of one shard.
    pub fn shared(topic: TopicId, seq: Seq, ts: TsMicros, frame: Frame) -> SharedTick {
        Self::classed(topic, TopicClass::Latest, seq, ts, frame)
    }

    /// Wraps a tick of a topic of `class` for the queues of one shard.
    pub fn classed(
        topic: TopicId,
        class: TopicClass,
        seq: Seq,
        ts: TsMicros,
        frame: Frame,
    ) -> SharedTick {
        Rc::new(RoutedTick {
            topic,
            seq,
            ts,
            frame,
            kind: EntryKind::Tick,
            class,
        })
    }

    /// Wraps a ready-made `gap` marker for seqs `from..=to`, shared by every subscriber of one
    /// shard that gets it.
    pub fn gap(
        topic: TopicId,
        class: TopicClass,
        from: Seq,
        to: Seq,
        reason: GapReason,
        frame: Frame,
    ) -> SharedTick {
        Rc::new(RoutedTick {
            topic,
            seq: to,
            ts: TsMicros::UNMEASURED,
            frame,
            kind: EntryKind::Gap { from, reason },
            class,
        })
    }

    /// Wraps a ready-made `reset` of `topic`, shared by every subscriber of one shard.
    pub fn reset(topic: TopicId, class: TopicClass, frame: Frame) -> SharedTick {
        Rc::new(RoutedTick {
            topic,
            seq: Seq(0),
            ts: TsMicros::UNMEASURED,
            frame,
            kind: EntryKind::Reset,
            class,
        })
    }

    /// A marker for seqs `from..=to` of `topic`, owned by one queue and encoded when sealed.
    fn unsealed_gap(topic: TopicId, from: Seq, to: Seq, reason: GapReason) -> SharedTick {
        Rc::new(RoutedTick {
            topic,
            seq: to,
            ts: TsMicros::UNMEASURED,
            frame: Frame::empty(),
            kind: EntryKind::Gap { from, reason },
            class: TopicClass::Latest,
        })
    }

    /// The placeholder for a book's deltas `from..=to`, owned by one queue (see
    /// [`EntryKind::Resync`]).
    fn unsealed_resync(topic: TopicId, from: Seq, to: Seq) -> SharedTick {
        Rc::new(RoutedTick {
            topic,
            seq: to,
            ts: TsMicros::UNMEASURED,
            frame: Frame::empty(),
            kind: EntryKind::Resync { from },
            class: TopicClass::Book,
        })
    }

    fn is_unsealed_resync(&self, topic: TopicId) -> bool {
        self.topic == topic && matches!(self.kind, EntryKind::Resync { .. })
    }

    fn len(&self) -> usize {
        self.frame.len()
    }

    fn is_tick(&self) -> bool {
        self.kind == EntryKind::Tick
    }

    /// The seqs this entry stands for: `seq..=seq` for a tick.
    fn range(&self) -> (Seq, Seq) {
        match self.kind {
            EntryKind::Tick | EntryKind::Reset | EntryKind::Snapshot => (self.seq, self.seq),
            EntryKind::Gap { from, .. } | EntryKind::Resync { from } => (from, self.seq),
        }
    }
}

/// What one [`OutQueue::advance`] moved out of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Whole frames written.
    pub frames: usize,
    /// Ingest time of the oldest tick among them, if any was a tick.
    pub oldest_ts: Option<TsMicros>,
}

/// Per book topic resynced, the seq of the snapshot sent (see `OutQueue::covered`); a thin
/// pointer's worth in the queue.
#[derive(Debug)]
struct Covered(Vec<(TopicId, Seq)>);

/// What one [`OutQueue::seal_gaps`] made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sealed {
    /// `conflated` (and other non-`dropped`) markers encoded.
    pub conflated: u64,
    /// `dropped` markers encoded.
    pub dropped: u64,
    /// Book resyncs: a `resync` marker (when seqs were skipped) and a snapshot each.
    pub resyncs: u64,
}

/// The outbound queue of one subscriber. Every connection has one, so it is kept small: the limits
/// are the shard's (passed in by the router), and what it dropped or conflated is told to the caller
/// by [`Pushed`] instead of being counted here.
#[derive(Debug)]
#[repr(C)]
pub struct OutQueue {
    // Everything a push reads comes first: with the `Rc` counts and the `RefCell` flag in front of
    // it, routing a tick to a subscriber touches one cache line of it (plus the slot it stores to).
    closed: bool,
    /// Listed for the current write pass (see [`ShardRouter::take_dirty`](crate::ShardRouter)).
    listed: bool,
    /// `conflated` is not empty: checked on every push without loading that vector.
    conflating: bool,
    /// Some gap marker waits to be encoded ([`seal_gaps`](Self::seal_gaps)); beside the other
    /// flags, where it costs no room.
    unsealed: bool,
    /// Bytes in `data` and `conflated` (`max_bytes` is validated to fit in `u32`).
    data_bytes: u32,
    /// Ticks in arrival order; grows lazily, so an idle subscriber costs no buffer.
    data: VecDeque<SharedTick>,
    /// While conflating: the newest pending tick per topic, sent after `data` drains. At most one
    /// entry per subscribed topic, so it is bounded by the topics-per-connection limit.
    conflated: Vec<SharedTick>,
    /// A frame the socket accepted only part of, and how many bytes of it went out. It must finish
    /// before anything else, so it leaves its lane.
    current: Option<(Frame, usize)>,
    /// Control frames and replies: never dropped; the reader stops reading while this is long, which
    /// bounds it through TCP backpressure instead.
    control: VecDeque<Frame>,
    /// Set when the data lane overflowed; cleared when it drains. Drives `max_lag`.
    lagging_since: Option<Instant>,
    /// Per book topic resynced, the seq of the snapshot sent: deltas up to it are in the snapshot
    /// and are removed before the next write (they were on their way to this shard when it was
    /// taken). Checked when sealing, not when pushing: the push path stays one cache line.
    /// Boxed: empty for nearly every subscriber, and the queue stays small.
    covered: Option<Box<Covered>>,
}

impl Default for OutQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl OutQueue {
    /// The leading bytes of a queue that a push reads: flags, byte count and the ring's header.
    #[cfg(test)]
    pub(crate) const HEAD_BYTES: usize =
        std::mem::offset_of!(OutQueue, data) + std::mem::size_of::<VecDeque<SharedTick>>();

    /// An empty queue; allocates nothing until used.
    pub fn new() -> Self {
        Self {
            closed: false,
            listed: false,
            conflating: false,
            data_bytes: 0,
            data: VecDeque::new(),
            conflated: Vec::new(),
            current: None,
            control: VecDeque::new(),
            lagging_since: None,
            unsealed: false,
            covered: None,
        }
    }

    /// Queues a tick, applying the overflow policy of `limits` when the data lane is full.
    #[inline]
    pub fn push_data(&mut self, limits: &QueueLimits, tick: SharedTick) -> Pushed {
        // Inlined into the router's loop: the common case is a few compares and a store.
        let fits = !self.closed
            && !self.conflating
            && self.data.len() < limits.max_frames
            && self.data_bytes() + tick.len() <= limits.max_bytes;
        if fits {
            self.data_bytes += tick.len() as u32;
            self.data.push_back(tick);
            return Pushed::Queued;
        }
        self.push_data_slow(limits, tick)
    }

    /// [`push_data`](Self::push_data) when the queue is closed or its data lane is full.
    #[cold]
    #[inline(never)]
    fn push_data_slow(&mut self, limits: &QueueLimits, tick: SharedTick) -> Pushed {
        if self.closed {
            return Pushed::Closed;
        }
        // Overflow: the slow path, where reading the clock is affordable.
        let now = Instant::now();
        let since = *self.lagging_since.get_or_insert(now);
        if now.duration_since(since) > limits.max_lag {
            return Pushed::Disconnect;
        }
        match limits.policy {
            OverflowPolicy::Disconnect => Pushed::Disconnect,
            OverflowPolicy::DropOldest => self.drop_oldest_for(limits, tick),
            OverflowPolicy::Conflate => match tick.class {
                TopicClass::Latest => self.conflate(tick),
                TopicClass::Event => self.keep_or_drop_event(limits, tick),
                TopicClass::Book => self.keep_or_resync_book(limits, tick),
            },
        }
    }

    /// Room for one more entry of `len` bytes in both lanes together.
    fn has_room(&self, limits: &QueueLimits, len: usize) -> bool {
        self.data.len() + self.conflated.len() < limits.max_frames
            && self.data_bytes() + len <= limits.max_bytes
    }

    /// `conflate` for an event (trade): never replaced by a newer one. Queued behind the
    /// conflated ticks while there is room; else dropped, with a `dropped` marker that widens
    /// while its topic keeps losing events.
    fn keep_or_drop_event(&mut self, limits: &QueueLimits, tick: SharedTick) -> Pushed {
        self.conflating = true;
        if self.has_room(limits, tick.len()) {
            self.data_bytes += tick.len() as u32;
            self.conflated.push(tick);
            return Pushed::Queued;
        }
        // Widen the topic's marker if it is the last thing queued of it, sealed or not: a run of
        // drops is one marker, so markers never outnumber the trades kept between them.
        let last = self.conflated.iter().rposition(|q| q.topic == tick.topic);
        if let Some(i) = last {
            let q = &self.conflated[i];
            let widen = matches!(
                q.kind,
                EntryKind::Gap {
                    reason: GapReason::Dropped,
                    ..
                }
            ) && q.seq.next() == tick.seq;
            if widen {
                let (from, _) = q.range();
                match Rc::get_mut(&mut self.conflated[i]) {
                    Some(m) if m.frame.is_empty() => m.seq = tick.seq,
                    _ => {
                        self.data_bytes -= self.conflated[i].len() as u32;
                        self.conflated[i] = RoutedTick::unsealed_gap(
                            tick.topic,
                            from,
                            tick.seq,
                            GapReason::Dropped,
                        );
                        self.unsealed = true;
                    }
                }
                return Pushed::DroppedNew;
            }
        }
        self.conflated.push(RoutedTick::unsealed_gap(
            tick.topic,
            tick.seq,
            tick.seq,
            GapReason::Dropped,
        ));
        self.unsealed = true;
        Pushed::DroppedNew
    }

    /// `conflate` for a book delta: queued in order while there is room; else the book's pending
    /// deltas and this one become one resync placeholder, sent as the book's snapshot.
    fn keep_or_resync_book(&mut self, limits: &QueueLimits, tick: SharedTick) -> Pushed {
        self.conflating = true;
        if let Some(p) = self
            .conflated
            .iter_mut()
            .find(|q| q.is_unsealed_resync(tick.topic))
        {
            if let Some(p) = Rc::get_mut(p) {
                p.seq = p.seq.max(tick.seq);
                return Pushed::Resynced;
            }
        }
        if self.has_room(limits, tick.len()) {
            self.data_bytes += tick.len() as u32;
            self.conflated.push(tick);
            return Pushed::Queued;
        }
        self.resync(tick.topic, tick.seq, tick.seq);
        Pushed::Resynced
    }

    /// Replaces every pending entry of book `topic` with one placeholder for `from..=to` (widened
    /// to what the entries stood for), sent as a `resync` marker and the book's snapshot. Also
    /// for a book whose deltas never reached this shard (its inbox overflowed).
    pub fn resync(&mut self, topic: TopicId, from: Seq, to: Seq) {
        if self.closed {
            return;
        }
        let (mut first, mut last) = (from, to);
        // Deltas a snapshot already sent includes (they arrived after it was sealed) are removed
        // but stand for nothing the client misses.
        // Unless that snapshot has not left yet: then it goes too, and what it covered is missed.
        let snapshot_queued = self
            .data
            .iter()
            .chain(&self.conflated)
            .any(|q| q.topic == topic && q.kind == EntryKind::Snapshot);
        if snapshot_queued {
            if let Some(c) = self.covered.as_mut() {
                c.0.retain(|c| c.0 != topic);
            }
        }
        let covered = self
            .covered
            .as_ref()
            .and_then(|c| c.0.iter().find(|c| c.0 == topic))
            .map(|c| c.1);
        let mut freed = 0usize;
        let mut take = |q: &SharedTick| {
            if q.topic != topic || q.kind == EntryKind::Reset {
                return true;
            }
            freed += q.len();
            if q.kind == EntryKind::Tick && covered.is_some_and(|c| q.seq <= c) {
                return false;
            }
            let (f, t) = q.range();
            first = first.min(f);
            last = last.max(t);
            false
        };
        self.data.retain(&mut take);
        self.conflated.retain(&mut take);
        self.data_bytes -= freed as u32;
        if let Some(c) = covered {
            first = first.max(c.next()); // the client has everything up to the snapshot's seq
        }
        let placeholder = RoutedTick::unsealed_resync(topic, first, last);
        if self.conflating {
            self.conflated.push(placeholder);
        } else {
            self.data.push_back(placeholder);
        }
        self.unsealed = true;
    }

    /// `drop_oldest`: drops from the front until `tick` fits, then announces what each topic lost
    /// with a marker before that topic's next entry (or at the back, before its next tick).
    fn drop_oldest_for(&mut self, limits: &QueueLimits, tick: SharedTick) -> Pushed {
        let mut dropped = 0;
        // (topic, first, last) lost: per topic a prefix of its queued seqs, so one range each.
        let mut lost: Vec<(TopicId, Seq, Seq)> = Vec::new();
        // Books lost deltas: they are resynced instead of announced as dropped.
        let mut books: Vec<(TopicId, Seq, Seq)> = Vec::new();
        while !self.data.is_empty()
            && (self.data.len() >= limits.max_frames
                || self.data_bytes() + tick.len() > limits.max_bytes)
        {
            let Some(old) = self.data.pop_front() else {
                break;
            };
            self.data_bytes -= old.len() as u32;
            if old.is_tick() {
                dropped += 1;
            }
            if old.kind == EntryKind::Reset {
                // No seq range to announce for it: the client then sees the seq go back to 1,
                // and its next subscribe's `epochs` names the new epoch.
                continue;
            }
            let (from, to) = old.range();
            let lost = if old.class == TopicClass::Book {
                &mut books
            } else {
                &mut lost
            };
            match lost.iter_mut().find(|l| l.0 == old.topic) {
                Some(l) => {
                    l.1 = l.1.min(from);
                    l.2 = l.2.max(to);
                }
                None => lost.push((old.topic, from, to)),
            }
        }
        for (topic, from, to) in lost {
            self.announce_in_data(topic, from, to);
        }
        for (topic, from, to) in books {
            self.resync(topic, from, to);
        }
        if tick.class == TopicClass::Book {
            if let Some(p) = self
                .data
                .iter_mut()
                .find(|q| q.is_unsealed_resync(tick.topic))
            {
                if let Some(p) = Rc::get_mut(p) {
                    p.seq = p.seq.max(tick.seq);
                    return Pushed::Resynced;
                }
            }
        }
        self.data_bytes += tick.len() as u32;
        self.data.push_back(tick);
        if dropped > 0 {
            Pushed::DroppedOldest(dropped)
        } else {
            Pushed::Queued
        }
    }

    /// Puts a `dropped` marker for `from..=to` before the first queued entry of `topic`, merging
    /// it into a marker that is already there.
    fn announce_in_data(&mut self, topic: TopicId, from: Seq, to: Seq) {
        let next = self.data.iter().position(|q| q.topic == topic);
        match next {
            Some(i) if matches!(self.data[i].kind, EntryKind::Gap { .. }) => {
                let (f, t) = self.data[i].range();
                let merged =
                    RoutedTick::unsealed_gap(topic, f.min(from), t.max(to), GapReason::Dropped);
                self.data_bytes -= self.data[i].len() as u32;
                self.data[i] = merged;
            }
            Some(i) => self.data.insert(
                i,
                RoutedTick::unsealed_gap(topic, from, to, GapReason::Dropped),
            ),
            None => self.data.push_back(RoutedTick::unsealed_gap(
                topic,
                from,
                to,
                GapReason::Dropped,
            )),
        }
        self.unsealed = true;
    }

    /// `conflate`: keeps one pending tick per topic; a replaced tick's seq joins the `conflated`
    /// marker in front of it.
    fn conflate(&mut self, tick: SharedTick) -> Pushed {
        self.conflating = true;
        if tick.kind == EntryKind::Reset {
            // What is pending of the topic belongs to the seq space that ended: the reset replaces
            // it, and the new epoch's ticks conflate behind it.
            let topic = tick.topic;
            let mut freed = 0;
            self.conflated.retain(|q| {
                let keep = q.topic != topic;
                if !keep {
                    freed += q.len() as u32;
                }
                keep
            });
            self.data_bytes = self.data_bytes - freed + tick.len() as u32;
            self.conflated.push(tick);
            return Pushed::Queued;
        }
        let slot = self
            .conflated
            .iter()
            .position(|q| q.topic == tick.topic && q.is_tick());
        let Some(mut i) = slot else {
            self.data_bytes += tick.len() as u32;
            self.conflated.push(tick);
            return Pushed::Queued;
        };
        if !tick.is_tick() {
            // An upstream marker behind a pending tick of its topic: replacing that tick (the only
            // way a newer one gets here) makes a marker that covers this range too.
            return Pushed::Conflated;
        }
        let lost_from = self.conflated[i].seq;
        let lost_to = Seq(tick.seq.0.saturating_sub(1));
        // Its marker, if any (a `reset` of the topic ahead of it is no marker: it stays).
        match self.conflated[..i]
            .iter()
            .position(|q| q.topic == tick.topic && matches!(q.kind, EntryKind::Gap { .. }))
        {
            Some(m) => {
                let (f, _) = self.conflated[m].range();
                match Rc::get_mut(&mut self.conflated[m]) {
                    // Ours and not encoded yet: widening it is two stores.
                    Some(marker) if marker.frame.is_empty() => marker.seq = lost_to,
                    _ => {
                        self.data_bytes -= self.conflated[m].len() as u32;
                        self.conflated[m] = RoutedTick::unsealed_gap(
                            tick.topic,
                            f.min(lost_from),
                            lost_to,
                            GapReason::Conflated,
                        );
                    }
                }
            }
            None => {
                self.conflated.insert(
                    i,
                    RoutedTick::unsealed_gap(tick.topic, lost_from, lost_to, GapReason::Conflated),
                );
                i += 1;
            }
        }
        self.unsealed = true;
        let slot = &mut self.conflated[i];
        self.data_bytes = self.data_bytes - slot.len() as u32 + tick.len() as u32;
        *slot = tick;
        Pushed::Conflated
    }

    /// Whether some gap marker waits to be encoded: call [`seal_gaps`](Self::seal_gaps) before
    /// writing.
    #[inline]
    pub fn has_unsealed_gaps(&self) -> bool {
        self.unsealed
    }

    /// Encodes every gap marker not encoded yet, naming its topic with `name_of`, and turns each
    /// book's resync placeholder into a `resync` marker and the snapshot `snapshot_of` gives (the
    /// book now, shared with every subscriber resyncing at that version). Returns what it made.
    /// A marker whose topic `name_of` does not know (unsubscribed meanwhile) is removed.
    pub fn seal_gaps(
        &mut self,
        name_of: impl Fn(TopicId) -> Option<Topic>,
        snapshot_of: impl Fn(TopicId) -> Option<BookSnapshot>,
    ) -> Sealed {
        if !std::mem::replace(&mut self.unsealed, false) {
            return Sealed::default();
        }
        let mut sealed = Sealed::default();
        let mut added = 0usize;
        let mut resyncs = false;
        let mut seal = |q: &mut SharedTick| -> bool {
            let (from, reason) = match q.kind {
                EntryKind::Gap { from, reason } => (from, reason),
                EntryKind::Resync { .. } => {
                    resyncs = true;
                    return true;
                }
                _ => return true,
            };
            if !q.frame.is_empty() {
                return true;
            }
            let Some(name) = name_of(q.topic) else {
                return false;
            };
            let Some(marker) = Rc::get_mut(q) else {
                return true; // shared: an upstream marker, encoded at publish
            };
            marker.frame = gap_frame(&name, from, marker.seq, reason);
            added += marker.frame.len();
            match reason {
                GapReason::Dropped => sealed.dropped += 1,
                _ => sealed.conflated += 1,
            }
            true
        };
        self.data.retain_mut(&mut seal);
        self.conflated.retain_mut(&mut seal);
        self.data_bytes += added as u32;
        if resyncs || self.covered.is_some() {
            sealed.resyncs = self.seal_resyncs(&name_of, &snapshot_of);
        }
        sealed
    }

    /// The rare part of [`seal_gaps`](Self::seal_gaps): each placeholder becomes the marker for
    /// the deltas the snapshot replaces and the snapshot itself; queued deltas the snapshot
    /// already includes are removed, and those still on their way are skipped when they arrive.
    #[cold]
    fn seal_resyncs(
        &mut self,
        name_of: &impl Fn(TopicId) -> Option<Topic>,
        snapshot_of: &impl Fn(TopicId) -> Option<BookSnapshot>,
    ) -> u64 {
        let mut made = 0;
        let mut covered: Vec<(TopicId, Seq)> = self.covered.take().map(|c| c.0).unwrap_or_default();
        let mut seal_lane = |lane: &mut dyn Iterator<Item = SharedTick>| -> Vec<SharedTick> {
            let mut out = Vec::new();
            for q in lane {
                if let EntryKind::Resync { from } = q.kind {
                    let (Some(name), Some(snap)) = (name_of(q.topic), snapshot_of(q.topic)) else {
                        continue; // unsubscribed, or the book is gone (its topic was reset)
                    };
                    if snap.seq < from {
                        continue; // only deltas the last snapshot sent already includes
                    }
                    if snap.frame.is_empty() {
                        // The book is withdrawn: the client is told what it misses up to now; the
                        // feed's next snapshot comes live, after an `upstream` marker.
                        let frame = gap_frame(&name, from, snap.seq, GapReason::Resync);
                        out.push(RoutedTick::gap(
                            q.topic,
                            TopicClass::Book,
                            from,
                            snap.seq,
                            GapReason::Resync,
                            frame,
                        ));
                        match covered.iter_mut().find(|c| c.0 == q.topic) {
                            Some(c) => c.1 = snap.seq,
                            None => covered.push((q.topic, snap.seq)),
                        }
                        continue;
                    }
                    made += 1;
                    if from < snap.seq {
                        let to = Seq(snap.seq.0 - 1);
                        let frame = gap_frame(&name, from, to, GapReason::Resync);
                        out.push(RoutedTick::gap(
                            q.topic,
                            TopicClass::Book,
                            from,
                            to,
                            GapReason::Resync,
                            frame,
                        ));
                    }
                    out.push(Rc::new(RoutedTick {
                        topic: q.topic,
                        seq: snap.seq,
                        ts: TsMicros::UNMEASURED,
                        frame: snap.frame,
                        kind: EntryKind::Snapshot,
                        class: TopicClass::Book,
                    }));
                    match covered.iter_mut().find(|c| c.0 == q.topic) {
                        Some(c) => c.1 = snap.seq,
                        None => covered.push((q.topic, snap.seq)),
                    }
                    continue;
                }
                let made_here = matches!(
                    q.kind,
                    EntryKind::Snapshot
                        | EntryKind::Gap {
                            reason: GapReason::Resync,
                            ..
                        }
                );
                if let Some(i) = covered.iter().position(|c| c.0 == q.topic && !made_here) {
                    if q.kind != EntryKind::Reset && q.seq <= covered[i].1 {
                        continue; // in the snapshot already sent
                    }
                    // The stream went past the snapshot (or started over): nothing more to skip.
                    covered.swap_remove(i);
                }
                out.push(q);
            }
            out
        };
        let data = seal_lane(&mut self.data.drain(..));
        self.data = data.into();
        let conflated = seal_lane(&mut self.conflated.drain(..));
        self.conflated = conflated;
        self.conflating = !self.conflated.is_empty();
        let bytes: usize = self
            .data
            .iter()
            .chain(&self.conflated)
            .map(|q| q.len())
            .sum();
        self.data_bytes = bytes as u32;
        if !covered.is_empty() {
            self.covered = Some(Box::new(Covered(covered)));
            // Deltas the snapshot covers may still arrive: look again before the next write.
            self.unsealed = true;
        }
        made
    }

    /// Marks the queue listed for the next write pass; false if it already was.
    #[inline]
    pub fn list(&mut self) -> bool {
        !std::mem::replace(&mut self.listed, true)
    }

    /// Clears the mark [`list`](Self::list) set, right before the queue is written.
    #[inline]
    pub fn unlist(&mut self) {
        self.listed = false;
    }

    /// Queues a control frame or reply on the priority lane.
    pub fn push_control(&mut self, frame: Frame) {
        if !self.closed {
            self.control.push_back(frame);
        }
    }

    /// Drops all pending data and queues `close` as the last frame; later pushes are refused.
    pub fn close_with(&mut self, close: Frame) {
        if self.closed {
            return;
        }
        self.clear_data();
        self.control.push_back(close);
        self.closed = true;
    }

    /// Removes pending ticks of `topic` (after an unsubscribe, so none arrive after the ack).
    pub fn purge_topic(&mut self, topic: TopicId) {
        let mut freed = 0;
        let mut keep = |q: &SharedTick| {
            let keep = q.topic != topic;
            if !keep {
                freed += q.len();
            }
            keep
        };
        self.data.retain(&mut keep);
        self.conflated.retain(&mut keep);
        self.conflating = !self.conflated.is_empty();
        self.data_bytes -= freed as u32;
        if let Some(covered) = self.covered.as_mut() {
            covered.0.retain(|c| c.0 != topic);
            if covered.0.is_empty() {
                self.covered = None;
            }
        }
    }

    fn clear_data(&mut self) {
        self.data.clear();
        self.conflated.clear();
        self.conflating = false;
        self.data_bytes = 0;
        self.lagging_since = None;
        self.covered = None;
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.current.is_none()
            && self.control.is_empty()
            && self.data.is_empty()
            && self.conflated.is_empty()
    }

    /// True once a close frame has been queued.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Control frames waiting (the reader pauses while this is high).
    pub fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Starts loading the first queued ticks' entries into cache, for a write a step or two later.
    #[inline]
    pub fn prefetch_front(&self) {
        let (front, _) = self.data.as_slices();
        prefetch(
            front.as_ptr(),
            std::mem::size_of_val(front).min(FRONT_PREFETCH_BYTES),
        );
    }

    /// Ticks waiting (data lane plus conflated).
    pub fn data_len(&self) -> usize {
        self.data.len() + self.conflated.len()
    }

    /// Tick bytes waiting.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes as usize
    }

    /// The unsent bytes of every queued frame, in wire order: the partly written frame, then the
    /// priority lane, then ticks. [`advance`](Self::advance) consumes in this same order.
    fn wire_order(&self) -> impl Iterator<Item = &[u8]> {
        let current = self.current.as_ref().map(|(f, off)| &f.as_slice()[*off..]);
        let control = self.control.iter().map(Frame::as_slice);
        let data = self.data.iter().chain(self.conflated.iter());
        current
            .into_iter()
            .chain(control)
            .chain(data.map(|q| q.frame.as_slice()))
    }

    /// Fills `out` with slices of the next frames in wire order; returns how many were filled. The
    /// server writes through [`gather`](Self::gather); this is the tests' frame-by-frame reference.
    #[cfg(test)]
    pub(crate) fn fill<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, s) in out.iter_mut().zip(self.wire_order()) {
            *slot = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// Appends the next frames in wire order to `out` while they fit in `max_bytes` in all; returns
    /// how many it appended. Appends nothing when the first frame alone is larger: write that one
    /// from [`front`](Self::front) instead of copying it.
    pub fn gather(&self, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        let mut n = 0;
        for s in self.wire_order() {
            if out.len() + s.len() > max_bytes {
                break;
            }
            out.extend_from_slice(s);
            n += 1;
        }
        n
    }

    /// The unsent bytes of the next frame in wire order, if any.
    pub fn front(&self) -> Option<&[u8]> {
        self.wire_order().next()
    }

    /// Marks `written` bytes as sent, in the order [`fill`](Self::fill) gave them.
    pub fn advance(&mut self, mut written: usize) -> Advanced {
        let mut done = Advanced::default();
        if let Some((f, off)) = &mut self.current {
            let rest = f.len() - *off;
            if written < rest {
                *off += written;
                return done;
            }
            written -= rest;
            self.current = None;
            done.frames += 1;
        }
        while written > 0 {
            let frame = if let Some(f) = self.control.pop_front() {
                f
            } else {
                let q = if let Some(q) = self.data.pop_front() {
                    q
                } else if !self.conflated.is_empty() {
                    let q = self.conflated.remove(0);
                    self.conflating = !self.conflated.is_empty();
                    q
                } else {
                    break;
                };
                self.data_bytes -= q.len() as u32;
                if q.ts != TsMicros::UNMEASURED {
                    done.oldest_ts = Some(done.oldest_ts.map_or(q.ts, |t| t.min(q.ts)));
                }
                if written >= q.len() {
                    written -= q.len();
                    done.frames += 1;
                    continue;
                }
                // Partly written (the socket is full): keep this subscriber's own handle.
                Rc::try_unwrap(q).map_or_else(|shared| shared.frame.clone(), |tick| tick.frame)
            };
            if written < frame.len() {
                self.current = Some((frame, written));
                written = 0;
            } else {
                written -= frame.len();
                done.frames += 1;
            }
        }
        if self.data.is_empty() && self.conflated.is_empty() {
            self.lagging_since = None;
        }
        done
    }

    /// Takes the next whole entry in wire order: for a writer that frames entries itself (the SSE
    /// transport) instead of writing the queued bytes as they are. Not to be mixed with a partly
    /// written frame ([`advance`](Self::advance) of part of one): that one comes first, as
    /// control.
    pub fn pop_front(&mut self) -> Option<QueueEntry> {
        if let Some((f, _)) = self.current.take() {
            return Some(QueueEntry::Control(f));
        }
        if let Some(f) = self.control.pop_front() {
            return Some(QueueEntry::Control(f));
        }
        let q = if let Some(q) = self.data.pop_front() {
            q
        } else if !self.conflated.is_empty() {
            let q = self.conflated.remove(0);
            self.conflating = !self.conflated.is_empty();
            q
        } else {
            return None;
        };
        self.data_bytes -= q.len() as u32;
        if self.data.is_empty() && self.conflated.is_empty() {
            self.lagging_since = None;
        }
        Some(QueueEntry::Data(q))
    }

    /// Frees the buffer of every empty lane, so a subscriber that gets ticks now and then holds no
    /// buffer for the replies it got once (the next push allocates again: once per call, not per tick).
    pub fn release_memory(&mut self) {
        if self.control.is_empty() {
            self.control = VecDeque::new();
        }
        if self.data.is_empty() {
            self.data = VecDeque::new();
        }
        if self.conflated.is_empty() {
            self.conflated = Vec::new();
        }
    }

    /// Releases buffer memory held by an idle queue (called when it drains after a burst).
    pub fn shrink_if_idle(&mut self) {
        if self.is_empty() && (self.data.capacity() > 64 || self.control.capacity() > 16) {
            self.data = VecDeque::new();
            self.control = VecDeque::new();
            self.conflated = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(topic: u32, seq: u64) -> (TopicId, Seq, Frame) {
        (
            TopicId(topic),
            Seq(seq),
            Frame::text(format!("{{\"t\":{topic},\"seq\":{seq}}}").as_bytes()),
        )
    }

    /// A queue with its limits, as the router would push to it.
    struct Limited {
        q: OutQueue,
        limits: QueueLimits,
    }

    impl Limited {
        /// Test shorthand: push a tick with a fixed ts.
        fn push(&mut self, t: TopicId, s: Seq, f: Frame) -> Pushed {
            self.q
                .push_data(&self.limits, RoutedTick::shared(t, s, TsMicros(1), f))
        }
    }

    impl std::ops::Deref for Limited {
        type Target = OutQueue;
        fn deref(&self) -> &OutQueue {
            &self.q
        }
    }

    impl std::ops::DerefMut for Limited {
        fn deref_mut(&mut self) -> &mut OutQueue {
            &mut self.q
        }
    }

    fn limits(policy: OverflowPolicy, max_frames: usize) -> QueueLimits {
        QueueLimits {
            max_frames,
            max_bytes: 1 << 20,
            policy,
            max_lag: Duration::from_secs(60),
        }
    }

    fn queue(limits: QueueLimits) -> Limited {
        Limited {
            q: OutQueue::new(),
            limits,
        }
    }

    /// Drains the queue by "writing" everything, returning payloads in wire order. Gap markers are
    /// sealed first, as the writer does, naming topic n `t.n`.
    fn drain(q: &mut OutQueue) -> Vec<String> {
        q.seal_gaps(|id| Topic::new(&format!("t.{}", id.0)).ok(), |_| None);
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut slices = [IoSlice::new(&[]); 8];
            let n = q.fill(&mut slices);
            let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            q.advance(bytes.len());
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let len = rest[1] as usize;
                out.push(String::from_utf8(rest[2..2 + len].to_vec()).unwrap());
                rest = &rest[2 + len..];
            }
        }
        out
    }

    /// Pushes tick `seq` of `topic` of `class`.
    fn push_class(q: &mut Limited, class: TopicClass, topic: u32, seq: u64) -> Pushed {
        let (t, s, f) = tick(topic, seq);
        let limits = q.limits;
        q.q.push_data(&limits, RoutedTick::classed(t, class, s, TsMicros(1), f))
    }

    /// Seals like [`drain`], with topic 2's book snapshot at `snap_seq`, and drains.
    fn drain_with_book(q: &mut OutQueue, snap_seq: u64) -> Vec<String> {
        q.seal_gaps(
            |id| Topic::new(&format!("t.{}", id.0)).ok(),
            |id| {
                (id == TopicId(2)).then(|| BookSnapshot {
                    seq: Seq(snap_seq),
                    frame: Frame::text(format!("snapshot@{snap_seq}").as_bytes()),
                })
            },
        );
        drain(q)
    }

    #[test]
    fn trades_are_never_conflated_and_what_is_dropped_is_announced() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 3));
        for seq in 1..=3 {
            assert_eq!(
                push_class(&mut q, TopicClass::Event, 1, seq),
                Pushed::Queued
            );
        }
        // A ticker overflows the lane: conflation starts.
        assert_eq!(q.push(TopicId(9), Seq(1), tick(9, 1).2), Pushed::Queued);
        for seq in 4..=6 {
            assert_eq!(
                push_class(&mut q, TopicClass::Event, 1, seq),
                Pushed::DroppedNew
            );
        }
        let out = drain(&mut q);
        assert_eq!(
            out,
            vec![
                r#"{"t":1,"seq":1}"#,
                r#"{"t":1,"seq":2}"#,
                r#"{"t":1,"seq":3}"#,
                r#"{"t":9,"seq":1}"#,
                r#"{"type":"gap","topic":"t.1","from":4,"to":6,"reason":"dropped"}"#,
            ]
        );
        // Room again: the next trade is queued as it is.
        assert_eq!(push_class(&mut q, TopicClass::Event, 1, 7), Pushed::Queued);
        assert_eq!(drain(&mut q), vec![r#"{"t":1,"seq":7}"#]);
    }

    /// A marker already encoded (the writer sealed it, the socket has not taken it) still widens:
    /// a reader that stays behind gets one marker per run of drops, never a lane full of them.
    #[test]
    fn a_sealed_trade_marker_widens_instead_of_piling_up() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 3));
        for seq in 1..=3 {
            push_class(&mut q, TopicClass::Event, 1, seq);
        }
        q.push(TopicId(9), Seq(1), tick(9, 1).2);
        for seq in 4..=100 {
            assert_eq!(
                push_class(&mut q, TopicClass::Event, 1, seq),
                Pushed::DroppedNew
            );
            if seq % 10 == 0 {
                q.seal_gaps(|id| Topic::new(&format!("t.{}", id.0)).ok(), |_| None);
            }
        }
        assert_eq!(q.data_len(), 5, "3 trades, a ticker and one marker");
        let out = drain(&mut q);
        assert_eq!(
            out.last().map(String::as_str),
            Some(r#"{"type":"gap","topic":"t.1","from":4,"to":100,"reason":"dropped"}"#)
        );
    }

    #[test]
    fn a_lagging_book_gets_one_snapshot_instead_of_its_deltas() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 3));
        assert_eq!(q.push(TopicId(1), Seq(1), tick(1, 1).2), Pushed::Queued);
        for seq in 10..=11 {
            assert_eq!(push_class(&mut q, TopicClass::Book, 2, seq), Pushed::Queued);
        }
        for seq in 12..=20 {
            assert_eq!(
                push_class(&mut q, TopicClass::Book, 2, seq),
                Pushed::Resynced
            );
        }
        // Sealed when the book is already at 22 (deltas 21 and 22 are still on their way).
        let out = drain_with_book(&mut q, 22);
        assert_eq!(
            out,
            vec![
                r#"{"t":1,"seq":1}"#,
                r#"{"type":"gap","topic":"t.2","from":10,"to":21,"reason":"resync"}"#,
                "snapshot@22",
            ]
        );
        // They arrive: the snapshot has them. The stream goes on after it.
        for seq in 21..=23 {
            push_class(&mut q, TopicClass::Book, 2, seq);
        }
        assert_eq!(drain_with_book(&mut q, 23), vec![r#"{"t":2,"seq":23}"#]);
        push_class(&mut q, TopicClass::Book, 2, 24);
        assert_eq!(drain_with_book(&mut q, 24), vec![r#"{"t":2,"seq":24}"#]);
    }

    /// Deltas the last snapshot covers that arrive after it and are then swept into a new resync
    /// stand for nothing: the next marker starts after the snapshot.
    #[test]
    fn a_second_resync_starts_after_the_snapshot_the_first_sent() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 2));
        q.push(TopicId(1), Seq(1), tick(1, 1).2);
        q.push(TopicId(1), Seq(2), tick(1, 2).2);
        push_class(&mut q, TopicClass::Book, 2, 10);
        assert_eq!(
            drain_with_book(&mut q, 12),
            vec![
                r#"{"t":1,"seq":1}"#,
                r#"{"t":1,"seq":2}"#,
                r#"{"type":"gap","topic":"t.2","from":10,"to":11,"reason":"resync"}"#,
                "snapshot@12",
            ]
        );
        // 11 and 12 arrive late, with 13..=16, into a queue that overflows again.
        q.push(TopicId(1), Seq(3), tick(1, 3).2);
        q.push(TopicId(1), Seq(4), tick(1, 4).2);
        for seq in 11..=16 {
            push_class(&mut q, TopicClass::Book, 2, seq);
        }
        let out = drain_with_book(&mut q, 16);
        assert_eq!(
            out[2..],
            [
                r#"{"type":"gap","topic":"t.2","from":13,"to":15,"reason":"resync"}"#.to_string(),
                "snapshot@16".to_string(),
            ],
            "{out:?}"
        );
    }

    /// A second resync before the first one's snapshot was written replaces both: the marker
    /// starts where the first one did.
    #[test]
    fn a_resync_before_the_last_snapshot_left_covers_from_the_start() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 2));
        q.push(TopicId(1), Seq(1), tick(1, 1).2);
        q.push(TopicId(1), Seq(2), tick(1, 2).2);
        push_class(&mut q, TopicClass::Book, 2, 10);
        q.seal_gaps(
            |id| Topic::new(&format!("t.{}", id.0)).ok(),
            |_| {
                Some(BookSnapshot {
                    seq: Seq(12),
                    frame: Frame::text(b"snapshot@12"),
                })
            },
        );
        // Not written yet; more deltas overflow the queue again.
        for seq in 11..=14 {
            push_class(&mut q, TopicClass::Book, 2, seq);
        }
        let out = drain_with_book(&mut q, 14);
        assert_eq!(
            out[2..],
            [
                r#"{"type":"gap","topic":"t.2","from":10,"to":13,"reason":"resync"}"#.to_string(),
                "snapshot@14".to_string(),
            ],
            "{out:?}"
        );
    }

    #[test]
    fn drop_oldest_resyncs_a_book_instead_of_dropping_its_deltas() {
        let mut q = queue(limits(OverflowPolicy::DropOldest, 2));
        push_class(&mut q, TopicClass::Book, 2, 5);
        push_class(&mut q, TopicClass::Book, 2, 6);
        // Full: dropping delta 5 would corrupt the book, so 5..=7 become one resync.
        assert!(matches!(
            push_class(&mut q, TopicClass::Book, 2, 7),
            Pushed::Resynced | Pushed::DroppedOldest(_)
        ));
        assert_eq!(
            drain_with_book(&mut q, 7),
            vec![
                r#"{"type":"gap","topic":"t.2","from":5,"to":6,"reason":"resync"}"#,
                "snapshot@7",
            ]
        );
    }

    #[test]
    fn conflation_keeps_exactly_the_newest_per_topic() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 2));
        let mut results = Vec::new();
        for seq in 1..=5 {
            for topic in [1, 2, 3] {
                let (t, s, f) = tick(topic, seq);
                results.push(q.push(t, s, f));
            }
        }
        let conflated = results.iter().filter(|&&p| p == Pushed::Conflated).count();
        assert_eq!(conflated, 15 - 2 - 3);
        assert_eq!(
            q.data_len(),
            5 + 3,
            "5 ticks and a marker per conflated topic"
        );
        let got = drain(&mut q);
        assert_eq!(
            got,
            vec![
                r#"{"t":1,"seq":1}"#,
                r#"{"t":2,"seq":1}"#,
                r#"{"type":"gap","topic":"t.3","from":1,"to":4,"reason":"conflated"}"#,
                r#"{"t":3,"seq":5}"#,
                r#"{"type":"gap","topic":"t.1","from":2,"to":4,"reason":"conflated"}"#,
                r#"{"t":1,"seq":5}"#,
                r#"{"type":"gap","topic":"t.2","from":2,"to":4,"reason":"conflated"}"#,
                r#"{"t":2,"seq":5}"#,
            ]
        );
        assert!(results.contains(&Pushed::Conflated));
        // Once drained, ticks queue normally again.
        let (t, s, f) = tick(1, 6);
        assert_eq!(q.push(t, s, f), Pushed::Queued);
    }

    #[test]
    fn a_reset_while_conflating_replaces_what_its_topic_had_pending() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 1));
        for seq in 1..=3 {
            let (t, s, f) = tick(1, seq);
            q.push(t, s, f);
        }
        let (_, _, other) = tick(2, 7);
        q.push(TopicId(2), Seq(7), other);
        let reset = RoutedTick::reset(TopicId(1), TopicClass::Latest, Frame::text(b"reset"));
        let limits = q.limits;
        assert_eq!(q.q.push_data(&limits, reset), Pushed::Queued);
        // The new epoch's ticks conflate behind the reset, never ahead of it.
        for seq in 1..=2 {
            let (t, s, f) = tick(1, seq);
            q.push(t, s, f);
        }
        assert_eq!(
            drain(&mut q),
            vec![
                r#"{"t":1,"seq":1}"#,
                r#"{"t":2,"seq":7}"#,
                "reset",
                r#"{"type":"gap","topic":"t.1","from":1,"to":1,"reason":"conflated"}"#,
                r#"{"t":1,"seq":2}"#,
            ]
        );
    }

    #[test]
    fn drop_oldest_bounds_the_queue() {
        let mut q = queue(limits(OverflowPolicy::DropOldest, 3));
        let mut dropped = 0;
        for seq in 1..=10 {
            let (t, s, f) = tick(1, seq);
            if let Pushed::DroppedOldest(n) = q.push(t, s, f) {
                dropped += n;
            }
        }
        assert_eq!(dropped, 7);
        assert_eq!(
            drain(&mut q),
            vec![
                r#"{"type":"gap","topic":"t.1","from":1,"to":7,"reason":"dropped"}"#,
                r#"{"t":1,"seq":8}"#,
                r#"{"t":1,"seq":9}"#,
                r#"{"t":1,"seq":10}"#
            ]
        );
    }

    #[test]
    fn disconnect_policy_and_max_lag() {
        let mut q = queue(limits(OverflowPolicy::Disconnect, 1));
        let (t, s, f) = tick(1, 1);
        assert_eq!(q.push(t, s, f.clone()), Pushed::Queued);
        assert_eq!(q.push(t, s, f.clone()), Pushed::Disconnect);

        let mut q = queue(QueueLimits {
            max_lag: Duration::ZERO,
            ..limits(OverflowPolicy::Conflate, 1)
        });
        assert_eq!(q.push(t, s, f.clone()), Pushed::Queued);
        assert_eq!(
            q.push(t, s, f.clone()),
            Pushed::Queued,
            "overflow starts conflating"
        );
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(q.push(t, s, f), Pushed::Disconnect);
    }

    #[test]
    fn gather_copies_what_fill_would_send_up_to_the_cap() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 8));
        for seq in 1..=4 {
            let (t, s, f) = tick(1, seq);
            q.push(t, s, f);
        }
        q.advance(3);
        q.push_control(Frame::text(b"ack"));
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.fill(&mut slices);
        let wire: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(q.front(), Some(&*slices[0]));

        let mut out = Vec::new();
        assert_eq!(q.gather(&mut out, usize::MAX), n);
        assert_eq!(out, wire);
        // A cap that cuts the third frame keeps only the first two, whole.
        let cap = slices[0].len() + slices[1].len() + 1;
        out.clear();
        assert_eq!(q.gather(&mut out, cap), 2);
        assert_eq!(out.len(), cap - 1);
        // A first frame larger than the cap is left for a direct write.
        out.clear();
        assert_eq!(q.gather(&mut out, 1), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn control_goes_first_and_partial_frames_finish_first() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 8));
        let (t, s, f) = tick(1, 1);
        q.push(t, s, f.clone());
        q.advance(3); // part of the tick went out
        q.push_control(Frame::text(b"ack"));
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.fill(&mut slices);
        assert_eq!(n, 2);
        assert_eq!(slices[0].len(), f.len() - 3);
        assert_eq!(&*slices[1], Frame::text(b"ack").as_slice());
        assert_eq!(q.advance(f.len() - 3 + 5).frames, 2);
        assert!(q.is_empty());
    }

    #[test]
    fn close_drops_data_and_refuses_more() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 8));
        let (t, s, f) = tick(1, 1);
        q.push(t, s, f.clone());
        q.close_with(Frame::text(b"bye"));
        assert_eq!(q.push(t, s, f), Pushed::Closed);
        assert_eq!(drain(&mut q), vec!["bye"]);
    }

    #[test]
    fn purge_removes_a_topic() {
        let mut q = queue(limits(OverflowPolicy::Conflate, 8));
        for topic in [1, 2, 1] {
            let (t, s, f) = tick(topic, 1);
            q.push(t, s, f);
        }
        q.purge_topic(TopicId(1));
        assert_eq!(drain(&mut q), vec![r#"{"t":2,"seq":1}"#]);
        assert_eq!(q.data_bytes(), 0);
    }
}
