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
use tickcast_core::{Frame, Seq, Topic, TsMicros};

use crate::bus::{Bus, BusError, TopicOrigin};
use crate::queue::{OutQueue, Pushed, QueueLimits, RoutedTick};
use crate::topic::{TopicId, TopicState};

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
    /// An index the embedding code uses to find its own state for this subscriber (the gateway's
    /// session slot); the bus never interprets it.
    owner: Cell<usize>,
    writer: Cell<Option<Waker>>,
    topics: RefCell<Vec<Arc<TopicState>>>,
    id: SubscriberId,
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
        self.topics.borrow().iter().any(|t| t.topic() == topic)
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
    /// Ticks with seq at or below this were already delivered as the snapshot.
    after: Seq,
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
    /// Subscribers declared slow consumers.
    pub slow_disconnects: u64,
    /// Live subscriptions in this shard.
    pub subscriptions: u64,
}

/// Routing table and fan-out loop of one shard.
pub struct ShardRouter {
    shard: usize,
    bus: Arc<Bus>,
    /// Bounds of every queue of this shard.
    limits: QueueLimits,
    /// Indexed by [`TopicId`]: dense, so lookup is an index, not a hash.
    routes: Vec<Vec<Route>>,
    stats: RouterStats,
    /// Subscribers that got ticks in the current dispatch round.
    dirty: Vec<Rc<Subscriber>>,
}

