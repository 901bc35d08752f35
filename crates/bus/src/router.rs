//! The per-shard router: which of this shard's subscribers want which topic, and the fan-out of each
//! published tick into their queues. Single-threaded by design (one per worker thread), so the fan-out
//! loop takes no locks and touches no shared cache lines except the frame's refcount.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use tickcast_core::prefetch::prefetch;
use tickcast_core::protocol::{ProtocolError, ProtocolErrorKind};
use tickcast_core::protocol::{Recovery, Since};
use tickcast_core::stream::{gap_frame, heartbeat_frame};
use tickcast_core::{GapReason, Seq, Topic, TopicClass, TopicPattern, TsMicros};

use crate::bus::{Bus, BusError, TopicOrigin};
use crate::inbox::Published;
use crate::queue::{OutQueue, Pushed, QueueLimits, RoutedTick, Sealed, SharedTick};
use crate::throttle::Clocks;
use crate::topic::{BookSnapshot, TopicId, TopicState};

/// Identifies a subscriber within its shard (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriberId(pub u64);

/// One connection's view from the bus: its outbound queue and the writer to wake.
///
/// `repr(C)`, hot fields first: routing a tick touches the `Rc` counts, the `RefCell` flag and the
/// head of the queue (its flags, byte count and ring), which then fill exactly the first cache line
/// (an `Rc<Subscriber>` is a 256-byte block, which mimalloc places on a cache-line boundary); a
/// write pass touches everything up to the owner index, which [`Subscriber::prefetch`] loads ahead.
#[repr(C)]
pub struct Subscriber {
    /// The outbound queue; borrowed briefly by the router (push) and the writer (drain), same thread.
    pub queue: RefCell<OutQueue>,
    /// Set when the overflow policy decided to disconnect; the writer closes with 1008.
    slow: Cell<bool>,
    /// Whether it is in some heartbeat group, so removing one that is not skips looking (in the
    /// padding after `slow`).
    heartbeats: Cell<bool>,
    /// An index the embedding code uses to find its own state for this subscriber (the gateway's
    /// session slot); the bus never interprets it.
    owner: Cell<usize>,
    writer: Cell<Option<Waker>>,
    topics: RefCell<Vec<Held>>,
    id: SubscriberId,
}

/// A topic a subscriber holds, and whether it asked for it by name (else only a pattern brought
/// it, and unsubscribing the pattern ends it).
struct Held {
    state: Arc<TopicState>,
    explicit: bool,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("slow", &self.slow.get())
            .finish()
    }
}

impl Subscriber {
    /// A subscriber with an empty queue.
    pub fn new(id: SubscriberId) -> Rc<Subscriber> {
        Rc::new(Subscriber {
            id,
            queue: RefCell::new(OutQueue::new()),
            writer: Cell::new(None),
            topics: RefCell::new(Vec::new()),
            slow: Cell::new(false),
            owner: Cell::new(usize::MAX),
            heartbeats: Cell::new(false),
        })
    }

    /// Starts loading `this` subscriber's hot cache lines (its `Rc` counts, flags, owner and queue
    /// head), for a write pass that will reach it a few steps later.
    #[inline]
    pub fn prefetch(this: &Rc<Subscriber>) {
        // The `Rc` counts sit just before the value; a prefetch never dereferences, so computing
        // their address with wrapping arithmetic is enough.
        let start = Rc::as_ptr(this).cast::<u8>().wrapping_sub(RC_COUNTS);
        prefetch(start, RC_COUNTS + HOT_BYTES);
    }

    /// Its id.
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// Clears the mark routing left, right before its queue is written: ticks routed from now on
    /// list it again. Only [`Dirty`] calls it, as it hands the subscriber out.
    fn unlist(&self) {
        self.queue.borrow_mut().unlist();
    }

    /// Registers the writer task to wake when frames are queued.
    pub fn set_waker(&self, waker: &Waker) {
        let current = self.writer.take();
        match current {
            Some(w) if w.will_wake(waker) => self.writer.set(Some(w)),
            _ => self.writer.set(Some(waker.clone())),
        }
    }

    /// The embedding code's index for this subscriber.
    pub fn owner(&self) -> usize {
        self.owner.get()
    }

    /// Sets the embedding code's index for this subscriber.
    pub fn set_owner(&self, owner: usize) {
        self.owner.set(owner);
    }

    /// Wakes the writer, if it waits.
    pub fn wake(&self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// True once the overflow policy declared this subscriber a slow consumer.
    pub fn is_slow(&self) -> bool {
        self.slow.get()
    }

    /// Number of topics subscribed.
    pub fn topic_count(&self) -> usize {
        self.topics.borrow().len()
    }

    /// Whether `topic` is subscribed.
    pub fn is_subscribed(&self, topic: &Topic) -> bool {
        self.topics
            .borrow()
            .iter()
            .any(|t| t.state.topic() == topic)
    }

    /// The name of subscribed topic `id`.
    fn name_of(&self, id: TopicId) -> Option<Topic> {
        self.topics
            .borrow()
            .iter()
            .find(|t| t.state.id() == id)
            .map(|t| t.state.topic().clone())
    }

    /// Encodes the `gap` markers its queue holds unencoded and turns book resyncs into
    /// snapshots (see [`OutQueue::seal_gaps`]); call it before writing.
    #[inline]
    pub fn seal_gaps(&self) -> Sealed {
        let mut queue = self.queue.borrow_mut();
        if !queue.has_unsealed_gaps() {
            return Sealed::default();
        }
        queue.seal_gaps(|id| self.name_of(id), |id| self.book_snapshot(id))
    }

    /// The current snapshot of the book of topic `id`, if this subscriber holds it.
    fn book_snapshot(&self, id: TopicId) -> Option<BookSnapshot> {
        self.topics
            .borrow()
            .iter()
            .find(|t| t.state.id() == id)
            .and_then(|t| t.state.book_snapshot())
    }
}

/// Bytes of `Rc`'s strong and weak counts in front of the value.
const RC_COUNTS: usize = 2 * std::mem::size_of::<usize>();
// The layout note on `Subscriber` holds while its `Rc` block fits the allocator's 256-byte class.
const _: () = assert!(RC_COUNTS + std::mem::size_of::<Subscriber>() <= 256);

/// The leading bytes of a [`Subscriber`] that a write touches: up to and including its owner index.
const HOT_BYTES: usize = std::mem::offset_of!(Subscriber, writer);

/// A subscription entry in the routing table.
struct Route {
    sub: Rc<Subscriber>,
    /// Ticks with seq at or below this were already delivered as the snapshot or recovery.
    after: Seq,
}

/// One topic's subscribers in this shard, and how far its stream here has got.
#[derive(Default)]
struct TopicRoutes {
    /// Subscribers that get every tick.
    list: Vec<Route>,
    /// Subscribers that asked for at most one tick per interval, grouped by interval.
    throttled: Vec<ThrottleGroup>,
    /// The latest seq (and its time) that reached this shard while it had subscribers: a tick
    /// that skips past it lost the ones between on the way here (the inbox was full), which the
    /// subscribers are told with a `dropped` marker.
    last: Seq,
    last_ts: TsMicros,
    /// A `reset` came and no tick since: the new epoch's first tick starts the stream here
    /// (whatever its seq), like a snapshot, rather than skipping past `last`.
    after_reset: bool,
}

impl TopicRoutes {
    fn is_empty(&self) -> bool {
        self.list.is_empty() && self.throttled.is_empty()
    }

    /// Takes `sub`'s route out, from wherever it is; with the interval it was throttled at.
    fn take(&mut self, sub: &Rc<Subscriber>) -> Option<(Route, Option<Duration>)> {
        if let Some(pos) = self.list.iter().position(|r| Rc::ptr_eq(&r.sub, sub)) {
            return Some((self.list.swap_remove(pos), None));
        }
        for (g, group) in self.throttled.iter_mut().enumerate() {
            if let Some(pos) = group.members.iter().position(|r| Rc::ptr_eq(&r.sub, sub)) {
                let route = group.members.swap_remove(pos);
                let every = group.every;
                if group.members.is_empty() {
                    self.throttled.swap_remove(g);
                }
                return Some((route, Some(every)));
            }
        }
        None
    }

    /// Adds a route, throttled at `throttle` if given.
    fn put(&mut self, route: Route, throttle: Option<Duration>) {
        let Some(every) = throttle else {
            self.list.push(route);
            return;
        };
        match self.throttled.iter_mut().find(|g| g.every == every) {
            Some(group) => group.members.push(route),
            None => self.throttled.push(ThrottleGroup {
                every,
                members: vec![route],
                pending: None,
            }),
        }
    }

    /// The interval `sub` is throttled at (`Some(None)` = not throttled), if it has a route.
    fn mode_of(&self, sub: &Rc<Subscriber>) -> Option<Option<Duration>> {
        if self.list.iter().any(|r| Rc::ptr_eq(&r.sub, sub)) {
            return Some(None);
        }
        self.throttled
            .iter()
            .find(|g| g.members.iter().any(|r| Rc::ptr_eq(&r.sub, sub)))
            .map(|g| Some(g.every))
    }
}

/// The subscribers of one topic that asked for the same throttle interval: the latest tick waits
/// here for the interval's next boundary ([`Clocks`]), then goes to all of them at once. Work per
/// tick is one replacement per group, whatever its size; work per member follows what it gets.
struct ThrottleGroup {
    every: Duration,
    members: Vec<Route>,
    /// The newest tick since the last delivery.
    pending: Option<SharedTick>,
}

/// How a subscription streams its topics.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamOptions<'a> {
    /// Where the client's copies stopped: recover the ticks after these seqs.
    pub since: &'a [Since],
    /// Send a heartbeat for each topic that stays quiet this long.
    pub heartbeat: Option<Duration>,
    /// Deliver at most one tick (the latest) per topic per this interval.
    pub throttle: Option<Duration>,
}

