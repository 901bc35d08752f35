//! Fan-out under load: slow-consumer isolation and many concurrent clients.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// Reads `count` ticks and checks seq is strictly +1 per topic after the first one seen.
async fn read_gapless(mut c: Client, count: usize) -> usize {
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut n = 0;
    while n < count {
        let msg = tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("tick in time");
        let Some(Ok(Message::Text(t))) = msg else {
            panic!("fast client lost its connection: {msg:?}")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] != "tick" {
            continue;
        }
        let topic = v["topic"].as_str().unwrap().to_string();
        let seq = v["seq"].as_u64().unwrap();
        if let Some(prev) = last.insert(topic.clone(), seq) {
            assert_eq!(seq, prev + 1, "gap on {topic} for a fast client");
        }
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_isolated_and_conflated() {
    raise_fd_limit();
    let server = start_server(|c| {
        // Modest rates: the 200 "fast" clients are debug-built test clients sharing two cores.
        feed(c, &["AAPL", "MSFT"], 400.0);
        c.backpressure.max_queued_frames = 128;
        c.server.socket_send_buffer_bytes = 16 * 1024;
    })
    .await;
    // The slow client: tiny receive buffer, subscribes, never reads again.
    let mut slow = RawClient::connect_with(&server, Some(4096)).await;
    slow.send_text(r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"id":1}"#)
        .await;
    let baseline = rss_kib("self");

    // Every fast client reads 400 ticks (~2 s of its topic) with no gap while the slow one stalls.
    // Each reads from the moment it subscribes, as a real fast client does.
    let mut readers = Vec::new();
    for i in 0..200 {
        let mut c = Client::connect(&server).await;
        readers.push(tokio::spawn(async move {
            let topic = if i % 2 == 0 {
                "ticker.AAPL"
            } else {
                "ticker.MSFT"
            };
            c.subscribe(&[topic], i).await;
            read_gapless(c, 400).await
        }));
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), 400);
    }
    // The slow client's queue hit its bound and is being conflated, not grown.
    wait_until_async("the stalled client's ticks are conflated", WAIT, || async {
        metrics(&server)
            .await
            .value("tickcast_messages_conflated_total")
            > 0.0
    })
    .await;
    // Memory stays bounded: a stalled client costs at most its queue bound (128 ticks).
    let grown = rss_kib("self").saturating_sub(baseline);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    // The slow client, once it reads, gets the newest ticks: conflation kept the latest per topic,
    // so its stream skips what was conflated away (each skip announced by a `gap` marker first),
    // never goes back, and reaches the seq each topic had when it started reading without first
    // reading every tick it missed.
    let newest: Vec<(&str, u64)> = ["ticker.AAPL", "ticker.MSFT"]
        .into_iter()
        .map(|t| (t, last_seq(&server, t)))
        .collect();
    let mut ledger = SeqLedger::default();
    while newest
        .iter()
        .any(|(t, seq)| ledger.last(t).unwrap_or(0) < *seq)
    {
        let (op, payload) = slow
            .read_frame()
            .await
            .expect("the slow client is still served");
        let v: Value = match op {
            0x1 => serde_json::from_slice(&payload).expect("JSON"),
            _ => continue,
        };
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
    }
    let ticks = ledger.ticks;
    let missed: u64 = newest.iter().map(|(_, seq)| seq).sum();
    eprintln!(
        "slow client: {ticks} ticks read to catch up with {missed} published; gap markers {:?}",
        ledger.gaps
    );
    assert!(
        ledger.gaps.get("conflated").is_some_and(|n| *n > 0),
        "conflated ticks are skipped and announced, not delivered late"
    );
    assert!(ticks < missed, "caught up without reading every tick");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_closes_slow_consumers_with_1008() {
    let server = start_server(|c| {
        feed(c, &["AAPL", "MSFT"], 4000.0);
        c.backpressure.policy = tickcast_bus::OverflowPolicy::Disconnect;
        c.backpressure.max_queued_frames = 16;
        c.server.socket_send_buffer_bytes = 16 * 1024;
    })
    .await;
    let mut slow = RawClient::connect_with(&server, Some(4096)).await;
    slow.send_text(r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"id":1}"#)
        .await;
    // Wait (bounded) for the server to give up on it, then read what it sent: ticks, then close 1008.
    let disconnects = "tickcast_slow_consumer_disconnects_total";
    wait_until_async("the slow consumer is disconnected", WAIT, || async {
        metrics(&server).await.value(disconnects) > 0.0
    })
    .await;
    assert_eq!(metrics(&server).await.value(disconnects), 1.0);
    assert_eq!(slow.expect_close_code().await, 1008);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_all_receive() {
    raise_fd_limit();
    let server = start_server(|c| feed(c, &["AAPL", "MSFT", "GOOGL", "AMZN"], 100.0)).await;
    let topics = ["ticker.AAPL", "ticker.MSFT", "ticker.GOOGL", "ticker.AMZN"];
    // Every client stays connected until all have received, so they are truly concurrent.
    let all_received = std::sync::Arc::new(tokio::sync::Barrier::new(1001));
    let release = std::sync::Arc::new(tokio::sync::Barrier::new(1001));
    let readers: Vec<_> = (0..1000u64)
        .map(|i| {
            let url = server.ws_url();
            let all_received = all_received.clone();
            let release = release.clone();
            tokio::spawn(async move {
                let mut c = Client::connect_url(&url).await;
                c.subscribe(&[topics[i as usize % 4]], i).await;
                let mut last = None;
                for _ in 0..20 {
                    let t = c.next_of_type("tick").await;
                    let seq = t["seq"].as_u64().unwrap();
                    if let Some(prev) = last {
                        assert_eq!(seq, prev + 1);
                    }
                    last = Some(seq);
                }
                all_received.wait().await;
                release.wait().await;
                drop(c);
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(60), all_received.wait())
        .await
        .expect("all 1,000 received");
    assert_eq!(
        metrics(&server)
            .await
            .value("tickcast_connections_open{transport=\"ws\"}"),
        1000.0
    );
    release.wait().await;
    for r in readers {
        r.await.unwrap();
    }
    server.shutdown().await;
}
