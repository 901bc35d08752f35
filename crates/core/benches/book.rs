//! Book delta at ingest: apply one delta to a 25-level book, take the Kraken checksum of the result and
//! encode the `book` delta message, the work done once per upstream update (never per subscriber).
//! Wall time: on the shared 2-core machine the figures are noisy; compare runs, not absolute numbers.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tickcast_core::market::encode::encode_book_delta;
use tickcast_core::market::{Book, Decimal, Level};
use tickcast_core::{Seq, Topic, TsMicros};

/// Deltas per iteration, cycling through prices so levels are inserted, changed and removed.
const DELTAS: usize = 1_000;

fn deltas() -> Vec<(Vec<Level>, Vec<Level>)> {
    (0..DELTAS)
        .map(|i| {
            let tick = (i * 7 % 40) as i128;
            let size = Decimal::new(((i * 13) % 5) as i128 * 125, 3);
            if i % 2 == 0 {
                (vec![(Decimal::new(640_000 - tick, 1), size)], vec![])
            } else {
                (vec![], vec![(Decimal::new(640_010 + tick, 1), size)])
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let topic = Topic::new("book.BTC-USD").expect("valid topic");
    let mut base = Book::new(25);
    let bids: Vec<Level> = (0..25)
        .map(|i| (Decimal::new(640_000 - i, 1), Decimal::new(1_250, 3)))
        .collect();
    let asks: Vec<Level> = (0..25)
        .map(|i| (Decimal::new(640_010 + i, 1), Decimal::new(500, 3)))
        .collect();
    base.apply_snapshot(&bids, &asks)
        .expect("uncrossed snapshot");
    let deltas = deltas();
    let mut g = c.benchmark_group("book_delta");
    g.throughput(Throughput::Elements(DELTAS as u64));
    g.bench_function("apply_checksum_encode", |b| {
        let mut book = base.clone();
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            for (i, (bd, ad)) in deltas.iter().enumerate() {
                book.apply_delta(bd, ad).expect("deltas never cross");
                out.clear();
                encode_book_delta(
                    &mut out,
                    &topic,
                    Seq(i as u64),
                    TsMicros(0),
                    bd,
                    ad,
                    book.checksum(),
                );
                std::hint::black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
