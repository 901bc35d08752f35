//! Publish mode: drives tickcast's TCP/NDJSON feed input at an exact open-loop rate.
//!
//! Open loop means the schedule does not wait for the server: every millisecond each connection
//! computes how many ticks are due since it started (`elapsed * rate`) and writes all of them in
//! one buffer. If the server reads slowly, writes block and the connection falls behind; the
//! report then shows achieved < target and how far behind it got, rather than quietly
//! measuring a lower rate.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::control::{Control, Phase, MAX_RUN};
use crate::ws;

/// Send-loop period: tokio's timer resolution, and short enough that ticks go out evenly.
const PERIOD: Duration = Duration::from_millis(1);

/// Most ticks one connection writes per period when behind, so one write stays a bounded
/// buffer (~256 KiB at ~80 B a line); the rest goes out in the following periods.
const MAX_BATCH: u64 = 3_200;

/// Limit for connecting one publisher.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the publishers do.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// The feed input (loopback).
    pub addr: SocketAddr,
    /// Ticks per second over all connections.
    pub rate: f64,
    /// Topics published, round-robin.
    pub topics: Vec<String>,
    /// TCP connections; each sends `rate / conns`.
    pub conns: usize,
    /// Source address (None: kernel's choice).
    pub src: Option<IpAddr>,
}

/// Live publisher counters, read by the orchestrator at any time.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Ticks written.
    pub sent: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Connections open.
    pub connected: AtomicU64,
    /// Connect or write failures.
    pub errors: AtomicU64,
    /// Largest backlog seen on one connection, in microseconds of schedule.
    pub max_behind_us: AtomicU64,
    /// First error message, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl PublishStats {
    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.first_error.lock() {
            e.get_or_insert(msg);
        }
    }
}

/// Starts the publisher thread; it runs until the phase reaches [`Phase::Stop`].
pub fn spawn(
    plan: PublishPlan,
    control: Arc<Control>,
) -> std::io::Result<(std::thread::JoinHandle<()>, Arc<PublishStats>)> {
    let stats = Arc::new(PublishStats::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let st = stats.clone();
    let h = std::thread::Builder::new()
        .name("publish".into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let plan = Arc::new(plan);
                for c in 0..plan.conns {
                    tokio::task::spawn_local(publisher(
                        plan.clone(),
                        c,
                        st.clone(),
                        control.clone(),
                    ));
                }
                control.wait_for(Phase::Stop, MAX_RUN).await;
            });
        })?;
    Ok((h, stats))
}

async fn publisher(
    plan: Arc<PublishPlan>,
    c: usize,
    stats: Arc<PublishStats>,
    control: Arc<Control>,
) {
    let mut sock = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        ws::tcp_connect(
            plan.addr,
            ws::SocketOpts {
                src: plan.src,
                recv_buffer: None,
            },
        ),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return stats.error(format!("publisher {c}: {e}")),
        Err(_) => return stats.error(format!("publisher {c}: connect timed out")),
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let rate = plan.rate / plan.conns as f64;
    let start = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Bounded: ends at Stop (the thread also drops this task then).
    while control.phase() < Phase::Stop {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let backlog = due.saturating_sub(sent);
        if backlog == 0 {
            continue;
        }
        let behind_us = (backlog as f64 / rate * 1e6) as u64;
        stats.max_behind_us.fetch_max(behind_us, Ordering::Relaxed);
        let n = backlog.min(MAX_BATCH);
        buf.clear();
        for i in sent..sent + n {
            // Global round-robin: connection c's i-th tick is tick i*conns + c of the run.
            let g = i as usize * plan.conns + c;
            write_line(&mut buf, &plan.topics[g % plan.topics.len()], g);
        }
        if let Err(e) = sock.write_all(&buf).await {
            stats.connected.fetch_sub(1, Ordering::Relaxed);
            return stats.error(format!("publisher {c}: write: {e}"));
        }
        sent += n;
        stats.sent.fetch_add(n, Ordering::Relaxed);
        stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    }
}

/// Appends one NDJSON tick: `{"topic":"..","bid":..,"ask":..,"last":..,"size":..}\n`.
///
/// Prices move deterministically with `g` so consecutive ticks differ; the server stamps seq
/// and ts itself.
fn write_line(buf: &mut Vec<u8>, topic: &str, g: usize) {
    let bid = 10_000 + (g % 500) as u64; // cents
    buf.extend_from_slice(b"{\"topic\":\"");
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(b"\",\"bid\":");
    push_cents(buf, bid);
    buf.extend_from_slice(b",\"ask\":");
    push_cents(buf, bid + 2);
    buf.extend_from_slice(b",\"last\":");
    push_cents(buf, bid + 1);
    buf.extend_from_slice(b",\"size\":");
    buf.extend_from_slice(itoa::Buffer::new().format(1 + g % 100).as_bytes());
    buf.extend_from_slice(b"}\n");
}

/// Writes `cents` as a decimal with two fractional digits (`10001` → `100.01`).
fn push_cents(buf: &mut Vec<u8>, cents: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(cents / 100).as_bytes());
    let f = (cents % 100) as u8;
    buf.extend_from_slice(&[b'.', b'0' + f / 10, b'0' + f % 10]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn lines_are_valid_json() {
        let mut b = Vec::new();
        write_line(&mut b, "ticker.SYM0001", 7);
        write_line(&mut b, "ticker.X", 599);
        let text = std::str::from_utf8(&b).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["topic"], "ticker.SYM0001");
        assert_eq!(v["bid"], 100.07);
        assert_eq!(v["ask"], 100.09);
        assert_eq!(v["last"], 100.08);
        assert_eq!(v["size"], 8);
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["bid"], 100.99);
        assert_eq!(v["ask"], 101.01);
    }

    /// Publishes at 4,000 ticks/s over 2 connections for ~1 s into a local TCP sink that counts
    /// NDJSON lines and checks each is a tick.
    #[test]
    fn publishes_at_the_requested_rate() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let (r2, b2) = (received.clone(), bad.clone());
        rt.spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                let (r, b) = (r2.clone(), b2.clone());
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(s).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        match serde_json::from_str::<serde_json::Value>(&l) {
                            Ok(v) if v["topic"].is_string() && v["bid"].is_number() => {
                                r.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                b.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        let control = Arc::new(Control::new());
        let plan = PublishPlan {
            addr,
            rate: 4_000.0,
            topics: (0..10).map(|i| format!("ticker.SYM{i:04}")).collect(),
            conns: 2,
            src: None,
        };
        let (h, stats) = spawn(plan, control.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(1_000));
        control.set(Phase::Stop);
        h.join().unwrap();
        let sent = stats.sent.load(Ordering::Relaxed);
        assert!(
            (3_600..=4_400).contains(&sent),
            "sent {sent} in ~1 s at 4000/s"
        );
        // Let the sink read what is in flight.
        for _ in 0..100 {
            if received.load(Ordering::Relaxed) >= sent {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(received.load(Ordering::Relaxed), sent);
        assert_eq!(bad.load(Ordering::Relaxed), 0);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    }
}
