//! NDJSON tick parsing, simd-json vs serde_json, all ending in the same validated `TickLine`:
//! - `simd_json_tape`: what the feeds run ([`TickParser`]: in place, reused buffers and tape, no
//!   allocation per line),
//! - `simd_json_serde`: simd-json through serde derive (allocates a tape per line),
//! - `serde_json`: borrowed serde_json deserialization into the same shape.
//!
//! Throughput is reported in ticks (elements) per second of the benchmark thread's own CPU time
//! (`/proc/thread-self/schedstat`, in ns), i.e. per core: on a shared, busy machine wall time would
//! mostly measure the other processes. Set `TICKCAST_BENCH_WALL=1` to measure wall time instead.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use tickcast_ingest::parse::{parse_line_serde, parse_line_serde_json, TickLine, TickParser};

/// Lines per iteration: enough that per-iteration overhead vanishes.
const LINES: usize = 10_000;

/// Realistic lines: the load generator's shape with varied topics, prices and sizes, some with the
/// optional ts and seq.
fn corpus() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        let cents = 10_000 + (i * 37 % 50_000);
        let line = if i % 4 == 0 {
            format!(
                "{{\"topic\":\"ticker.SYM{:04}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"last\":{}.{:02},\"size\":{},\"ts\":{},\"seq\":{}}}\n",
                i % 500, cents / 100, cents % 100, (cents + 2) / 100, (cents + 2) % 100,
                (cents + 1) / 100, (cents + 1) % 100, 100 * (1 + i % 20), 1_763_700_000_000_000u64 + i as u64, i + 1
            )
        } else {
            format!(
                "{{\"topic\":\"ticker.SYM{:04}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"last\":{}.{:02},\"size\":{}}}\n",
                i % 500, cents / 100, cents % 100, (cents + 2) / 100, (cents + 2) % 100,
                (cents + 1) / 100, (cents + 1) % 100, 100 * (1 + i % 20)
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn checksum(t: &TickLine<'_>) -> f64 {
    t.quote.bid.0 + t.topic.len() as f64
}

fn parse<M: Measurement>(c: &mut Criterion<M>) {
    let data = corpus();
    let mut g = c.benchmark_group("ndjson_tick_parse");
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("simd_json_tape", |b| {
        let mut parser = TickParser::new(256);
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let mut sum = 0.0;
                for line in buf.split_mut(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    sum += checksum(&parser.parse(line).expect("valid line"));
                }
                sum
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("simd_json_serde", |b| {
        let mut buffers = simd_json::Buffers::new(256);
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let mut sum = 0.0;
                for line in buf.split_mut(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    sum += checksum(&parse_line_serde(line, &mut buffers).expect("valid line"));
                }
                sum
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("serde_json", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                sum += checksum(&parse_line_serde_json(line).expect("valid line"));
            }
            sum
        })
    });
    g.finish();
}

/// CPU time consumed by the calling thread, from the scheduler's own accounting.
struct ThreadCpuTime;

static WALL: WallTime = WallTime;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat is readable (Linux)")
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn benches() {
    if std::env::var_os("TICKCAST_BENCH_WALL").is_some() {
        let mut c = Criterion::default().configure_from_args();
        parse(&mut c);
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        parse(&mut c);
    }
}

criterion_main!(benches);
