//! Publish one tick to 10,000 subscribers: the per-subscriber cost of the fan-out path.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::io::IoSlice;
use tickcast_bus::{Bus, BusConfig, QueueLimits, ShardRouter, Subscriber, SubscriberId};
use tickcast_core::frame::TickEncoder;
use tickcast_core::{Price, Seq, Size, Tick, Topic, TsMicros};

const SUBSCRIBERS: usize = 10_000;

fn fanout(c: &mut Criterion) {
    let bus = Bus::new(&BusConfig {
        shards: 1,
        ..Default::default()
    });
    let mut router = ShardRouter::new(bus.clone(), 0);
    let topic = Topic::new("ticker.AAPL").unwrap();
    let state = bus.topic(&topic).unwrap();
    let subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            let s = Subscriber::new(SubscriberId(i as u64), QueueLimits::default());
            router.subscribe(&s, std::slice::from_ref(&topic)).unwrap();
            s
        })
        .collect();
    let mut enc = TickEncoder::new();
    let mut tick = Tick {
        topic: topic.clone(),
        seq: Seq(0),
        ts: TsMicros::now(),
        bid: Price(189.12),
        ask: Price(189.14),
        last: Price(189.13),
        size: Size(200.0),
    };
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.bench_function("publish_1_tick_to_10k_subscribers", |b| {
        b.iter_batched(
            || {
                // Empty the queues outside the measurement, as writers would.
                for s in &subs {
                    let mut q = s.queue.borrow_mut();
                    let mut sl = [IoSlice::new(&[]); 4];
                    let n = q.fill(&mut sl);
                    let len: usize = sl[..n].iter().map(|s| s.len()).sum();
                    q.advance(len);
                }
            },
            |_| {
                tick.seq = state.next_seq();
                let frame = enc.encode(&tick);
                bus.publish(&state, tick.seq, tick.ts, frame);
                router.dispatch(usize::MAX, |_| {})
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