/// Who may see which topic: a wildcard applies the subscriber's entitlements to each topic it
/// matches, now and later.
pub type TopicFilter = Rc<dyn Fn(&Topic) -> bool>;

/// A wildcard subscription of one subscriber.
struct PatternSub {
    pattern: TopicPattern,
    sub: Rc<Subscriber>,
    heartbeat: Option<Duration>,
    throttle: Option<Duration>,
    allow: Option<TopicFilter>,
    /// The subscriber's topic limit, which what the pattern matches counts against.
    max_topics: usize,
    /// Whether the subscriber was told the limit stopped this pattern (told once).
    told_limit: bool,
}

/// What matching one topic did for one wildcard subscription.
enum Matched {
    Subscribed,
    Held,
    Forbidden,
    OverLimit,
}

/// What a wildcard subscribe did.
#[derive(Debug, Default)]
pub struct PatternOutcome {
    /// Topics it subscribed now (more follow as feeds start them).
    pub matched: Vec<Topic>,
    /// Topics it matched that the subscriber may not see.
    pub forbidden: Vec<Topic>,
    /// Topics it matched past the subscriber's topic limit.
    pub over_limit: Vec<Topic>,
}

/// The subscribers that asked for heartbeats of one topic at one interval: one heartbeat frame is
/// encoded per group per quiet interval and shared by all of them.
struct HeartbeatGroup {
    topic: Arc<TopicState>,
    every: Duration,
    /// When the next heartbeat is due, unless a tick arrives first.
    due: Instant,
    /// The topic's latest seq here when the interval began: unchanged at `due` = quiet.
    seen: Seq,
    members: Vec<Rc<Subscriber>>,
}

/// A heartbeat group's decision at `now`: pure, so the quiet/busy rule is testable alone.
fn heartbeat_due(due: Instant, seen: Seq, last: Seq, now: Instant) -> HeartbeatDecision {
    if now < due {
        HeartbeatDecision::Wait
    } else if last != seen {
        HeartbeatDecision::Busy
    } else {
        HeartbeatDecision::Send
    }
}

#[derive(Debug, PartialEq, Eq)]
enum HeartbeatDecision {
    /// The interval is not over.
    Wait,
    /// A tick arrived during it: start the next interval.
    Busy,
    /// Quiet for the whole interval: send one.
    Send,
}

/// Counters of one shard, plain integers batched into shared metrics by the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Ticks taken from the inbox.
    pub ticks: u64,
    /// Ticks pushed onto subscriber queues (including conflated replacements).
    pub deliveries: u64,
    /// Ticks replaced by a newer one of the same topic in a slow subscriber's queue.
    pub conflated: u64,
    /// Ticks dropped by the `drop_oldest` policy.
    pub dropped: u64,
    /// Events (trades) not queued because a lagging subscriber's lane was full (policy `conflate`,
    /// which never conflates events).
    pub events_dropped: u64,
    /// Book deltas a lagging subscriber will get as part of a fresh snapshot instead.
    pub resyncs: u64,
    /// Subscribers declared slow consumers.
    pub slow_disconnects: u64,
    /// Live subscriptions in this shard.
    pub subscriptions: u64,
    /// Seqs that never reached this shard (its inbox was full), announced as `dropped` gaps.
    pub inbox_gaps: u64,
    /// `dropped` markers queued for those.
    pub inbox_markers: u64,
    /// `upstream` markers queued (a feed's seqs skipped).
    pub upstream_markers: u64,
    /// `reset` frames queued to subscribers (a topic's seq space started over upstream).
    pub resets: u64,
    /// Heartbeat frames encoded (one per group and quiet interval).
    pub heartbeats: u64,
    /// Heartbeats queued to subscribers.
    pub heartbeat_deliveries: u64,
    /// Ticks a throttled group replaced with a newer one before its interval ended (once per
    /// group, however many members).
    pub throttle_superseded: u64,
    /// Ticks a throttled group delivered at an interval boundary (once per group).
    pub throttle_releases: u64,
    /// Topics wildcard subscriptions subscribed (at subscribe, and as feeds started them).
    pub pattern_matches: u64,
    /// Topics a wildcard matched but the subscriber's topic limit refused.
    pub pattern_over_limit: u64,
    /// Topics a wildcard matched but the subscriber's entitlements refused.
    pub pattern_forbidden: u64,
}

/// Routing table and fan-out loop of one shard.
pub struct ShardRouter {
    shard: usize,
    bus: Arc<Bus>,
    /// Bounds of every queue of this shard.
    limits: QueueLimits,
    /// Indexed by [`TopicId`]: dense, so lookup is an index, not a hash.
    routes: Vec<TopicRoutes>,
    /// Heartbeat groups, in no order; few (one per topic and interval asked for).
    heartbeats: Vec<HeartbeatGroup>,
    stats: RouterStats,
    /// Subscribers that got ticks in the current dispatch round.
    dirty: Vec<Rc<Subscriber>>,
    /// Throttled streams' delivery clocks.
    clocks: Clocks,
    /// Scratch for the throttled topics due, reused.
    due: Vec<(Duration, TopicId)>,
    /// Wildcard subscriptions of this shard's subscribers.
    patterns: Vec<PatternSub>,
}

impl ShardRouter {
    /// The router of shard `shard` of `bus`, queueing under `limits`.
    pub fn new(bus: Arc<Bus>, shard: usize, limits: QueueLimits) -> Self {
        Self {
            shard,
            clocks: Clocks::new(bus.created),
            bus,
            limits,
            routes: Vec::new(),
            heartbeats: Vec::new(),
            stats: RouterStats::default(),
            dirty: Vec::new(),
            due: Vec::new(),
            patterns: Vec::new(),
        }
    }

    /// The bus this router reads from.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Counters so far.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Subscribes `sub` to `topics`. Each topic's stream starts with the ticks after the seq
    /// `opts.since` names for it, when the history still holds them all in the same epoch, else with
    /// its latest tick as a snapshot; the outcome of each `since` is returned. With a heartbeat,
    /// `sub` also gets a heartbeat for each of these topics that stays quiet that long
    /// ([`heartbeats`](Self::heartbeats)); with a throttle, at most one tick per topic per interval
    /// ([`release_throttled`](Self::release_throttled)). A topic already subscribed keeps streaming and
    /// takes the new heartbeat and throttle.
    ///
    /// Fails without side effects past the first topic that cannot be created; topics before it
    /// stay subscribed.
    pub fn subscribe(
        &mut self,
        sub: &Rc<Subscriber>,
        topics: &[Topic],
        opts: &StreamOptions<'_>,
        now: Instant,
    ) -> Result<Vec<Recovery>, BusError> {
        // Exactly what is asked for: this list lives as long as the connection, and doubling would
        // hold up to twice its size (topics per connection are limited, so growing one request at
        // a time stays cheap).
        sub.topics.borrow_mut().reserve_exact(topics.len());
        let mut recoveries = Vec::new();
        for topic in topics {
            let state = self.bus.resolve(topic, TopicOrigin::Subscriber)?;
            let from = opts
                .since
                .iter()
                .find(|s| &s.topic == topic)
                .map(|s| (s.seq, &s.epoch));
            if let Some(outcome) = self.subscribe_one(sub, &state, from, opts, true, now) {
                recoveries.push(Recovery {
                    topic: topic.clone(),
                    outcome,
                });
            }
        }
        Ok(recoveries)
    }

    /// Subscribes `sub` to `topic` as a wildcard would (unsubscribing the pattern ends it), from
    /// the `since` in `opts`: for a client resuming a wildcard subscription. A topic the bus does
    /// not know is left to the pattern (no outcome).
    pub fn subscribe_matched(
        &mut self,
        sub: &Rc<Subscriber>,
        topic: &Topic,
        opts: &StreamOptions<'_>,
        now: Instant,
    ) -> Option<Recovery> {
        let state = self.bus.get(topic.as_str())?;
        let from = opts
            .since
            .iter()
            .find(|s| &s.topic == topic)
            .map(|s| (s.seq, &s.epoch));
        let outcome = self.subscribe_one(sub, &state, from, opts, false, now)?;
        Some(Recovery {
            topic: topic.clone(),
            outcome,
        })
    }

    /// Wildcard subscriptions `sub` holds.
    pub fn pattern_count(&self, sub: &Rc<Subscriber>) -> usize {
        self.patterns
            .iter()
            .filter(|p| Rc::ptr_eq(&p.sub, sub))
            .count()
    }

    /// Whether `sub` holds wildcard subscription `pattern`.
    pub fn has_pattern(&self, sub: &Rc<Subscriber>, pattern: &TopicPattern) -> bool {
        self.patterns
            .iter()
            .any(|p| Rc::ptr_eq(&p.sub, sub) && &p.pattern == pattern)
    }

