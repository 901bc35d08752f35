//! Publish one tick to 10,000 subscribers: the per-subscriber cost of the fan-out path (encode once,
//! publish, route into every queue, list the subscribers to flush), and the allocations it makes.
//!
//! Run: `cargo bench -p tickcast-bus --bench fanout`. Besides criterion's time, it prints the heap
//! allocations of one publish, counted by a wrapping global allocator. Two cases: subscribers in the
//! core's caches, and pushed out of them first (what the kernel's network path does between ticks).
//! Then the same 10,000 subscribers throttled at one rate: a publish holds the tick once for all of
//! them (its cost does not grow with subscribers), and the release at the interval's boundary fans
//! it out as a live tick would.
//!
//! Then books (issue 20): one book delta (applied to the book, checksummed, encoded once) to the
//! same 10,000 subscribers, next to the tick above; the delta alone with no subscriber (the ingest
//! cost per delta on one core); and a storm of 1,000 subscribers that fell behind on one book,
//! resynced with one shared snapshot (it prints how many snapshots were encoded).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tickcast_bus::{
    BookUpdate, Bus, BusConfig, Dirty, QueueLimits, ShardRouter, StreamOptions, Subscriber,
    SubscriberId, TopicState,
};
use tickcast_core::frame::TickEncoder;
use tickcast_core::market::{Decimal, Level};
use tickcast_core::{Price, Seq, Size, Tick, Topic, TsMicros};

const SUBSCRIBERS: usize = 10_000;

/// Counts allocations so the bench can report allocations per publish.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Fixture {
    bus: std::sync::Arc<Bus>,
    router: ShardRouter,
    state: std::sync::Arc<tickcast_bus::TopicState>,
    subs: Vec<std::rc::Rc<Subscriber>>,
    enc: TickEncoder,
    tick: Tick,
    /// The other allocations that sit between subscribers.
    _others: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Self {
        Self::with(StreamOptions::default())
    }

    /// The fixture with every subscriber subscribed with `opts`.
    fn with(opts: StreamOptions<'_>) -> Self {
        let bus = Bus::new(&BusConfig {
            shards: 1,
            ..Default::default()
        });
        let mut router = ShardRouter::new(bus.clone(), 0, QueueLimits::default());
        let topic = Topic::new("ticker.AAPL").expect("valid topic");
        let state = bus.topic(&topic).expect("topic");
        // As in a server that has run a while, subscribers are neither next to each other in
        // memory (a connection's other state is allocated between them) nor routed in the order
        // they were allocated (clients come and go), so the CPU's stride prefetcher cannot guess
        // the next one: every step is the cache miss it is in production.
        let mut others = Vec::with_capacity(SUBSCRIBERS);
        let subs: Vec<_> = (0..SUBSCRIBERS)
            .map(|i| {
                others.push(vec![0u8; 1024]);
                Subscriber::new(SubscriberId(i as u64))
            })
            .collect();
        // A fixed permutation (7919 is prime, so coprime with the count).
        for i in 0..SUBSCRIBERS {
            let s = &subs[i * 7919 % SUBSCRIBERS];
            router
                .subscribe(
                    s,
                    std::slice::from_ref(&topic),
                    &opts,
                    std::time::Instant::now(),
                )
                .expect("subscribe");
        }
        let tick = Tick {
            topic,
            seq: Seq(0),
            ts: TsMicros::now(),
            bid: Price(189.12),
            ask: Price(189.14),
            last: Price(189.13),
            size: Size(200.0),
        };
        Fixture {
            bus,
            router,
            state,
            subs,
            enc: TickEncoder::new(),
            tick,
            _others: others,
        }
    }

    /// Empties every queue, as the writers would.
    fn drain(&self) {
        drain(&self.subs)
    }

    /// The measured path: encode once, publish, fan out, take the subscribers to flush. `buffer`
    /// becomes the router's list for the next round, as the server's write pass hands its buffer
    /// back. The returned pass is dropped outside the timed part (criterion drops outputs after
    /// timing): the server unlists and drops each handle in its write pass, not while routing.
    fn publish(&mut self, buffer: Vec<std::rc::Rc<Subscriber>>) -> Dirty {
        self.tick.seq = self.state.next_seq();
        let frame = self.enc.encode(&self.tick);
        self.bus
            .publish(&self.state, self.tick.seq, self.tick.ts, frame);
        self.router.dispatch(usize::MAX, |_| {});
        self.router.take_dirty(buffer)
    }
}

