//! What verifying a book costs the load generator per message, without sockets: pre-encoded
//! tickcast-shaped `book` messages (a snapshot of 25 levels a side, then deltas of 1-4 changed
//! levels around the touch, like the synthetic feed), timed through the scanner alone (what a
//! ticker run pays) and through scanner + book parse + apply + checksum (what a book run pays).
//!
//! ```sh
//! cargo run --release -p tickcast-loadgen --example bookverify -- 200000
//! ```

use std::hint::black_box;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tickcast_loadgen::book::{self, BookMsg, LocalBook};
use tickcast_loadgen::message::scan;

const DEPTH: i64 = 25;

fn level(cents: i64, size: i64) -> String {
    format!(r#"["{}.{:02}","{size}"]"#, cents / 100, cents % 100)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut truth = LocalBook::default();
    let mut scratch = BookMsg::default();
    let mut msgs: Vec<Vec<u8>> = Vec::with_capacity(n + 1);
    let mid = 18_913i64;
    let mut encode = |seq: usize,
                      snapshot: bool,
                      bids: &[String],
                      asks: &[String],
                      truth: &mut LocalBook| {
        let depth = if snapshot {
            format!(r#""depth":{DEPTH},"#)
        } else {
            String::new()
        };
        let body = format!(
            r#"{depth}"bids":[{}],"asks":[{}]"#,
            bids.join(","),
            asks.join(",")
        );
        book::parse(
            format!(r#"{{"snapshot":{snapshot},{body},"checksum":0}}"#).as_bytes(),
            &mut scratch,
        )
        .expect("valid");
        if snapshot {
            truth.apply_snapshot(&scratch);
        } else {
            truth.apply_delta(&scratch);
        }
        format!(
            r#"{{"type":"book","topic":"book.SYM0001","seq":{seq},"ts":1763700000000000,"snapshot":{snapshot},{body},"checksum":{}}}"#,
            truth.checksum()
        )
        .into_bytes()
    };
    let bids: Vec<String> = (1..=DEPTH).map(|i| level(mid - i, 100 * i)).collect();
    let asks: Vec<String> = (1..=DEPTH).map(|i| level(mid + i, 100 * i)).collect();
    msgs.push(encode(1, true, &bids, &asks, &mut truth));
    for seq in 2..=n + 1 {
        let k = rng.random_range(1..=4);
        let (mut b, mut a) = (Vec::new(), Vec::new());
        for _ in 0..k {
            // Sizes change at the 10 best levels; now and then one is removed and another added.
            let i = rng.random_range(1..=10);
            let size = if rng.random_range(0..8) == 0 {
                0
            } else {
                rng.random_range(1..50) * 100
            };
            if rng.random_bool(0.5) {
                b.push(level(mid - i, size));
            } else {
                a.push(level(mid + i, size));
            }
        }
        msgs.push(encode(seq, false, &b, &a, &mut truth));
    }
    let bytes: usize = msgs.iter().map(Vec::len).sum();

    let t = Instant::now();
    let mut s = 0u64;
    for m in &msgs {
        s = s.wrapping_add(black_box(scan(m)).seq.unwrap_or(0));
    }
    let scan_ns = t.elapsed().as_nanos() as f64 / msgs.len() as f64;
    black_box(s);

    let mut ours = LocalBook::default();
    let mut msg = BookMsg::default();
    let mut verified = 0usize;
    let t = Instant::now();
    for m in &msgs {
        let sm = scan(m);
        black_box(sm.seq);
        book::parse(m, &mut msg).expect("parses");
        if msg.snapshot {
            ours.apply_snapshot(&msg);
        } else {
            ours.apply_delta(&msg);
        }
        if msg.checksum == Some(u64::from(ours.checksum())) {
            verified += 1;
        }
    }
    let verify_ns = t.elapsed().as_nanos() as f64 / msgs.len() as f64;
    assert_eq!(verified, msgs.len(), "every checksum verifies");
    println!(
        "{} book messages ({:.0} B on average): scan only {scan_ns:.0} ns/msg, scan + parse + apply + checksum {verify_ns:.0} ns/msg ({:.0} ns of verification); {verified} verified",
        msgs.len(),
        bytes as f64 / msgs.len() as f64,
        verify_ns - scan_ns
    );
}