    /// Subscribes `sub` to one topic (see [`subscribe`](Self::subscribe)); returns the outcome of
    /// its `since`, if it had one.
    fn subscribe_one(
        &mut self,
        sub: &Rc<Subscriber>,
        state: &Arc<TopicState>,
        from: Option<(Seq, &tickcast_core::Epoch)>,
        opts: &StreamOptions<'_>,
        explicit: bool,
        now: Instant,
    ) -> Option<Result<(), tickcast_core::NotRecovered>> {
        let idx = state.id().0 as usize;
        if self.routes.len() <= idx {
            self.routes.resize_with(idx + 1, TopicRoutes::default);
        }
        // A book cannot skip deltas: its subscribers get every one (or a resync), never a throttle.
        let throttle = match state.class() {
            TopicClass::Book => None,
            _ => opts.throttle,
        };
        let held = sub
            .topics
            .borrow()
            .iter()
            .position(|t| Arc::ptr_eq(&t.state, state));
        if let Some(at) = held {
            // Already streaming: only a new heartbeat interval or throttle changes anything.
            if explicit {
                sub.topics.borrow_mut()[at].explicit = true;
            }
            let routes = &mut self.routes[idx];
            if routes.mode_of(sub) != Some(throttle) {
                if let Some((mut route, _)) = routes.take(sub) {
                    // Carries on from what this shard has routed: nothing is sent twice.
                    route.after = route.after.max(routes.last);
                    routes.put(route, throttle);
                }
            }
            if let Some(every) = opts.heartbeat {
                self.leave_heartbeats(sub, state.id());
                self.join_heartbeats(sub, state, every, now);
            }
            return None;
        }
        let first_here = self.routes[idx].is_empty();
        if first_here {
            // Set the bit before reading the log; see PublishBatch::publish and TopicState::open.
            state.shard_mask.fetch_or(1 << self.shard, Ordering::SeqCst);
        }
        let opening = state.open(from, now);
        let routes = &mut self.routes[idx];
        if first_here {
            // Everything up to here is in the opening; the inbox may still hold some of it.
            routes.last = opening.after;
            routes.last_ts = opening.after_ts;
        }
        routes.put(
            Route {
                sub: sub.clone(),
                after: opening.after,
            },
            throttle,
        );
        sub.topics.borrow_mut().push(Held {
            state: state.clone(),
            explicit,
        });
        self.stats.subscriptions += 1;
        for r in opening.frames {
            // Not live: their latency is not measured.
            let class = state.class();
            let tick = match r.gap_from {
                None => {
                    RoutedTick::classed(state.id(), class, r.seq, TsMicros::UNMEASURED, r.frame)
                }
                Some(from) => {
                    RoutedTick::gap(state.id(), class, from, r.seq, GapReason::Upstream, r.frame)
                }
            };
            self.deliver(sub, tick);
        }
        if let Some(every) = opts.heartbeat {
            self.join_heartbeats(sub, state, every, now);
        }
        opening.recovery
    }

    /// Subscribes `sub` to every topic feeds publish that `pattern` matches, now and as feeds
    /// start them, as [`subscribe`](Self::subscribe) would with `opts` (without `since`: a
    /// client resuming names its topics). Topics `allow` refuses are left out, and so are topics past
    /// `max_topics` held by `sub` in all (the subscriber is told once, with a `too_many_topics`
    /// error).
    pub fn subscribe_pattern(
        &mut self,
        sub: &Rc<Subscriber>,
        pattern: &TopicPattern,
        opts: &StreamOptions<'_>,
        allow: Option<TopicFilter>,
        max_topics: usize,
        now: Instant,
    ) -> PatternOutcome {
        let existing = self
            .patterns
            .iter_mut()
            .find(|p| Rc::ptr_eq(&p.sub, sub) && &p.pattern == pattern);
        match existing {
            Some(p) => {
                p.heartbeat = opts.heartbeat;
                p.throttle = opts.throttle;
                p.allow = allow;
                p.max_topics = max_topics;
            }
            None => {
                // Registered before the scan below: a topic a feed starts meanwhile is either
                // in the scan or noticed later (both is harmless: subscribing is idempotent).
                self.bus.patterns.add(pattern, self.shard);
                self.patterns.push(PatternSub {
                    pattern: pattern.clone(),
                    sub: sub.clone(),
                    heartbeat: opts.heartbeat,
                    throttle: opts.throttle,
                    allow,
                    max_topics,
                    told_limit: false,
                });
            }
        }
        let mut outcome = PatternOutcome::default();
        let Some(at) = self
            .patterns
            .iter()
            .position(|p| Rc::ptr_eq(&p.sub, sub) && &p.pattern == pattern)
        else {
            return outcome;
        };
        for state in self.bus.matching(pattern) {
            match self.match_topic(at, &state, false, now) {
                Matched::Subscribed => outcome.matched.push(state.topic().clone()),
                Matched::Forbidden => outcome.forbidden.push(state.topic().clone()),
                Matched::OverLimit => outcome.over_limit.push(state.topic().clone()),
                Matched::Held => {}
            }
        }
        outcome
    }

    /// Subscribes pattern subscription `at`'s subscriber to `state`, within its entitlements and
    /// topic limit. `from_first`: the topic is new (a feed just started it), so the subscriber gets
    /// it from its first seq out of the topic's history, not from a snapshot of whatever it reached
    /// before this shard took the notice (a burst's first trades would otherwise be lost unsaid).
    fn match_topic(
        &mut self,
        at: usize,
        state: &Arc<TopicState>,
        from_first: bool,
        now: Instant,
    ) -> Matched {
        let p = &self.patterns[at];
        if p.sub
            .topics
            .borrow()
            .iter()
            .any(|t| Arc::ptr_eq(&t.state, state))
        {
            return Matched::Held;
        }
        if p.allow.as_ref().is_some_and(|allow| !allow(state.topic())) {
            self.stats.pattern_forbidden += 1;
            return Matched::Forbidden;
        }
        if p.sub.topic_count() >= p.max_topics {
            self.stats.pattern_over_limit += 1;
            if !p.told_limit {
                let kind = ProtocolErrorKind::TooManyTopics {
                    limit: p.max_topics,
                    wanted: p.max_topics + 1,
                };
                p.sub
                    .queue
                    .borrow_mut()
                    .push_control(ProtocolError::new(kind).to_frame());
                p.sub.wake();
                self.patterns[at].told_limit = true;
            }
            return Matched::OverLimit;
        }
        let sub = p.sub.clone();
        let opts = StreamOptions {
            since: &[],
            heartbeat: p.heartbeat,
            throttle: p.throttle,
        };
        // A book opens with its snapshot whatever happened before (its deltas need one); other
        // topics replay from seq 1 when the history still holds it, else open with the snapshot.
        let epoch = state.epoch();
        let from = (from_first && state.class() != TopicClass::Book).then_some((Seq(0), &epoch));
        self.subscribe_one(&sub, state, from, &opts, false, now);
        self.stats.pattern_matches += 1;
        Matched::Subscribed
    }

    /// Subscribes this shard's matching wildcard subscriptions to the topics feeds started since
    /// the last call.
    fn take_pattern_notices(&mut self, now: Instant) {
        while let Some(state) = self.bus.patterns.take_notice(self.shard) {
            for at in 0..self.patterns.len() {
                if self.patterns[at].pattern.matches(state.topic()) {
                    self.match_topic(at, &state, true, now);
                }
            }
            let idx = state.id().0 as usize;
            if self.routes.get(idx).is_none_or(TopicRoutes::is_empty) {
                // Nobody here took it (entitlements, limits): stop its ticks coming here.
                state
                    .shard_mask
                    .fetch_and(!(1 << self.shard), Ordering::SeqCst);
            }
        }
    }

    /// Ends `sub`'s wildcard subscription `pattern` and every topic only it brought (topics also
    /// asked for by name, or matched by another of `sub`'s patterns, stay). Returns whether `sub` had it.
    pub fn unsubscribe_pattern(&mut self, sub: &Rc<Subscriber>, pattern: &TopicPattern) -> bool {
        let Some(at) = self
            .patterns
            .iter()
            .position(|p| Rc::ptr_eq(&p.sub, sub) && &p.pattern == pattern)
        else {
            return false;
        };
        self.patterns.swap_remove(at);
        self.bus.patterns.remove(pattern, self.shard);
        let others: Vec<TopicPattern> = self
            .patterns
            .iter()
            .filter(|p| Rc::ptr_eq(&p.sub, sub))
            .map(|p| p.pattern.clone())
            .collect();
        let gone: Vec<Topic> = sub
            .topics
            .borrow()
            .iter()
            .filter(|t| {
                !t.explicit
                    && pattern.matches(t.state.topic())
                    && !others.iter().any(|o| o.matches(t.state.topic()))
            })
            .map(|t| t.state.topic().clone())
            .collect();
        self.unsubscribe(sub, &gone);
        true
    }

    fn join_heartbeats(
        &mut self,
        sub: &Rc<Subscriber>,
        state: &Arc<TopicState>,
        every: Duration,
        now: Instant,
    ) {
        sub.heartbeats.set(true);
        if let Some(group) = self
            .heartbeats
            .iter_mut()
            .find(|g| g.every == every && Arc::ptr_eq(&g.topic, state))
        {
            group.members.push(sub.clone());
            return;
        }
        let seen = self.routes[state.id().0 as usize].last;
        self.heartbeats.push(HeartbeatGroup {
            topic: state.clone(),
            every,
            due: now + every,
            seen,
            members: vec![sub.clone()],
        });
    }

    fn leave_heartbeats(&mut self, sub: &Rc<Subscriber>, topic: TopicId) {
        if !sub.heartbeats.get() {
            return;
        }
        self.heartbeats.retain_mut(|g| {
            if g.topic.id() == topic {
                g.members.retain(|m| !Rc::ptr_eq(m, sub));
            }
            !g.members.is_empty()
        });
    }