impl ShardRouter {
    /// The router of shard `shard` of `bus`, queueing under `limits`.
    pub fn new(bus: Arc<Bus>, shard: usize, limits: QueueLimits) -> Self {
        Self {
            shard,
            bus,
            limits,
            routes: Vec::new(),
            stats: RouterStats::default(),
            dirty: Vec::new(),
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

    /// Subscribes `sub` to `topics` (already-subscribed ones are skipped) and queues each topic's
    /// latest tick as a snapshot. Fails without side effects past the first topic that cannot be
    /// created; topics before it stay subscribed.
    pub fn subscribe(&mut self, sub: &Rc<Subscriber>, topics: &[Topic]) -> Result<(), BusError> {
        // Exactly what is asked for: this list lives as long as the connection, and doubling would
        // hold up to twice its size (topics per connection are limited, so growing one request at
        // a time stays cheap).
        sub.topics.borrow_mut().reserve_exact(topics.len());
        for topic in topics {
            if sub.is_subscribed(topic) {
                continue;
            }
            let state = self.bus.resolve(topic, TopicOrigin::Subscriber)?;
            let idx = state.id().0 as usize;
            if self.routes.len() <= idx {
                self.routes.resize_with(idx + 1, Vec::new);
            }
            let list = &mut self.routes[idx];
            if list.is_empty() {
                // Set the bit before reading the last value; see PublishBatch::publish.
                state.shard_mask.fetch_or(1 << self.shard, Ordering::SeqCst);
            }
            let snapshot = state.last();
            let after = snapshot.as_ref().map(|l| l.seq).unwrap_or_default();
            list.push(Route {
                sub: sub.clone(),
                after,
            });
            sub.topics.borrow_mut().push(state.clone());
            self.stats.subscriptions += 1;
            if let Some(last) = snapshot {
                self.deliver(sub, state.id(), last.ts, last.frame);
            }
        }
        Ok(())
    }

    /// Unsubscribes `sub` from `topics` and purges their queued ticks; unknown ones are ignored.
    pub fn unsubscribe(&mut self, sub: &Rc<Subscriber>, topics: &[Topic]) {
        for topic in topics {
            let state = {
                let mut mine = sub.topics.borrow_mut();
                let Some(pos) = mine.iter().position(|t| t.topic() == topic) else {
                    continue;
                };
                mine.swap_remove(pos)
            };
            self.remove_route(sub, &state);
            sub.queue.borrow_mut().purge_topic(state.id());
        }
    }

    /// Removes every subscription of `sub` (on disconnect).
    pub fn remove(&mut self, sub: &Rc<Subscriber>) {
        let topics = std::mem::take(&mut *sub.topics.borrow_mut());
        for state in topics {
            self.remove_route(sub, &state);
        }
    }

    fn remove_route(&mut self, sub: &Rc<Subscriber>, state: &TopicState) {
        let Some(list) = self.routes.get_mut(state.id().0 as usize) else {
            return;
        };
        if let Some(pos) = list.iter().position(|r| Rc::ptr_eq(&r.sub, sub)) {
            list.swap_remove(pos);
            self.stats.subscriptions -= 1;
        }
        if list.is_empty() {
            state
                .shard_mask
                .fetch_and(!(1 << self.shard), Ordering::SeqCst);
            // Give the memory back: a topic may have had thousands of subscribers.
            *list = Vec::new();
        }
    }

    /// Takes up to `budget` ticks from this shard's inbox and fans each out; returns how many it took.
    /// `observe` gets the fan-out time of each tick that had subscribers here.
    pub fn dispatch(&mut self, budget: usize, mut observe: impl FnMut(Duration)) -> usize {
        let bus = self.bus.clone();
        let inbox = bus.inbox(self.shard);
        let mut n = 0;
        while n < budget {
            let Some(item) = inbox.pop() else { break };
            n += 1;
            let Some(routes) = self.routes.get(item.topic.0 as usize) else {
                continue;
            };
            if routes.is_empty() {
                continue;
            }
            let started = Instant::now();
            let tick = RoutedTick::shared(item.topic, item.ts, item.frame);
            for route in routes {
                if item.seq <= route.after {
                    continue; // already sent as the snapshot
                }
                let (pushed, newly_listed) = {
                    let mut queue = route.sub.queue.borrow_mut();
                    let pushed = queue.push_data(&self.limits, tick.clone());
                    (pushed, pushed == Pushed::Queued && queue.list())
                };
                self.stats.deliveries += 1;
                if pushed == Pushed::Queued {
                    // Listed for the caller to flush right after this round (see `take_dirty`),
                    // so a round's frames leave in one tight burst of writes.
                    if newly_listed {
                        self.dirty.push(route.sub.clone());
                    }
                } else if account(&mut self.stats, &route.sub, pushed) {
                    route.sub.wake();
                }
            }
            observe(started.elapsed());
        }
        self.stats.ticks += n as u64;
        n
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

    fn deliver(&mut self, sub: &Rc<Subscriber>, topic: TopicId, ts: TsMicros, frame: Frame) {
        let pushed = sub
            .queue
            .borrow_mut()
            .push_data(&self.limits, RoutedTick::shared(topic, ts, frame));
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
        let mut q = sub.queue.borrow_mut();
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut s = [IoSlice::new(&[]); 1];
            q.fill(&mut s);
            let bytes = s[0].to_vec();
            q.advance(bytes.len());
            out.push(String::from_utf8(bytes[2..].to_vec()).unwrap());
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
        r0.subscribe(&subs[0], std::slice::from_ref(&aapl)).unwrap();
        r0.subscribe(&subs[1], &[aapl.clone(), msft.clone()])
            .unwrap();
        r1.subscribe(&subs[2], std::slice::from_ref(&msft)).unwrap();

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
        r.subscribe(&sub, std::slice::from_ref(&topic)).unwrap();
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
            r.subscribe(s, std::slice::from_ref(&topic)).unwrap();
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

    #[test]
    fn snapshot_on_subscribe_and_no_duplicate_after_it() {
        let (bus, mut r, topic, t) = one_topic();
        let early = Subscriber::new(SubscriberId(0));
        r.subscribe(&early, std::slice::from_ref(&topic)).unwrap();
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"1"));
        // A late subscriber joins while seq 1 still sits in the inbox.
        let late = Subscriber::new(SubscriberId(1));
        r.subscribe(&late, std::slice::from_ref(&topic)).unwrap();
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
        r.subscribe(&s, std::slice::from_ref(&topic)).unwrap();
        assert!(t.has_subscribers());
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"1"));
        r.dispatch(100, |_| {});
        r.unsubscribe(&s, std::slice::from_ref(&topic));
        assert!(!t.has_subscribers());
        assert_eq!(payloads(&s), Vec::<String>::new(), "queued tick purged");
        bus.publish(&t, t.next_seq(), TsMicros(1), Frame::text(b"2"));
        assert_eq!(bus.inbox(0).len(), 0, "no subscriber, no push");
        r.subscribe(&s, std::slice::from_ref(&topic)).unwrap();
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
        r.subscribe(&s, &[Topic::new("a.b").unwrap()]).unwrap();
        let err = r.subscribe(&s, &[Topic::new("a.c").unwrap()]).unwrap_err();
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
        r.subscribe(&s, &made_up).unwrap();
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
        r.subscribe(&s, std::slice::from_ref(&x)).unwrap();
        r.remove(&s);
        assert_eq!(bus.reap_requested(t0, grace), 0);
        r.subscribe(&s, std::slice::from_ref(&x)).unwrap();
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
}
