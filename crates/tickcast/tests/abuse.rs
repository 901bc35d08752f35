//! Fault and abuse over real sockets: ping floods, slowloris handshakes, thousands of clients
//! dropping at once, a client killed mid-frame, half-open connections found by the ping timeout,
//! and a TCP feed that dies and returns. (Unmasked frames, reserved bits, invalid UTF-8, oversized
//! and fragmented messages are in `server/protocol.rs`.) After each: a fresh client is served, the server
//! holds no leftover session, and this process's RSS (the server runs in it) returns near its
//! baseline. The tests take turns so one's memory does not count against another's.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// One abuse test at a time: RSS is per process.
static TURN: Mutex<()> = Mutex::const_new(());

/// RSS may exceed its baseline by this much once an abuse is over (allocators keep some pages).
const RSS_SLACK: u64 = 48 << 20;

fn rss_bytes() -> u64 {
    rss_kib("self") * 1024
}

/// The server's live WebSocket sessions.
fn sessions(server: &RunningServer) -> usize {
    server.running().state().sessions()
}

/// Subscribes a fresh tungstenite client and waits for a live tick.
async fn fresh_client_is_served(server: &RunningServer, topic: &str) {
    let mut c = Client::connect(server).await;
    let ack = c.subscribe(&[topic], 99).await;
    assert_eq!(ack["id"], 99);
    let t = c.next_of_type("tick").await;
    assert_eq!(t["topic"], topic);
    c.send_text(r#"{"op":"ping","id":"after"}"#).await;
    assert_eq!(c.next_of_type("pong").await["id"], "after");
}

/// Baseline RSS once the server has served one client (thread stacks, pools and caches warm).
async fn baseline(server: &RunningServer, topic: &str) -> u64 {
    fresh_client_is_served(server, topic).await;
    wait_until("the warm-up client is gone", || sessions(server) == 0).await;
    rss_bytes()
}

/// After an abuse: no session is left, a fresh client is served, and RSS comes back near `base`.
async fn recovered(server: &RunningServer, topic: &str, base: u64, what: &str) {
    wait_until_within("every abusive session is closed", 3 * WAIT, || {
        sessions(server) == 0
    })
    .await;
    fresh_client_is_served(server, topic).await;
    let mut rss = rss_bytes();
    poll_until(WAIT, || {
        rss = rss_bytes();
        rss <= base + RSS_SLACK
    })
    .await;
    eprintln!(
        "{what}: RSS baseline {:.1} MiB, after {:.1} MiB",
        base as f64 / 1048576.0,
        rss as f64 / 1048576.0
    );
    assert!(
        rss <= base + RSS_SLACK,
        "{what}: RSS {rss} did not return near its baseline {base}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_answered_without_growing_memory() {
    let _turn = TURN.lock().await;
    let server = start_server(|c| feed(c, &["AAPL"], 50.0)).await;
    let base = baseline(&server, "ticker.AAPL").await;

    // 200,000 control pings (2 MB) written without reading a byte of the replies: the server
    // answers each with a pong on the priority lane and, once the replies pile up, stops reading
    // this client, so the flood waits in TCP instead of in server memory.
    const PINGS: usize = 200_000;
    let raw = RawClient::connect(&server).await;
    let (rd, mut wr) = raw.stream.into_split();
    let one = masked(0x89, b"ping");
    let flood: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * PINGS)
        .collect();
    let writer = tokio::spawn(async move {
        for chunk in flood.chunks(64 * 1024) {
            wr.write_all(chunk).await.expect("flood write");
        }
        wr
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let peak = rss_bytes();
    assert!(
        peak <= base + RSS_SLACK,
        "a ping flood grew RSS from {base} to {peak}"
    );
    assert_eq!(sessions(&server), 1, "the flooding client is still served");

    // Now read: every ping gets its pong, in order, and then the session still answers requests.
    let (mut rd, mut buf) = (rd, Vec::new());
    let mut pongs = 0;
    while pongs < PINGS {
        let (op, payload) = read_frame_from(&mut rd, &mut buf).await.expect("a pong");
        assert_eq!((op, payload.as_slice()), (0xA, &b"ping"[..]));
        pongs += 1;
    }
    let mut wr = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the flood is fully read in time")
        .unwrap();
    wr.write_all(&masked(0x81, br#"{"op":"ping","id":5}"#))
        .await
        .unwrap();
    let (op, payload) = read_frame_from(&mut rd, &mut buf)
        .await
        .expect("the pong reply");
    assert_eq!(op, 0x1);
    let v: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["id"].as_u64()),
        (Some("pong"), Some(5))
    );
    drop((rd, wr));
    recovered(&server, "ticker.AAPL", base, "ping flood").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshakes_are_cut_at_the_handshake_timeout() {
    let _turn = TURN.lock().await;
    let server = start_server(|c| {
        feed(c, &["AAPL"], 50.0);
        c.limits.handshake_timeout_ms = 300;
    })
    .await;
    let base = baseline(&server, "ticker.AAPL").await;
    // The upgrade request without the blank line that ends it.
    let full = upgrade_request(server.addr(), "");
    let head = full
        .strip_suffix("\r\n")
        .expect("request ends with a blank line");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let addr = server.addr();
        let head = head.as_bytes().to_vec();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            match i % 3 {
                // Silent: connects and sends nothing.
                0 => {}
                // Sends most of the head at once, never the blank line that ends it.
                1 => s.write_all(&head).await.expect("partial head"),
                // Trickles the head one byte every 50 ms, far slower than the timeout allows.
                _ => {
                    for b in head.iter() {
                        if s.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            // The server must hang up: read returns EOF (or a reset), never a 101.
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
                .await
                .expect("the server closes a slow handshake");
            assert!(
                !buf.starts_with(b"HTTP/1.1 101"),
                "upgraded a slow handshake"
            );
            started.elapsed()
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    eprintln!("slowloris: slowest of 300 closed after {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    recovered(&server, "ticker.AAPL", base, "slowloris").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_dropping_at_once() {
    let _turn = TURN.lock().await;
    raise_fd_limit();
    let server = start_server(|c| feed(c, &["AAPL", "MSFT", "NVDA", "TSLA"], 400.0)).await;
    let base = baseline(&server, "ticker.AAPL").await;
    const N: usize = 2000;
    let sub = masked(
        0x81,
        br#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT","ticker.NVDA","ticker.TSLA"]}"#,
    );
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N / 200 {
        let batch: Vec<_> = (0..200)
            .map(|_| {
                let (server, sub) = (&server, &sub);
                async move {
                    let mut raw = RawClient::connect(server).await;
                    raw.stream.write_all(sub).await.expect("subscribe");
                    raw
                }
            })
            .collect();
        clients.extend(futures_util::future::join_all(batch).await);
    }
    wait_until_within("all sessions are up", 3 * WAIT, || sessions(&server) == N).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // ticks flowing to all of them
    let loaded = rss_bytes();
    // All at once: half reset (SO_LINGER 0), half closed normally, none reading what is queued.
    for (i, c) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            let _ = c.stream.set_zero_linger();
        }
        drop(c);
    }
    let dropped = Instant::now();
    wait_until_within("every dropped client is gone", 3 * WAIT, || {
        sessions(&server) == 0
    })
    .await;
    eprintln!(
        "{N} clients: RSS with them {:.1} MiB; all sessions gone {:?} after the drop",
        loaded as f64 / 1048576.0,
        dropped.elapsed()
    );
    recovered(&server, "ticker.AAPL", base, "2,000 clients dropping").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_killed_mid_frame_are_cleaned_up() {
    let _turn = TURN.lock().await;
    let server = start_server(|c| feed(c, &["AAPL"], 100.0)).await;
    let base = baseline(&server, "ticker.AAPL").await;
    let sub = masked(
        0x81,
        br#"{"op":"subscribe","topics":["ticker.AAPL"],"id":1}"#,
    );
    let big = masked(0x81, &[b' '; 1000]);
    for round in 0..60 {
        let mut raw = RawClient::connect(&server).await;
        raw.stream.write_all(&sub).await.unwrap();
        let (op, _) = raw.read_frame().await.expect("ack");
        assert_eq!(op, 0x1);
        // Half a frame: one header byte, half a header, a header and part of its payload.
        let cut = match round % 3 {
            0 => 1,
            1 => 3,
            _ => big.len() / 2,
        };
        raw.stream.write_all(&big[..cut]).await.unwrap();
        if round % 2 == 0 {
            let _ = raw.stream.set_zero_linger();
        }
        drop(raw);
    }
    recovered(&server, "ticker.AAPL", base, "killed mid-frame").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_subscribers_are_found_by_the_ping_timeout() {
    let _turn = TURN.lock().await;
    let server = start_server(|c| {
        feed(c, &["AAPL"], 20.0);
        c.keepalive.ping_interval_ms = 200;
        c.keepalive.pong_timeout_ms = 300;
    })
    .await;
    let base = baseline(&server, "ticker.AAPL").await;
    // Subscribed clients whose peer has vanished: the socket stays open (no FIN, no RST), the
    // kernel still acknowledges, nothing is read and no pong ever comes back.
    let sub = masked(0x81, br#"{"op":"subscribe","topics":["ticker.AAPL"]}"#);
    let mut ghosts = Vec::new();
    for _ in 0..50 {
        let mut raw = RawClient::connect_with(&server, Some(4096)).await;
        raw.stream.write_all(&sub).await.unwrap();
        ghosts.push(raw);
    }
    wait_until("ghost sessions are up", || sessions(&server) == 50).await;
    let since = Instant::now();
    wait_until("the ping timeout closes every ghost", || {
        sessions(&server) == 0
    })
    .await;
    let took = since.elapsed();
    eprintln!("half-open: 50 ghosts closed {took:?} after they went silent");
    assert!(
        took >= Duration::from_millis(300),
        "closed before any ping could time out"
    );
    // Their sockets still hold the server's close frame: 1001 "ping timeout".
    assert_eq!(ghosts[0].expect_close_code().await, 1001);
    recovered(&server, "ticker.AAPL", base, "half-open").await;
    drop(ghosts);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_feed_that_dies_and_returns_resumes_the_topic() {
    let _turn = TURN.lock().await;
    let server = start_server(|c| {
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"\n\
             [[feeds]]\nkind = \"synthetic\"\nsymbols = [\"AAPL\"]\nrate = 50.0",
        );
    })
    .await;
    let base = baseline(&server, "ticker.AAPL").await;
    let stats = feed_stats(&server, "pub");
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.X"], 1).await;
    let line = |n: u32| {
        let n = f64::from(n);
        tick_line("ticker.X", n, n + 1.0, n + 0.5, 1.0) + "\n"
    };
    let mut next = 1u32;
    for round in 0..3 {
        let mut publisher = tcp_publisher(&server, "pub").await;
        wait_until("the publisher is connected", || stats.connected()).await;
        let mut batch = String::new();
        for _ in 0..20 {
            batch += &line(next);
            next += 1;
        }
        publisher.write_all(batch.as_bytes()).await.unwrap();
        for n in next - 20..next {
            let t = client.next_of_type("tick").await;
            assert_eq!(
                t["seq"], n as u64,
                "seq continues across publisher restarts"
            );
            assert_eq!(t["bid"], n as u64);
        }
        // The publisher dies: mid-line, by reset, or cleanly.
        match round {
            0 => publisher
                .write_all(br#"{"topic":"ticker.X","bi"#)
                .await
                .unwrap(),
            1 => publisher.set_zero_linger().unwrap(),
            _ => publisher.shutdown().await.unwrap(),
        }
        drop(publisher);
        wait_until("the feed notices its publisher is gone", || {
            !stats.connected()
        })
        .await;
    }
    assert_eq!(stats.ticks_in(), 60);
    drop(client);
    recovered(&server, "ticker.AAPL", base, "feed restarts").await;
    server.shutdown().await;
}