    /// Sends the heartbeats due at `now`: for each group whose topic had no tick here for its
    /// interval, one frame, queued on every member's priority lane (a member with ticks still
    /// queued is skipped: it is not waiting on a quiet topic). Returns when to call again, if any
    /// group is left.
    pub fn heartbeats(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for group in &mut self.heartbeats {
            let routes = &self.routes[group.topic.id().0 as usize];
            match heartbeat_due(group.due, group.seen, routes.last, now) {
                HeartbeatDecision::Wait => {}
                HeartbeatDecision::Busy => {
                    group.seen = routes.last;
                    group.due = now + group.every;
                }
                HeartbeatDecision::Send => {
                    let frame = heartbeat_frame(
                        group.topic.topic(),
                        routes.last,
                        routes.last_ts,
                        group.topic.feed_up(),
                    );
                    self.stats.heartbeats += 1;
                    for member in &group.members {
                        let mut queue = member.queue.borrow_mut();
                        if queue.data_len() == 0 {
                            queue.push_control(frame.clone());
                            drop(queue);
                            member.wake();
                            self.stats.heartbeat_deliveries += 1;
                        }
                    }
                    group.due = now + group.every;
                }
            }
            next = Some(next.map_or(group.due, |n| n.min(group.due)));
        }
        next
    }

    /// Unsubscribes `sub` from `topics` and purges their queued ticks; unknown ones are ignored.
    pub fn unsubscribe(&mut self, sub: &Rc<Subscriber>, topics: &[Topic]) {
        for topic in topics {
            let state = {
                let mut mine = sub.topics.borrow_mut();
                let Some(pos) = mine.iter().position(|t| t.state.topic() == topic) else {
                    continue;
                };
                mine.swap_remove(pos).state
            };
            self.remove_route(sub, &state);
            self.leave_heartbeats(sub, state.id());
            sub.queue.borrow_mut().purge_topic(state.id());
        }
        if sub.heartbeats.get()
            && !self
                .heartbeats
                .iter()
                .any(|g| g.members.iter().any(|m| Rc::ptr_eq(m, sub)))
        {
            sub.heartbeats.set(false);
        }
    }

    /// Removes every subscription of `sub` (on disconnect).
    pub fn remove(&mut self, sub: &Rc<Subscriber>) {
        let topics = std::mem::take(&mut *sub.topics.borrow_mut());
        for held in topics {
            self.remove_route(sub, &held.state);
            self.leave_heartbeats(sub, held.state.id());
        }
        sub.heartbeats.set(false);
        let bus = &self.bus;
        let shard = self.shard;
        self.patterns.retain(|p| {
            let mine = Rc::ptr_eq(&p.sub, sub);
            if mine {
                bus.patterns.remove(&p.pattern, shard);
            }
            !mine
        });
    }

    fn remove_route(&mut self, sub: &Rc<Subscriber>, state: &TopicState) {
        let Some(routes) = self.routes.get_mut(state.id().0 as usize) else {
            return;
        };
        if routes.take(sub).is_some() {
            self.stats.subscriptions -= 1;
        }
        if routes.is_empty() {
            state
                .shard_mask
                .fetch_and(!(1 << self.shard), Ordering::SeqCst);
            // Give the memory back: a topic may have had thousands of subscribers. Its stream here
            // stops; the next first subscriber starts it again from its opening.
            *routes = TopicRoutes::default();
        }
    }

    /// Takes up to `budget` ticks from this shard's inbox and fans each out; returns how many it took.
    /// `observe` gets the fan-out time of each tick that had subscribers here.
    pub fn dispatch(&mut self, budget: usize, mut observe: impl FnMut(Duration)) -> usize {
        let bus = self.bus.clone();
        let inbox = bus.inbox(self.shard);
        if !self.patterns.is_empty() {
            self.take_pattern_notices(Instant::now());
        }
        let mut n = 0;
        while n < budget {
            let Some(item) = inbox.pop() else { break };
            n += 1;
            let Some(routes) = self.routes.get_mut(item.topic.0 as usize) else {
                continue;
            };
            if item.reset {
                reset_routes(&self.limits, &mut self.stats, routes, &item);
                continue;
            }
            if routes.is_empty() || item.seq <= routes.last {
                // No one here, or already covered (a snapshot, or a publisher that stored its tick
                // before another's but pushed it after: the later one was announced as a gap).
                continue;
            }
            let started = Instant::now();
            let first = item.gap_from.unwrap_or(item.seq);
            if routes.after_reset {
                if item.gap_from.is_some() {
                    continue; // an upstream marker for seqs before the new epoch's first here
                }
                routes.after_reset = false;
            } else if first.0 > routes.last.0 + 1 {
                self.stats.inbox_gaps += first.0 - routes.last.0 - 1;
                lost_on_the_way(&self.limits, &mut self.stats, routes, first, &item);
            }
            routes.last = item.seq;
            routes.last_ts = item.ts;
            let tick = match item.gap_from {
                None => RoutedTick::classed(item.topic, item.class, item.seq, item.ts, item.frame),
                Some(from) => RoutedTick::gap(
                    item.topic,
                    item.class,
                    from,
                    item.seq,
                    GapReason::Upstream,
                    item.frame,
                ),
            };
            if item.gap_from.is_none() {
                // Throttled members skip seqs by request: they get the latest tick at the next
                // boundary, so an upstream marker means nothing to them.
                for group in &mut routes.throttled {
                    match group.pending.replace(tick.clone()) {
                        None => self.clocks.hold(item.topic, group.every, started),
                        Some(_) => self.stats.throttle_superseded += 1,
                    }
                }
            }
            let delivered = self.stats.deliveries;
            for route in &routes.list {
                route_tick(&self.limits, &mut self.stats, &mut self.dirty, route, &tick);
            }
            if item.gap_from.is_some() {
                self.stats.upstream_markers += self.stats.deliveries - delivered;
            }
            observe(started.elapsed());
        }
        self.stats.ticks += n as u64;
        n
    }

    /// When the next throttled tick is due, if one waits: call
    /// [`release_throttled`](Self::release_throttled) then.
    pub fn throttle_due(&self) -> Option<Instant> {
        self.clocks.earliest()
    }

    /// Queues the throttled ticks due at `now` for their groups' members (listing them for the
    /// next write pass, like [`dispatch`](Self::dispatch)); returns how many groups it released.
    pub fn release_throttled(&mut self, now: Instant) -> usize {
        let mut due = std::mem::take(&mut self.due);
        self.clocks.take_due(now, &mut due);
        let released = due.len();
        for (every, topic) in due.drain(..) {
            let Some(routes) = self.routes.get_mut(topic.0 as usize) else {
                continue;
            };
            let Some(group) = routes.throttled.iter_mut().find(|g| g.every == every) else {
                continue; // its members left meanwhile
            };
            let Some(tick) = group.pending.take() else {
                continue;
            };
            self.stats.throttle_releases += 1;
            for route in &group.members {
                route_tick(&self.limits, &mut self.stats, &mut self.dirty, route, &tick);
            }
        }
        self.due = due;
        released
    }

    /// Whether some subscriber got ticks since the last [`take_dirty`](Self::take_dirty).
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Takes the subscribers that got ticks since the last call, for the caller to write, reusing
    /// `buffer`'s allocation (give it back with [`Dirty::finish`]), so a round allocates nothing.
    ///
    /// Each stays listed until [`Dirty::take_next`] hands it out, right before it is written: ticks
    /// routed while a long write pass is under way ride along in that subscriber's write instead of
    /// waiting for the next pass. The guard unlists every subscriber it holds by the time it is
    /// finished or dropped, so none can stay listed (and unwritten) for good.
    pub fn take_dirty(&mut self, buffer: Vec<Rc<Subscriber>>) -> Dirty {
        let mut list = buffer;
        list.clear();
        std::mem::swap(&mut list, &mut self.dirty);
        Dirty { list, next: 0 }
    }

    fn deliver(&mut self, sub: &Rc<Subscriber>, tick: SharedTick) {
        let pushed = sub.queue.borrow_mut().push_data(&self.limits, tick);
        account(&mut self.stats, sub, pushed);
        sub.wake();
    }
}

/// The subscribers one write pass takes from the router ([`ShardRouter::take_dirty`]), handed
/// out one at a time and unlisted as they are.
pub struct Dirty {
    list: Vec<Rc<Subscriber>>,
    next: usize,
}

impl Dirty {
    /// The next subscriber to write, unlisted: ticks routed from now on list it again.
    #[inline]
    pub fn take_next(&mut self) -> Option<&Rc<Subscriber>> {
        let sub = self.list.get(self.next)?;
        self.next += 1;
        sub.unlist();
        Some(sub)
    }

    /// The subscriber `ahead` places after the one [`take_next`](Self::take_next) hands out next (0 = that
    /// one), still listed: for prefetching what writing it will touch.
    #[inline]
    pub fn peek(&self, ahead: usize) -> Option<&Rc<Subscriber>> {
        self.list.get(self.next + ahead)
    }

    /// Subscribers not handed out yet.
    pub fn remaining(&self) -> usize {
        self.list.len() - self.next
    }

    /// Ends the pass: unlists (and wakes, so their own writers take over) the subscribers not
    /// handed out, and gives the buffer back for the next pass.
    pub fn finish(mut self) -> Vec<Rc<Subscriber>> {
        self.release_rest();
        let mut list = std::mem::take(&mut self.list);
        self.next = 0;
        list.clear();
        list
    }

    fn release_rest(&mut self) {
        for sub in self.list.get(self.next..).unwrap_or_default() {
            sub.unlist();
            sub.wake();
        }
        self.next = self.list.len();
    }
}

