//! Memory given back by the real binary (mimalloc with the settings of `src/allocator.rs`) after
//! 2,000 subscribed clients disconnect at once. The in-process tests cannot show this: they run on
//! the test harness's allocator.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use support::*;
use tokio::io::AsyncWriteExt;

const CLIENTS: usize = 5000;
/// Mass disconnects in a row.
const STORMS: usize = 3;

async fn connect_subscribed(addr: SocketAddr, n: usize) -> Vec<RawClient> {
    let sub = masked_text(
        br#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT","ticker.NVDA","ticker.TSLA"]}"#,
    );
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n / 200 {
        let batch: Vec<_> = (0..200)
            .map(|_| {
                let sub = &sub;
                async move {
                    let mut raw = RawClient::connect_addr(addr, None).await;
                    raw.stream.write_all(sub).await.expect("subscribe");
                    raw
                }
            })
            .collect();
        clients.extend(futures_util::future::join_all(batch).await);
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_after_a_mass_disconnect() {
    raise_fd_limit();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Reaped(Some(
        tickcast_command(addr)
            .args(["--symbols", "AAPL,MSFT,NVDA,TSLA", "--rate", "400"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tickcast"),
    ));
    let pid = server.child().id();
    wait_for_listener(addr).await;

    // Warm up with one round (thread stacks, pools, the topics' queues), then take the baseline.
    drop(connect_subscribed(addr, 200).await);
    wait_for_open(addr, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(&pid.to_string());

    // Three storms: how much of a storm's memory the allocator can hand back depends on which pages
    // the objects that stay live happen to pin (not pinned down; it changes with when subscribers
    // are freed relative to a write pass's allocations), so about one storm in eight keeps more than
    // half of it for a while, and with two storms about one run in ten failed here. What must hold:
    // one of three storms gives back at least half, and the last does not end above the highest
    // peak (memory is reused, not accumulated). A storm's peak varies with how many ticks were
    // queued when it was read, so the storms are compared with the highest peak, not with each
    // other's. 5,000 clients (~20 MiB a storm) rather than 2,000 (5-8 MiB): with 2,000 the 1-3 MiB
    // that stays pinned was near half of a storm, and a clean-clone CI run failed all three storms
    // (2026-12-05); with 5,000, 2 of 12 storms here kept more than half, no run failed.
    let mut rounds = Vec::new();
    for round in 1..=STORMS {
        let clients = connect_subscribed(addr, CLIENTS).await;
        wait_for_open(addr, CLIENTS).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // ticks flowing to all of them
        let peak = rss_kib(&pid.to_string());
        drop(clients);
        wait_for_open(addr, 0).await;

        // Bounded wait for the allocator to hand pages back (its purge runs on a short delay).
        let returned = |now: u64| now.saturating_sub(base) <= peak.saturating_sub(base) / 2;
        let mut after = 0;
        poll_until(WAIT, || {
            after = rss_kib(&pid.to_string());
            returned(after)
        })
        .await;
        eprintln!(
            "round {round}: RSS baseline {base} KiB, {CLIENTS} clients {peak} KiB, after they left {after} KiB"
        );
        assert!(
            peak > base,
            "the connections must have cost memory ({base} -> {peak} KiB)"
        );
        rounds.push((peak, after, returned(after)));
    }
    assert!(
        rounds.iter().any(|r| r.2),
        "RSS kept more than half of what {CLIENTS} clients took in every storm: {rounds:?} \
         (peak, after) KiB from a baseline of {base} KiB"
    );
    let highest_peak = rounds.iter().map(|r| r.0).max().unwrap_or(base);
    let last_after = rounds.last().map_or(base, |r| r.1);
    assert!(
        last_after <= highest_peak,
        "memory grew from storm to storm: {rounds:?} (peak, after) KiB"
    );

    // And the server still serves.
    let mut fresh = connect_subscribed(addr, 200).await;
    let frame = fresh[0].read_frame().await.expect("a frame");
    assert_eq!(frame.0 & 0x0f, 0x1, "a text frame (ack or tick)");
    drop(fresh);
}
