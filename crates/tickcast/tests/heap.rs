//! Heap bytes a subscribed connection costs the server, counted exactly by a counting allocator
//! (not RSS, which depends on the allocator and the machine): the memory per connection is what
//! limits connections per node, and a field added to a per-connection struct shows up here.
//!
//! The clients are blocking std sockets on a thread whose allocations are not counted, so the
//! figure is the server's alone: the live bytes added by 1,000 more subscribed connections once the
//! server has warmed up with 200, divided by 1,000. Ticks flow the whole time, so lazily grown
//! queues are included. The histogram of what they allocated is printed for whoever has to shrink it
//! (`cargo test -p tickcast --test heap -- --nocapture`).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Duration;

use support::*;

/// Requested bytes per subscribed connection (10 topics, idle reader) may not exceed this. Measured
/// 1,508-1,647 in the test profile when it was set (release: 1,660; 1,921 before the session task and
/// queue were shrunk). Up to ~320 bytes depend on timing: whether the connection's data lane (192)
/// and reply lane (128) are allocated when the snapshot is taken.
const BUDGET_BYTES: i64 = 1_900;

const WARM: usize = 200;
const MEASURED: usize = 1_000;
const TOPICS_PER_CONN: usize = 10;
const SYMBOLS: usize = 100;
/// Longer than the shard's sweep period with the default keepalive settings.
const SETTLE: Duration = Duration::from_millis(1300);

/// Live-allocation counts per size class of 8 bytes up to 4 KiB, the rest in the last class.
const CLASSES: usize = 513;

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_CLASS: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];

thread_local! {
    /// Set on the client thread, whose allocations are not the server's.
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn class(size: usize) -> usize {
    size.div_ceil(8).min(CLASSES - 1)
}

fn account(layout: Layout, sign: i64) {
    if UNCOUNTED.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    LIVE_BYTES.fetch_add(sign * layout.size() as i64, Relaxed);
    LIVE_BY_CLASS[class(layout.size())].fetch_add(sign, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout, 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout, 1);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(layout, -1);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(layout, -1);
        account(
            Layout::from_size_align(new_size, layout.align()).expect("layout"),
            1,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Snapshot {
    bytes: i64,
    by_class: Vec<i64>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        bytes: LIVE_BYTES.load(Relaxed),
        by_class: LIVE_BY_CLASS.iter().map(|c| c.load(Relaxed)).collect(),
    }
}

/// Waits until only the warm-up clients are connected and a sweep has passed; the heap then.
async fn settle_after_close(server: &RunningServer) -> Snapshot {
    wait_for_open(server.addr(), WARM).await;
    tokio::time::sleep(SETTLE).await;
    snapshot()
}

/// Prints the live allocations per measured connection that differ between two snapshots.
fn print_classes(title: &str, from: &Snapshot, to: &Snapshot) {
    println!("{title}");
    for (c, (a, b)) in to.by_class.iter().zip(&from.by_class).enumerate() {
        let added = (a - b) as f64 / MEASURED as f64;
        if added.abs() >= 0.05 {
            let upto = if c == CLASSES - 1 {
                "larger".to_string()
            } else {
                format!("<= {:>4} B", c * 8)
            };
            println!("  {upto}: {added:>6.2}");
        }
    }
}

/// Opens a WebSocket, subscribes to ten topics and waits for the `subscribed` reply.
fn subscribed_client(addr: SocketAddr, n: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(upgrade_request(addr, "").as_bytes())
        .expect("handshake");
    let topics: Vec<String> = (0..TOPICS_PER_CONN)
        .map(|k| format!("\"ticker.SYM{:04}\"", (n * 7 + k * 10) % SYMBOLS))
        .collect();
    let req = format!(
        r#"{{"op":"subscribe","id":1,"topics":[{}]}}"#,
        topics.join(",")
    );
    s.write_all(&masked_text(req.as_bytes()))
        .expect("subscribe");
    // The 101 response, then frames; the ack says `"subscribed"`. Ticks may come first.
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.windows(12).any(|w| w == b"\"subscribed\"") {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed");
        seen.extend_from_slice(&chunk[..n]);
        assert!(seen.len() < 1 << 20, "no subscribe ack");
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"));
    s
}

/// Opens `count` subscribed clients on an uncounted thread.
fn open(addr: SocketAddr, from: usize, count: usize) -> Vec<TcpStream> {
    std::thread::spawn(move || {
        UNCOUNTED.with(|u| u.set(true));
        (from..from + count)
            .map(|n| subscribed_client(addr, n))
            .collect()
    })
    .join()
    .expect("client thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_connection_costs_the_server_a_bounded_number_of_heap_bytes() {
    raise_fd_limit();
    let symbols: Vec<String> = (0..SYMBOLS).map(|i| format!("SYM{i:04}")).collect();
    let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
    let server = start_server(|c| {
        feed(c, &symbols, 200.0);
        // Each topic's history fills with the feed, whatever the connections do: it would show as
        // growth between the rounds below, which count what connections leave behind.
        c.history.size = 0;
    })
    .await;
    let addr = server.addr();

    let warm = tokio::task::spawn_blocking(move || open(addr, 0, WARM))
        .await
        .expect("warm clients");
    // Steady state: past one sweep (1 s by default), which frees the reply lane of every queue.
    tokio::time::sleep(SETTLE).await;
    let before = snapshot();
    let measured = tokio::task::spawn_blocking(move || open(addr, WARM, MEASURED))
        .await
        .expect("measured clients");
    // Ticks keep flowing to every client (queues grow to their working size), then a sweep passes.
    tokio::time::sleep(SETTLE).await;
    let after = snapshot();

    let per_conn = (after.bytes - before.bytes) / MEASURED as i64;
    println!(
        "heap per subscribed connection: {per_conn} bytes ({} topics each)",
        TOPICS_PER_CONN
    );
    print_classes(
        "live allocations added per connection, by size class:",
        &before,
        &after,
    );
    assert!(
        per_conn <= BUDGET_BYTES,
        "{per_conn} heap bytes per subscribed connection, budget {BUDGET_BYTES}"
    );

    // Nothing outlives its connection: once they have left, a second round of the same connections
    // leaves the heap where the first left it (the first round may grow capacity that is kept:
    // the routing lists of topics that still have subscribers, the shard's session list).
    drop(measured);
    let first = settle_after_close(&server).await;
    let again = tokio::task::spawn_blocking(move || open(addr, WARM, MEASURED))
        .await
        .expect("second round");
    drop(again);
    let second = settle_after_close(&server).await;
    // Counted in allocations, not bytes: a few long-lived buffers (the dispatcher swaps two lists
    // of subscribers to flush) may still grow in the second round, and each of the warm-up clients'
    // queue lanes may or may not be allocated at the moment of a snapshot (the sweep frees empty
    // ones, the next tick allocates again: up to WARM either way). A per-connection object left
    // behind would add a thousand.
    let count = |s: &Snapshot| s.by_class.iter().sum::<i64>();
    let extra = count(&second) - count(&first);
    println!(
        "a second round left {extra} allocations ({} bytes) for {MEASURED} connections",
        second.bytes - first.bytes
    );
    print_classes("left per connection, by size class:", &first, &second);
    assert!(
        extra.abs() <= MEASURED as i64 / 4,
        "{extra} allocations stayed after a second round of {MEASURED} connections closed"
    );
    drop(warm);
    server.shutdown().await;
}