impl Drop for Dirty {
    fn drop(&mut self) {
        self.release_rest();
    }
}

/// Tells every subscriber of a topic here that its seq space started over (the `reset` frame)
/// and moves their positions back to 0, so seq 1 of the new epoch reaches them.
#[cold]
fn reset_routes(
    limits: &QueueLimits,
    stats: &mut RouterStats,
    routes: &mut TopicRoutes,
    item: &Published,
) {
    if routes.is_empty() {
        return;
    }
    routes.last = Seq(0);
    routes.last_ts = TsMicros(0);
    routes.after_reset = true;
    let marker = RoutedTick::reset(item.topic, item.class, item.frame.clone());
    let members = routes
        .throttled
        .iter_mut()
        .flat_map(|g| {
            g.pending = None;
            g.members.iter_mut()
        })
        .chain(routes.list.iter_mut());
    for route in members {
        route.after = Seq(0);
        let pushed = route
            .sub
            .queue
            .borrow_mut()
            .push_data(limits, marker.clone());
        stats.resets += 1;
        account(stats, &route.sub, pushed);
        route.sub.wake();
    }
}

/// Announces ticks of a topic that never reached this shard (seqs after `routes.last` and before
/// `first`) with a `dropped` marker to each subscriber that had not got them another way. Rare (the
/// inbox overflowed), so the marker is encoded here, once per distinct range.
#[cold]
fn lost_on_the_way(
    limits: &QueueLimits,
    stats: &mut RouterStats,
    routes: &TopicRoutes,
    first: Seq,
    item: &Published,
) {
    let Some(to) = first.0.checked_sub(1).map(Seq) else {
        return;
    };
    let mut shared: Option<(Seq, SharedTick)> = None;
    for route in &routes.list {
        let from = Seq(routes.last.0.max(route.after.0) + 1);
        if from > to {
            continue;
        }
        if item.class == TopicClass::Book {
            // A book that missed deltas is wrong until it gets a snapshot: resync it.
            route.sub.queue.borrow_mut().resync(item.topic, from, to);
            stats.resyncs += 1;
            route.sub.wake();
            continue;
        }
        let marker = match &shared {
            Some((f, m)) if *f == from => m.clone(),
            _ => {
                let Some(name) = route.sub.name_of(item.topic) else {
                    continue;
                };
                let frame = gap_frame(&name, from, to, GapReason::Dropped);
                let m =
                    RoutedTick::gap(item.topic, item.class, from, to, GapReason::Dropped, frame);
                shared = Some((from, m.clone()));
                m
            }
        };
        let pushed = route.sub.queue.borrow_mut().push_data(limits, marker);
        stats.inbox_markers += 1;
        if account(stats, &route.sub, pushed) {
            route.sub.wake();
        }
    }
}

/// Queues `tick` for the subscriber of `route` unless it already has it (its snapshot or recovery
/// covered it), and lists the subscriber for the next write pass.
// Always: this is the per-subscriber step of every fan-out, and the compiler stopped inlining it
// into `dispatch` once that grew (a call per subscriber cost ~15% of a 10k fan-out in the bench).
#[inline(always)]
fn route_tick(
    limits: &QueueLimits,
    stats: &mut RouterStats,
    dirty: &mut Vec<Rc<Subscriber>>,
    route: &Route,
    tick: &SharedTick,
) {
    if tick.seq <= route.after {
        return; // already sent as the snapshot or recovery
    }
    let (pushed, newly_listed) = {
        let mut queue = route.sub.queue.borrow_mut();
        let pushed = queue.push_data(limits, tick.clone());
        (pushed, pushed == Pushed::Queued && queue.list())
    };
    stats.deliveries += 1;
    if pushed == Pushed::Queued {
        // Listed for the caller to flush right after this round (see `take_dirty`), so a
        // round's frames leave in one tight burst of writes.
        if newly_listed {
            dirty.push(route.sub.clone());
        }
    } else if account(stats, &route.sub, pushed) {
        route.sub.wake();
    }
}

