//! `sse_load`: N Server-Sent Events readers on loopback, for comparing the server's cost per
//! delivered message over SSE with WebSocket's (`loadtest/sse-vs-ws.sh` runs both, alternated).
//!
//! Connection `c` subscribes to K consecutive topics of `ticker.SYM0000..` (`(c*K + j) mod T`, as
//! the load generator's sequential assignment), reads the stream and counts events; it prints the
//! events per second of the last `--seconds` seconds. It checks nothing else: the server's own
//! metrics and `/proc` give the cost.
//!
//! ```text
//! cargo run --release -p tickcast-loadgen --example sse_load -- 127.0.0.1:8080 1000 10 100 10
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn usage() -> ! {
    eprintln!("usage: sse_load HOST:PORT CONNS TOPICS_PER_CONN TOPICS SECONDS [THROTTLE_MS]");
    std::process::exit(2)
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        usage();
    }
    let addr: SocketAddr = a[0].parse().unwrap_or_else(|_| usage());
    let num = |i: usize| -> usize { a[i].parse().unwrap_or_else(|_| usage()) };
    let (conns, k, topics, seconds) = (num(1), num(2), num(3), num(4));
    let throttle = a.get(5).cloned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let events = Arc::new(AtomicU64::new(0));
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for c in 0..conns {
            let list: Vec<String> = (0..k)
                .map(|j| format!("ticker.SYM{:04}", (c * k + j) % topics))
                .collect();
            let mut path = format!("/sse?topics={}", list.join(","));
            if let Some(t) = &throttle {
                path.push_str(&format!("&throttle_ms={t}"));
            }
            let events = events.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return;
                };
                let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                if s.write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 64 * 1024];
                let finder = memchr::memmem::Finder::new(b"\ndata: ");
                // `\ndata: ` may straddle two reads: keep the last bytes of each.
                let mut tail: Vec<u8> = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    tail.extend_from_slice(&buf[..n]);
                    let found = finder.find_iter(&tail).count() as u64;
                    events.fetch_add(found, Ordering::Relaxed);
                    let keep = tail.len().saturating_sub(6);
                    tail.drain(..keep);
                }
            }));
        }
        // Let the ramp settle, then measure.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (t0, e0) = (Instant::now(), events.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
        let (dt, de) = (t0.elapsed(), events.load(Ordering::Relaxed) - e0);
        println!(
            "{{\"conns\":{conns},\"events\":{de},\"seconds\":{:.3},\"events_per_s\":{:.0}}}",
            dt.as_secs_f64(),
            de as f64 / dt.as_secs_f64()
        );
        for t in tasks {
            t.abort();
        }
    });
}