/// A list with room for every subscriber, so routing never grows it.
fn buffer() -> Vec<std::rc::Rc<Subscriber>> {
    Vec::with_capacity(SUBSCRIBERS)
}

/// Several times a core's private caches (L1 + L2, about 1 MiB on the machines here), far less than
/// the shared L3: roughly what the kernel's network path runs through between two ticks of a topic.
const EVICT_BYTES: usize = 4 << 20;

/// Pushes the subscribers out of the core's private caches, as the kernel's network path does
/// between two ticks in a real server, so the publish starts as cold as it does there.
fn evict_caches(buf: &mut [u8]) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    std::hint::black_box(buf);
}

/// Empties every queue, as the writers would (gathering into a cork and advancing past it).
fn drain(subs: &[std::rc::Rc<Subscriber>]) {
    let mut cork = Vec::with_capacity(64 * 1024);
    for s in subs {
        let mut q = s.queue.borrow_mut();
        while !q.is_empty() {
            cork.clear();
            q.gather(&mut cork, 64 * 1024);
            q.advance(cork.len());
        }
    }
}

fn fanout(c: &mut Criterion) {
    let mut f = Fixture::new();
    // Warm up so queues have grown, then count the allocations of one publish.
    let mut spare = buffer();
    for _ in 0..3 {
        spare = f.publish(spare).finish();
        f.drain();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let pass = f.publish(spare);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(pass);
    f.drain();
    println!("allocations per publish to {SUBSCRIBERS} subscribers: {allocations}");

    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // Warm: the subscribers are in the core's caches, as when ticks come faster than the kernel's
    // work between them can evict them.
    g.bench_function("publish_1_tick_to_10k_subscribers", |b| {
        let subs = f.subs.clone();
        b.iter_batched(
            || {
                drain(&subs);
                buffer()
            },
            |spare| f.publish(spare),
            BatchSize::PerIteration,
        )
    });
    // Cold: the core's private caches were overwritten since the last tick.
    g.bench_function("publish_1_tick_to_10k_cold_subscribers", |b| {
        let subs = f.subs.clone();
        let mut evict = vec![0u8; EVICT_BYTES];
        b.iter_batched(
            || {
                drain(&subs);
                evict_caches(&mut evict);
                buffer()
            },
            |spare| f.publish(spare),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn throttled(c: &mut Criterion) {
    let mut f = Fixture::with(StreamOptions {
        throttle: Some(std::time::Duration::from_millis(250)),
        ..Default::default()
    });
    let later = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut g = c.benchmark_group("throttled");
    // Holding the tick: one replacement for the group, whatever its size.
    g.bench_function("publish_1_tick_to_10k_throttled_subscribers", |b| {
        b.iter_batched(buffer, |spare| f.publish(spare), BatchSize::PerIteration)
    });
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // Releasing it at the boundary: per subscriber, what a live tick costs.
    let f = std::cell::RefCell::new(f);
    g.bench_function("release_1_tick_to_10k_throttled_subscribers", |b| {
        let subs = f.borrow().subs.clone();
        b.iter_batched(
            || {
                drain(&subs);
                f.borrow_mut().publish(buffer()).finish()
            },
            |spare| {
                let mut f = f.borrow_mut();
                f.router.release_throttled(later);
                f.router.take_dirty(spare)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A book of 20 levels a side around 100.00, as the synthetic feed makes.
fn book_levels() -> (Vec<Level>, Vec<Level>) {
    let lv = |cents: i128, lots: i128| (Decimal::new(cents, 2), Decimal::new(lots * 100, 0));
    let bids = (0..20).map(|i| lv(9_999 - i, 1 + i % 7)).collect();
    let asks = (0..20).map(|i| lv(10_000 + i, 1 + i % 5)).collect();
    (bids, asks)
}

/// A router of `subs` subscribers of `book.AAPL` under `limits`, after the book's snapshot.
fn book_fixture(
    subs: usize,
    limits: QueueLimits,
) -> (
    std::sync::Arc<Bus>,
    ShardRouter,
    std::sync::Arc<TopicState>,
    Vec<std::rc::Rc<Subscriber>>,
) {
    let bus = Bus::new(&BusConfig::default());
    let mut router = ShardRouter::new(bus.clone(), 0, limits);
    let topic = Topic::new("book.AAPL").expect("valid topic");
    let state = bus.topic(&topic).expect("topic");
    let (bids, asks) = book_levels();
    let snapshot = BookUpdate {
        snapshot: true,
        bids: &bids,
        asks: &asks,
    };
    bus.batch()
        .publish_book(&state, snapshot, TsMicros(1), &mut Vec::new())
        .expect("valid book");
    // Spread in memory like the tick fixture's (other allocations between subscribers), so the
    // two fan-outs compare like for like.
    let mut others = Vec::with_capacity(subs);
    let subs: Vec<_> = (0..subs)
        .map(|i| {
            others.push(vec![0u8; 1024]);
            Subscriber::new(SubscriberId(i as u64))
        })
        .collect();
    std::mem::forget(others); // kept for the bench's life, as the tick fixture keeps its own
    for i in 0..subs.len() {
        let s = &subs[i * 7919 % subs.len()];
        router
            .subscribe(
                s,
                std::slice::from_ref(&topic),
                &StreamOptions::default(),
                std::time::Instant::now(),
            )
            .expect("subscribe");
    }
    (bus, router, state, subs)
}

/// The `n`th delta: one bid level resized (never crossing).
fn delta(n: u64) -> [Level; 1] {
    [(
        Decimal::new(9_990, 2),
        Decimal::new(i128::from(n % 50 + 1) * 100, 0),
    )]
}

/// Publishes the `n`th delta (one bid level resized) to `state`'s book.
fn publish_delta(
    bus: &Bus,
    state: &TopicState,
    n: u64,
    scratch: &mut Vec<u8>,
) -> tickcast_core::Seq {
    let bids = delta(n);
    let update = BookUpdate {
        snapshot: false,
        bids: &bids,
        asks: &[],
    };
    bus.batch()
        .publish_book(state, update, TsMicros(1), scratch)
        .expect("valid delta")
}

fn books(c: &mut Criterion) {
    let mut g = c.benchmark_group("books");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let (bus, mut router, state, subs) = book_fixture(SUBSCRIBERS, QueueLimits::default());
    let mut scratch = Vec::new();
    let mut n = 0u64;
    g.bench_function("publish_1_book_delta_to_10k_subscribers", |b| {
        b.iter_batched(
            || {
                drain(&subs);
                buffer()
            },
            |spare| {
                n += 1;
                publish_delta(&bus, &state, n, &mut scratch);
                router.dispatch(usize::MAX, |_| {});
                router.take_dirty(spare)
            },
            BatchSize::PerIteration,
        )
    });
    drop((router, subs));

    g.throughput(Throughput::Elements(1));
    let (bus, _router, state, _subs) = book_fixture(0, QueueLimits::default());
    g.bench_function("ingest_1_book_delta_no_subscribers", |b| {
        b.iter(|| {
            n += 1;
            publish_delta(&bus, &state, n, &mut scratch)
        })
    });

    // 1,000 subscribers whose queues hold 4 frames, 20 deltas behind: each holds a resync
    // placeholder; the measured part turns them into marker + shared snapshot, as the writers do.
    const SLOW: usize = 1000;
    g.throughput(Throughput::Elements(SLOW as u64));
    let limits = QueueLimits {
        max_frames: 4,
        ..QueueLimits::default()
    };
    let (bus, mut router, state, subs) = book_fixture(SLOW, limits);
    let before = state.book_snapshot_encodings();
    let mut storms = 0u64;
    g.bench_function("resync_storm_1000_slow_book_subscribers", |b| {
        b.iter_batched(
            || {
                drain(&subs);
                for _ in 0..20 {
                    n += 1;
                    publish_delta(&bus, &state, n, &mut scratch);
                    router.dispatch(usize::MAX, |_| {});
                }
                drop(router.take_dirty(buffer()));
                storms += 1;
            },
            |()| {
                for s in &subs {
                    std::hint::black_box(s.seal_gaps());
                }
            },
            BatchSize::PerIteration,
        )
    });
    println!(
        "resync storms of {SLOW} subscribers: {storms}, snapshots encoded: {}",
        state.book_snapshot_encodings() - before
    );
    g.finish();
}

criterion_group!(benches, fanout, throttled, books);
criterion_main!(benches);