/// Counts what the overflow policy did to a push and marks a subscriber it disconnects as slow;
/// true when its writer must be woken to act on that (ticks dropped, or a disconnect decided).
fn account(stats: &mut RouterStats, sub: &Subscriber, pushed: Pushed) -> bool {
    match pushed {
        Pushed::Queued | Pushed::Closed => false,
        Pushed::Conflated => {
            stats.conflated += 1;
            false
        }
        Pushed::DroppedOldest(n) => {
            stats.dropped += u64::from(n);
            true
        }
        Pushed::DroppedNew => {
            stats.events_dropped += 1;
            true
        }
        Pushed::Resynced => {
            stats.resyncs += 1;
            true
        }
        Pushed::Disconnect => {
            if !sub.slow.replace(true) {
                stats.slow_disconnects += 1;
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;
    use std::io::IoSlice;
    use tickcast_core::{Epoch, Frame, NotRecovered};

    /// Every connection has one, behind an `Rc` (16 bytes more): 256 is an allocation size class.
    #[test]
    fn a_subscriber_fits_in_256_bytes() {
        let size = std::mem::size_of::<Subscriber>();
        assert!(size + 16 <= 256, "Subscriber is {size} bytes");
    }

    /// Routing a tick to a subscriber reads one cache line of its block, not two: the `Rc` counts,
    /// the `RefCell` flag and the queue's head.
    #[test]
    fn what_routing_reads_fits_one_cache_line() {
        let sub = Subscriber::new(SubscriberId(0));
        let block = Rc::as_ptr(&sub) as usize - RC_COUNTS;
        let queue = &*sub.queue.borrow() as *const OutQueue as usize;
        let read = queue - block + OutQueue::HEAD_BYTES;
        assert!(read <= 64, "routing reads the first {read} bytes");
    }

    fn payloads(sub: &Subscriber) -> Vec<String> {
        sub.seal_gaps();
        let mut q = sub.queue.borrow_mut();
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut s = [IoSlice::new(&[]); 1];
            q.fill(&mut s);
            let bytes = s[0].to_vec();
            q.advance(bytes.len());
            let head = if bytes[1] & 0x7f == 126 { 4 } else { 2 };
            out.push(String::from_utf8(bytes[head..].to_vec()).unwrap());
        }
        out
    }

    /// A one-shard bus with `ticker.AAPL` registered, and shard 0's router.
    fn one_topic() -> (Arc<Bus>, ShardRouter, Topic, Arc<TopicState>) {
        let bus = Bus::new(&BusConfig::default());
        let router = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let topic = Topic::new("ticker.AAPL").unwrap();
        let state = bus.topic(&topic).unwrap();
        (bus, router, topic, state)
    }

    #[test]
    fn fans_out_to_every_subscriber_of_a_topic_once() {
        let bus = Bus::new(&BusConfig {
            shards: 2,
            ..Default::default()
        });
        let mut r0 = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let mut r1 = ShardRouter::new(bus.clone(), 1, QueueLimits::default());
        let aapl = Topic::new("ticker.AAPL").unwrap();
        let msft = Topic::new("ticker.MSFT").unwrap();
        let subs: Vec<_> = (0..3).map(|i| Subscriber::new(SubscriberId(i))).collect();
        r0.subscribe(
            &subs[0],
            std::slice::from_ref(&aapl),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        r0.subscribe(
            &subs[1],
            &[aapl.clone(), msft.clone()],
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        r1.subscribe(
            &subs[2],
            std::slice::from_ref(&msft),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();

        let a = bus.topic(&aapl).unwrap();
        let m = bus.topic(&msft).unwrap();
        {
            let mut batch = bus.batch();
            batch.publish(&a, a.next_seq(), TsMicros(1), Frame::text(b"a1"));
            batch.publish(&m, m.next_seq(), TsMicros(1), Frame::text(b"m1"));
        }
        assert_eq!(bus.inbox(0).len(), 2);
        assert_eq!(bus.inbox(1).len(), 1, "shard 1 only gets MSFT");
        assert_eq!(r0.dispatch(100, |_| {}), 2);
        assert_eq!(r1.dispatch(100, |_| {}), 1);
        assert_eq!(payloads(&subs[0]), vec!["a1"]);
        assert_eq!(payloads(&subs[1]), vec!["a1", "m1"]);
        assert_eq!(payloads(&subs[2]), vec!["m1"]);
        assert_eq!(r0.stats().deliveries, 3);
    }

    #[test]
    fn a_taken_subscriber_is_listed_again_only_after_it_is_unlisted() {
        let (bus, mut r, topic, t) = one_topic();
        let sub = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &sub,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        let mut taken: Vec<Rc<Subscriber>> = Vec::new();
        let tick = |r: &mut ShardRouter, body: &'static [u8]| {
            bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(body));
            r.dispatch(100, |_| {});
        };

        tick(&mut r, b"1");
        let mut pass = r.take_dirty(taken);
        assert_eq!(pass.remaining(), 1);
        // Routed while a write pass holds it: rides along in the write the pass is about to make.
        tick(&mut r, b"2");
        assert!(!r.has_dirty(), "not listed twice");
        assert!(Rc::ptr_eq(pass.take_next().unwrap(), &sub));
        assert_eq!(payloads(&sub), vec!["1", "2"]);
        taken = pass.finish();
        // Once written, the next tick lists it again.
        tick(&mut r, b"3");
        let pass = r.take_dirty(taken);
        assert_eq!(pass.remaining(), 1);
    }

    #[test]
    fn a_pass_that_ends_early_unlists_and_wakes_what_it_did_not_write() {
        let (bus, mut r, topic, t) = one_topic();
        let subs: Vec<_> = (0..3).map(|i| Subscriber::new(SubscriberId(i))).collect();
        for s in &subs {
            r.subscribe(
                s,
                std::slice::from_ref(&topic),
                &StreamOptions::default(),
                Instant::now(),
            )
            .unwrap();
        }
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"1"));
        r.dispatch(100, |_| {});
        let mut pass = r.take_dirty(Vec::new());
        assert!(Rc::ptr_eq(pass.peek(1).unwrap(), &subs[1]));
        pass.take_next();
        drop(pass); // e.g. the task was cancelled mid-pass
                    // Every one of them is listed again by the next tick.
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"2"));
        r.dispatch(100, |_| {});
        assert_eq!(r.take_dirty(Vec::new()).remaining(), 3);
    }

    /// 1,000 subscribers of a book fall behind together: each gets a `resync` marker and the
    /// snapshot, and the snapshot is encoded once for all of them (one shared buffer), not once
    /// each. A new subscriber at the same version shares it too.
    #[test]
    fn a_storm_of_slow_book_subscribers_costs_one_snapshot_encoding() {
        use crate::topic::BookUpdate;
        use tickcast_core::market::Decimal;
        let bus = Bus::new(&BusConfig::default());
        let limits = QueueLimits {
            max_frames: 4,
            ..QueueLimits::default()
        };
        let mut r = ShardRouter::new(bus.clone(), 0, limits);
        let topic = Topic::new("book.X").unwrap();
        let t = bus.topic(&topic).unwrap();
        let level = |p: i128, s: i128| (Decimal::new(p, 2), Decimal::new(s, 0));
        let mut scratch = Vec::new();
        let mut publish = |snapshot: bool, bid: (Decimal, Decimal)| {
            let asks = [level(20_000, 1)];
            let update = BookUpdate {
                snapshot,
                bids: &[bid],
                asks: if snapshot { &asks } else { &[] },
            };
            bus.batch()
                .publish_book(&t, update, TsMicros(1), &mut scratch)
                .unwrap();
        };
        publish(true, level(10_000, 1));
        let subs: Vec<_> = (0..1000)
            .map(|i| Subscriber::new(SubscriberId(i)))
            .collect();
        for s in &subs {
            r.subscribe(
                s,
                std::slice::from_ref(&topic),
                &StreamOptions::default(),
                Instant::now(),
            )
            .unwrap();
        }
        assert_eq!(
            t.book_snapshot_encodings(),
            0,
            "the feed's own snapshot, shared"
        );
        for i in 1..=20 {
            publish(false, level(10_000 + i, 1));
            r.dispatch(usize::MAX, |_| {});
        }
        let mut frames = std::collections::HashSet::new();
        for s in &subs {
            let sealed = s.seal_gaps();
            assert_eq!(sealed.resyncs, 1);
            let q = s.queue.borrow();
            let mut out = Vec::new();
            q.gather(&mut out, usize::MAX);
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains(r#""reason":"resync""#), "{text}");
            assert!(text.contains(r#""snapshot":true"#), "{text}");
            drop(q);
            let mut q = s.queue.borrow_mut();
            while let Some(e) = q.pop_front() {
                if let crate::queue::QueueEntry::Data(d) = e {
                    if d.kind == crate::queue::EntryKind::Snapshot {
                        frames.insert(d.frame.as_slice().as_ptr() as usize);
                    }
                }
            }
        }
        assert_eq!(frames.len(), 1, "every subscriber got the same buffer");
        assert_eq!(t.book_snapshot_encodings(), 1, "one for the 1,000 resyncs");
        let late = Subscriber::new(SubscriberId(9999));
        r.subscribe(
            &late,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(
            t.book_snapshot_encodings(),
            1,
            "a new subscriber at that version shares it"
        );
    }

    /// A withdrawn book shows new subscribers nothing; the feed's next snapshot reaches every
    /// subscriber after an `upstream` marker for the seq the withdrawal left unused.
    #[test]
    fn a_withdrawn_book_resumes_with_a_marker_and_the_next_snapshot() {
        use crate::topic::BookUpdate;
        use tickcast_core::market::Decimal;
        let bus = Bus::new(&BusConfig::default());
        let mut r = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let topic = Topic::new("book.X").unwrap();
        let t = bus.topic(&topic).unwrap();
        let (bid, ask) = (
            [(Decimal::new(100, 0), Decimal::new(1, 0))],
            [(Decimal::new(101, 0), Decimal::new(1, 0))],
        );
        let snapshot = BookUpdate {
            snapshot: true,
            bids: &bid,
            asks: &ask,
        };
        let mut scratch = Vec::new();
        bus.batch()
            .publish_book(&t, snapshot, TsMicros(1), &mut scratch)
            .unwrap();
        let early = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &early,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        assert!(t.withdraw_book());
        assert_eq!(bus.untrusted_books(), vec![topic.clone()]);
        let late = Subscriber::new(SubscriberId(1));
        r.subscribe(
            &late,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        assert!(
            payloads(&late).is_empty(),
            "nothing to show while withdrawn"
        );
        let delta = BookUpdate {
            snapshot: false,
            bids: &bid,
            asks: &[],
        };
        assert!(bus
            .batch()
            .publish_book(&t, delta, TsMicros(2), &mut scratch)
            .is_err());
        bus.batch()
            .publish_book(&t, snapshot, TsMicros(3), &mut scratch)
            .unwrap();
        r.dispatch(usize::MAX, |_| {});
        let early = payloads(&early);
        assert_eq!(early.len(), 3, "{early:?}");
        assert!(
            early[1].contains(r#""from":2,"to":3,"reason":"upstream""#),
            "{early:?}"
        );
        assert!(early[2].contains(r#""seq":4"#) && early[2].contains(r#""snapshot":true"#));
        let late = payloads(&late);
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(bus.untrusted_books().is_empty());
    }

    #[test]
    fn snapshot_on_subscribe_and_no_duplicate_after_it() {
        let (bus, mut r, topic, t) = one_topic();
        let early = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &early,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"1"));
        // A late subscriber joins while seq 1 still sits in the inbox.
        let late = Subscriber::new(SubscriberId(1));
        r.subscribe(
            &late,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"2"));
        r.dispatch(100, |_| {});
        assert_eq!(payloads(&early), vec!["1", "2"]);
        assert_eq!(
            payloads(&late),
            vec!["1", "2"],
            "snapshot 1, then live 2, no duplicate 1"
        );
    }

    #[test]
    fn unsubscribe_and_remove_stop_delivery() {
        let (bus, mut r, topic, t) = one_topic();
        let s = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        assert!(t.has_subscribers());
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"1"));
        r.dispatch(100, |_| {});
        r.unsubscribe(&s, std::slice::from_ref(&topic));
        assert!(!t.has_subscribers());
        assert_eq!(payloads(&s), Vec::<String>::new(), "queued tick purged");
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"2"));
        assert_eq!(bus.inbox(0).len(), 0, "no subscriber, no push");
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        r.remove(&s);
        assert_eq!(r.stats().subscriptions, 0);
        assert!(!t.has_subscribers());
    }

    #[test]
    fn subscribers_are_held_to_the_requested_topic_limit_and_feeds_are_not() {
        let bus = Bus::new(&BusConfig {
            max_topics: 1,
            max_requested_topics: 1,
            ..Default::default()
        });
        let mut r = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let s = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &s,
            &[Topic::new("a.b").unwrap()],
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        let err = r
            .subscribe(
                &s,
                &[Topic::new("a.c").unwrap()],
                &StreamOptions::default(),
                Instant::now(),
            )
            .unwrap_err();
        assert!(matches!(
            err,
            BusError::TopicLimit {
                limit: 1,
                origin: TopicOrigin::Subscriber,
                ..
            }
        ));
        // The client's topic does not use the feed's room.
        let fed = bus.topic(&Topic::new("a.feed").unwrap()).unwrap();
        assert!(fed.is_fed());
        // A feed claiming the requested topic moves it to the feeds' count, which is now full.
        let err = bus.topic(&Topic::new("a.b").unwrap()).unwrap_err();
        assert!(matches!(
            err,
            BusError::TopicLimit {
                origin: TopicOrigin::Feed,
                ..
            }
        ));
        assert_eq!(bus.requested_topic_count(), 1);
    }

    #[test]
    fn unused_requested_topics_are_reaped_after_the_grace_and_their_ids_reused() {
        let (bus, mut r, _, fed) = one_topic();
        let grace = Duration::from_secs(10);
        let t0 = Instant::now();
        let s = Subscriber::new(SubscriberId(0));
        let made_up: Vec<Topic> = (0..5)
            .map(|i| Topic::new(&format!("ticker.X{i}")).unwrap())
            .collect();
        r.subscribe(&s, &made_up, &StreamOptions::default(), Instant::now())
            .unwrap();
        assert_eq!((bus.topic_count(), bus.requested_topic_count()), (6, 5));
        assert_eq!(bus.reap_requested(t0, grace), 0, "in use");
        r.remove(&s);
        assert_eq!(bus.reap_requested(t0, grace), 0, "first seen unused");
        assert_eq!(bus.reap_requested(t0 + grace / 2, grace), 0, "within grace");
        assert_eq!(bus.reap_requested(t0 + grace, grace), 5);
        assert_eq!((bus.topic_count(), bus.requested_topic_count()), (1, 0));
        assert_eq!(bus.reaped_topics(), 5);
        // The feed's topic stays whatever happens, with or without ticks and subscribers.
        assert!(bus.get("ticker.AAPL").is_some() && fed.is_fed());
        // New topics take the freed ids, so per-shard tables do not grow with churn.
        let again = bus.resolve(&Topic::new("ticker.Y").unwrap(), TopicOrigin::Subscriber);
        assert!(again.unwrap().id().0 <= 5);
        assert!(bus.topic(&Topic::new("ticker.Z").unwrap()).unwrap().id().0 <= 5);
    }

    #[test]
    fn a_requested_topic_used_again_within_the_grace_stays() {
        let (bus, mut r, _, _) = one_topic();
        let grace = Duration::from_secs(10);
        let t0 = Instant::now();
        let x = Topic::new("ticker.X").unwrap();
        let s = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &s,
            std::slice::from_ref(&x),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        r.remove(&s);
        assert_eq!(bus.reap_requested(t0, grace), 0);
        r.subscribe(
            &s,
            std::slice::from_ref(&x),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(bus.reap_requested(t0 + grace, grace), 0, "in use again");
        r.remove(&s);
        assert_eq!(
            bus.reap_requested(t0 + grace, grace),
            0,
            "idle clock restarted"
        );
        // A feed claims it: never reaped after that.
        bus.topic(&x).unwrap();
        assert_eq!(bus.reap_requested(t0 + grace * 5, grace), 0);
        assert_eq!(bus.requested_topic_count(), 0);
    }

    #[test]
    fn stale_ticks_are_refused() {
        let bus = Bus::new(&BusConfig::default());
        let t = bus.topic(&Topic::new("a.b").unwrap()).unwrap();
        bus.publish(&t, Seq(5), TsMicros(1), Frame::text(b"5"));
        bus.publish(&t, Seq(4), TsMicros(1), Frame::text(b"4"));
        assert_eq!(bus.stale(), 1);
        assert_eq!(t.last().unwrap().seq, Seq(5));
    }

    /// A bus keeping `size` ticks of history per topic, with a fixed epoch.
    fn with_history(size: usize) -> (Arc<Bus>, ShardRouter, Topic, Arc<TopicState>) {
        let bus = Bus::new(&BusConfig {
            history: crate::HistoryConfig {
                default: crate::HistoryLimits {
                    size,
                    ttl: Duration::ZERO,
                },
                channels: Vec::new(),
            },
            epoch: Some(Epoch::new("e1").unwrap()),
            ..Default::default()
        });
        let router = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let topic = Topic::new("ticker.AAPL").unwrap();
        let state = bus.topic(&topic).unwrap();
        (bus, router, topic, state)
    }

    fn publish_n(bus: &Bus, t: &TopicState, n: u64) {
        for _ in 0..n {
            let seq = t.next_seq();
            bus.publish(
                t,
                seq,
                TsMicros(seq.0),
                Frame::text(seq.0.to_string().as_bytes()),
            );
        }
    }

    fn since(topic: &Topic, seq: u64, epoch: &str) -> Vec<Since> {
        vec![Since {
            topic: topic.clone(),
            seq: Seq(seq),
            epoch: Epoch::new(epoch).unwrap(),
        }]
    }

    #[test]
    fn recovery_replays_exactly_the_missed_ticks_then_goes_live() {
        let (bus, mut r, topic, t) = with_history(100);
        publish_n(&bus, &t, 10);
        let s = Subscriber::new(SubscriberId(0));
        let now = Instant::now();
        let rec = r
            .subscribe(
                &s,
                std::slice::from_ref(&topic),
                &StreamOptions {
                    since: &since(&topic, 7, "e1"),
                    heartbeat: None,
                    throttle: None,
                },
                now,
            )
            .unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].outcome, Ok(()));
        // Published after the subscribe but before the shard dispatches, and already in the
        // inbox before it: each arrives once.
        publish_n(&bus, &t, 2);
        r.dispatch(100, |_| {});
        assert_eq!(payloads(&s), ["8", "9", "10", "11", "12"]);
    }

    #[test]
    fn a_reset_tells_subscribers_and_lets_the_new_epoch_start_over() {
        let (bus, mut r, topic, t) = with_history(100);
        publish_n(&bus, &t, 10);
        let s = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        publish_n(&bus, &t, 1);
        let e2 = Epoch::new("e2").unwrap();
        assert!(bus.reset_topic(&t, &e2));
        assert!(!bus.reset_topic(&t, &e2), "already in that epoch");
        assert_eq!((t.epoch(), t.last().map(|l| l.seq)), (e2, None));
        assert_eq!(
            bus.history_entries(),
            0,
            "the old epoch's history is dropped"
        );
        // The new epoch's first tick here is seq 4 (1..3 went by before this node saw it): it
        // starts the stream, with no gap marker for seqs of an unknown past.
        t.skip_seqs(3);
        publish_n(&bus, &t, 2);
        r.dispatch(100, |_| {});
        assert_eq!(
            payloads(&s),
            [
                "10",
                "11",
                r#"{"type":"reset","topic":"ticker.AAPL","epoch":"e2"}"#,
                "4",
                "5"
            ]
        );
        assert_eq!((bus.epoch_resets(), r.stats().resets), (1, 1));
        // A client of the old epoch is told; one of the new recovers.
        let old = r.subscribe(
            &Subscriber::new(SubscriberId(1)),
            std::slice::from_ref(&topic),
            &StreamOptions {
                since: &since(&topic, 11, "e1"),
                ..Default::default()
            },
            Instant::now(),
        );
        assert_eq!(old.unwrap()[0].outcome, Err(NotRecovered::EpochChanged));
        let new = r.subscribe(
            &Subscriber::new(SubscriberId(2)),
            std::slice::from_ref(&topic),
            &StreamOptions {
                since: &since(&topic, 4, "e2"),
                ..Default::default()
            },
            Instant::now(),
        );
        assert_eq!(new.unwrap()[0].outcome, Ok(()));
    }

    #[test]
    fn recovery_that_cannot_be_complete_says_why_and_sends_the_snapshot() {
        let (bus, mut r, topic, t) = with_history(3);
        publish_n(&bus, &t, 10);
        let now = Instant::now();
        let cases = [
            (since(&topic, 2, "e1"), NotRecovered::TooOld),
            (since(&topic, 9, "other"), NotRecovered::EpochChanged),
            (since(&topic, 11, "e1"), NotRecovered::NoHistory),
        ];
        for (i, (from, why)) in cases.into_iter().enumerate() {
            let s = Subscriber::new(SubscriberId(i as u64));
            let rec = r
                .subscribe(
                    &s,
                    std::slice::from_ref(&topic),
                    &StreamOptions {
                        since: &from,
                        heartbeat: None,
                        throttle: None,
                    },
                    now,
                )
                .unwrap();
            assert_eq!(rec[0].outcome, Err(why));
            assert_eq!(payloads(&s), ["10"], "the snapshot, as without since");
        }
        let (bus0, mut r0, topic0, t0) = with_history(0);
        publish_n(&bus0, &t0, 3);
        let s = Subscriber::new(SubscriberId(9));
        let rec = r0
            .subscribe(
                &s,
                std::slice::from_ref(&topic0),
                &StreamOptions {
                    since: &since(&topic0, 1, "e1"),
                    heartbeat: None,
                    throttle: None,
                },
                now,
            )
            .unwrap();
        assert_eq!(rec[0].outcome, Err(NotRecovered::NoHistory));
        drop(bus);
    }

    #[test]
    fn a_seq_the_feed_skipped_is_announced_live_and_in_recovery() {
        let (bus, mut r, topic, t) = with_history(100);
        let live = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &live,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        bus.publish(&t, Seq(1), TsMicros(1), Frame::text(b"1"));
        bus.publish(&t, Seq(5), TsMicros(5), Frame::text(b"5"));
        r.dispatch(100, |_| {});
        let gap = r#"{"type":"gap","topic":"ticker.AAPL","from":2,"to":4,"reason":"upstream"}"#;
        assert_eq!(payloads(&live), ["1", gap, "5"]);
        assert_eq!(bus.upstream_gaps(), 1);
        let late = Subscriber::new(SubscriberId(1));
        r.subscribe(
            &late,
            std::slice::from_ref(&topic),
            &StreamOptions {
                since: &since(&topic, 1, "e1"),
                heartbeat: None,
                throttle: None,
            },
            Instant::now(),
        )
        .unwrap();
        assert_eq!(payloads(&late), [gap, "5"]);
    }

    #[test]
    fn ticks_lost_on_the_way_to_a_shard_are_announced() {
        let bus = Bus::new(&BusConfig {
            inbox_capacity: 2,
            ..Default::default()
        });
        let mut r = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let topic = Topic::new("ticker.AAPL").unwrap();
        let t = bus.topic(&topic).unwrap();
        let s = Subscriber::new(SubscriberId(0));
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        publish_n(&bus, &t, 2);
        r.dispatch(100, |_| {});
        publish_n(&bus, &t, 5); // 3..=7: the inbox takes 3 and 4
        r.dispatch(100, |_| {});
        publish_n(&bus, &t, 1); // 8
        r.dispatch(100, |_| {});
        let gap = r#"{"type":"gap","topic":"ticker.AAPL","from":5,"to":7,"reason":"dropped"}"#;
        assert_eq!(payloads(&s), ["1", "2", "3", "4", gap, "8"]);
        assert_eq!(r.stats().inbox_gaps, 3);
    }

    #[test]
    fn heartbeats_go_to_quiet_topics_only_and_say_whether_the_feed_is_up() {
        let (bus, mut r, topic, t) = with_history(0);
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        publish_n(&bus, &t, 3);
        let s = Subscriber::new(SubscriberId(0));
        let other = Subscriber::new(SubscriberId(1));
        let beating = StreamOptions {
            heartbeat: Some(every),
            ..Default::default()
        };
        for sub in [&s, &other] {
            r.subscribe(sub, std::slice::from_ref(&topic), &beating, t0)
                .unwrap();
        }
        r.dispatch(100, |_| {});
        assert_eq!(payloads(&s), ["3"]);
        payloads(&other);
        assert_eq!(r.heartbeats(t0 + every / 2), Some(t0 + every), "not due");
        publish_n(&bus, &t, 1);
        r.dispatch(100, |_| {});
        assert_eq!(r.heartbeats(t0 + every), Some(t0 + every * 2), "busy: none");
        assert_eq!(payloads(&s), ["4"]);
        payloads(&other);
        r.heartbeats(t0 + every * 2);
        let hb = r#"{"type":"heartbeat","topic":"ticker.AAPL","seq":4,"ts":4,"feed_up":true}"#;
        assert_eq!(payloads(&s), [hb]);
        assert_eq!(payloads(&other), [hb]);
        assert_eq!(r.stats().heartbeats, 1, "encoded once for the group");
        t.set_feed_down();
        r.heartbeats(t0 + every * 3);
        assert_eq!(
            payloads(&s),
            [r#"{"type":"heartbeat","topic":"ticker.AAPL","seq":4,"ts":4,"feed_up":false}"#]
        );
        // Subscribing again with another interval moves `s` to it.
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions {
                since: &[],
                heartbeat: Some(every * 10),
                throttle: None,
            },
            t0,
        )
        .unwrap();
        assert_eq!(r.heartbeats.len(), 2);
        r.remove(&other);
        assert_eq!(r.heartbeats.len(), 1);
        r.unsubscribe(&s, std::slice::from_ref(&topic));
        assert_eq!(r.heartbeats(t0 + every * 4), None, "no group left");
    }

    #[test]
    fn heartbeat_decision() {
        let t0 = Instant::now();
        let due = t0 + Duration::from_secs(1);
        assert_eq!(
            heartbeat_due(due, Seq(3), Seq(3), t0),
            HeartbeatDecision::Wait
        );
        assert_eq!(
            heartbeat_due(due, Seq(3), Seq(4), due),
            HeartbeatDecision::Busy
        );
        assert_eq!(
            heartbeat_due(due, Seq(3), Seq(3), due),
            HeartbeatDecision::Send
        );
    }

    /// Publishes ticks `a0`, `a1`, ... of `state` and dispatches them.
    fn publish_and_route(bus: &Bus, r: &mut ShardRouter, state: &TopicState, n: usize) {
        for i in 0..n {
            bus.publish(
                state,
                state.next_seq(),
                TsMicros(1),
                Frame::text(format!("a{i}").as_bytes()),
            );
        }
        r.dispatch(1000, |_| {});
    }

    #[test]
    fn a_throttle_group_holds_the_latest_tick_and_releases_it_once_for_all_members() {
        let (bus, mut r, topic, state) = one_topic();
        let every = Duration::from_millis(250);
        let opts = StreamOptions {
            throttle: Some(every),
            ..Default::default()
        };
        let subs: Vec<_> = (0..3).map(|i| Subscriber::new(SubscriberId(i))).collect();
        for s in &subs {
            r.subscribe(s, std::slice::from_ref(&topic), &opts, Instant::now())
                .unwrap();
        }
        let live = Subscriber::new(SubscriberId(9));
        r.subscribe(
            &live,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            Instant::now(),
        )
        .unwrap();
        publish_and_route(&bus, &mut r, &state, 10);
        assert_eq!(payloads(&live).len(), 10, "unthrottled: every tick");
        assert!(payloads(&subs[0]).is_empty(), "held until the boundary");
        let due = r.throttle_due().expect("a tick waits");
        assert_eq!(r.release_throttled(due - Duration::from_millis(1)), 0);
        assert_eq!(r.release_throttled(due), 1, "one group");
        for s in &subs {
            assert_eq!(payloads(s), vec!["a9"], "the latest");
        }
        assert_eq!(r.throttle_due(), None, "nothing held");
        let st = r.stats();
        assert_eq!((st.throttle_superseded, st.throttle_releases), (9, 1));
        // Quiet: nothing to release; one more tick waits for the next boundary after it (the
        // clock here is real time, still before `due`).
        publish_and_route(&bus, &mut r, &state, 1);
        let next = r.throttle_due().unwrap();
        assert!(next <= due, "{next:?} {due:?}");
        r.release_throttled(next);
        assert_eq!(payloads(&subs[1]), vec!["a0"]);
    }

    #[test]
    fn resubscribing_with_another_throttle_moves_the_route_without_resending() {
        let (bus, mut r, topic, state) = one_topic();
        let s = Subscriber::new(SubscriberId(0));
        let now = Instant::now();
        r.subscribe(
            &s,
            std::slice::from_ref(&topic),
            &StreamOptions::default(),
            now,
        )
        .unwrap();
        publish_and_route(&bus, &mut r, &state, 2);
        assert_eq!(payloads(&s), vec!["a0", "a1"]);
        let throttled = StreamOptions {
            throttle: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        r.subscribe(&s, std::slice::from_ref(&topic), &throttled, now)
            .unwrap();
        assert!(payloads(&s).is_empty(), "no snapshot again");
        assert_eq!(r.stats().subscriptions, 1);
        publish_and_route(&bus, &mut r, &state, 3);
        assert!(payloads(&s).is_empty());
        r.release_throttled(r.throttle_due().unwrap());
        assert_eq!(payloads(&s), vec!["a2"]);
        r.unsubscribe(&s, std::slice::from_ref(&topic));
        assert_eq!(r.stats().subscriptions, 0);
        assert_eq!(state.shard_mask.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_topic_a_pattern_takes_later_comes_from_its_first_tick_not_from_a_snapshot() {
        let bus = Bus::new(&BusConfig::default());
        let mut r = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let t = |s: &str| Topic::new(s).unwrap();
        let s = Subscriber::new(SubscriberId(0));
        let pattern = TopicPattern::new("trade.*").unwrap();
        let now = Instant::now();
        r.subscribe_pattern(&s, &pattern, &StreamOptions::default(), None, 16, now);
        // A feed starts the topic with a burst: all of it is published before this shard takes the
        // notice. Trades are events: the subscriber must get every one, not the last as a snapshot.
        let new = bus.topic(&t("trade.NEW")).unwrap();
        publish_and_route(&bus, &mut r, &new, 5);
        assert_eq!(payloads(&s), vec!["a0", "a1", "a2", "a3", "a4"]);
        publish_and_route(&bus, &mut r, &new, 1);
        assert_eq!(payloads(&s), vec!["a0"], "then live, nothing twice");
    }

    #[test]
    fn a_pattern_takes_existing_and_later_topics_within_its_filter_and_limit() {
        let bus = Bus::new(&BusConfig::default());
        let mut r = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let t = |s: &str| Topic::new(s).unwrap();
        let aapl = bus.topic(&t("ticker.AAPL")).unwrap();
        publish_and_route(&bus, &mut r, &aapl, 1);
        // Only subscribers asked for this one: not the channel's.
        bus.resolve(&t("ticker.ASKED"), TopicOrigin::Subscriber)
            .unwrap();
        let s = Subscriber::new(SubscriberId(0));
        let pattern = TopicPattern::new("ticker.*").unwrap();
        let allow: TopicFilter = Rc::new(|t: &Topic| !t.as_str().contains("SECRET"));
        let now = Instant::now();
        let out = r.subscribe_pattern(&s, &pattern, &StreamOptions::default(), Some(allow), 3, now);
        assert_eq!(out.matched, vec![t("ticker.AAPL")]);
        assert_eq!(payloads(&s), vec!["a0"], "its snapshot");
        // Later topics: one forbidden, two allowed, the second of which is over the limit of 3
        // topics (AAPL, MSFT, and the explicit one below).
        r.subscribe(&s, &[t("trade.X")], &StreamOptions::default(), now)
            .unwrap();
        for name in ["ticker.SECRET", "ticker.MSFT", "ticker.TSLA"] {
            let state = bus.topic(&t(name)).unwrap();
            publish_and_route(&bus, &mut r, &state, 1);
        }
        let got = payloads(&s);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("too_many_topics"), "{got:?}");
        assert_eq!(got[1], "a0", "MSFT's first tick");
        assert!(s.is_subscribed(&t("ticker.MSFT")));
        assert!(!s.is_subscribed(&t("ticker.SECRET")));
        assert!(!s.is_subscribed(&t("ticker.TSLA")));
        let st = r.stats();
        assert_eq!(
            (
                st.pattern_matches,
                st.pattern_forbidden,
                st.pattern_over_limit
            ),
            (2, 1, 1)
        );
        // Nobody here wants SECRET or TSLA: their ticks stop coming to this shard.
        assert_eq!(
            bus.get("ticker.SECRET")
                .unwrap()
                .shard_mask
                .load(Ordering::SeqCst),
            0
        );
        // Unsubscribing the pattern ends what it brought, not what was named.
        assert!(r.unsubscribe_pattern(&s, &pattern));
        assert_eq!(s.topic_count(), 1);
        assert!(s.is_subscribed(&t("trade.X")));
        assert!(!r.unsubscribe_pattern(&s, &pattern));
        let later = bus.topic(&t("ticker.LATER")).unwrap();
        publish_and_route(&bus, &mut r, &later, 1);
        assert!(payloads(&s).is_empty());
    }
}
