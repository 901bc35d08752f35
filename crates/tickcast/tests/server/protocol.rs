//! Protocol v1 end to end: subscribe, snapshot, live ticks, unsubscribe, every error reply, and the
//! RFC 6455 close codes for protocol violations. Real server, real sockets, independent client.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().expect("seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_receive_unsubscribe() {
    let server = start_server(|c| feed(c, &["AAPL", "MSFT"], 400.0)).await;
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let mut c = Client::connect(&server).await;
    let mut ack = c.subscribe(&["ticker.AAPL"], 1).await;
    // v2 names each topic's seq space; a v1 client ignores it.
    let epochs = ack.as_object_mut().unwrap().remove("epochs");
    let epoch = epochs.as_ref().and_then(|e| e["ticker.AAPL"].as_str());
    assert!(
        epoch.is_some_and(|e| !e.is_empty() && e.len() <= 16),
        "{epochs:?}"
    );
    assert_eq!(
        ack,
        json!({"type":"subscribed","topics":["ticker.AAPL"],"id":1})
    );
    let first = c.next_of_type("tick").await;
    assert_eq!(first["topic"], "ticker.AAPL");
    for key in ["seq", "ts", "bid", "ask", "last", "size"] {
        assert!(first[key].is_number(), "{key} in {first}");
    }
    assert!(first["bid"].as_f64() < first["ask"].as_f64());
    // ts is unix microseconds (2020..2100).
    let ts = first["ts"].as_u64().unwrap();
    assert!(
        (1_577_836_800_000_000..4_102_444_800_000_000).contains(&ts),
        "{ts}"
    );

    c.send(json!({"op":"unsubscribe","topics":["ticker.AAPL"],"id":2}))
        .await;
    let ack = c.next_of_type("unsubscribed").await;
    assert_eq!(ack["id"], 2);
    // Nothing for AAPL arrives after the ack; the ping reply proves the stream moved on.
    let before = last_seq(&server, "ticker.AAPL");
    wait_for_seq(&server, "ticker.AAPL", before + 20).await;
    c.send(json!({"op":"ping","id":3})).await;
    let mut next = c.next_json().await;
    // The pong carries the server's clock (unix µs) for clients' offset estimates: check it, then
    // compare the rest exactly.
    let ts = next["ts"].as_u64().expect("pong ts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        now.abs_diff(ts) < 60_000_000,
        "pong ts {ts} is the server's clock"
    );
    next.as_object_mut().unwrap().remove("ts");
    assert_eq!(
        next,
        json!({"type":"pong","id":3}),
        "no tick after unsubscribed"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_on_subscribe_is_the_cached_latest_tick() {
    let server = start_server(|c| feed(c, &["AAPL"], 20.0)).await;
    wait_for_seq(&server, "ticker.AAPL", 3).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL", "ticker.NODATA"], 9).await;
    let snap = c.next_of_type("tick").await;
    // The snapshot is the cache as it was at subscribe: no older than the tick waited for, no newer
    // than what the cache holds now.
    let cached = last_seq(&server, "ticker.AAPL");
    assert!(
        seq(&snap) >= 3 && seq(&snap) <= cached,
        "snapshot {snap} cached {cached}"
    );
    let next = c.next_of_type("tick").await;
    assert_eq!(
        seq(&next),
        seq(&snap) + 1,
        "live ticks continue right after the snapshot"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_client_sees_seq_strictly_plus_one() {
    let server = start_server(|c| feed(c, &["AAPL", "MSFT", "GOOGL"], 3000.0)).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL", "ticker.MSFT", "ticker.GOOGL"], 1)
        .await;
    let mut last = std::collections::HashMap::new();
    for _ in 0..1500 {
        let t = c.next_of_type("tick").await;
        let topic = t["topic"].as_str().unwrap().to_string();
        if let Some(prev) = last.insert(topic.clone(), seq(&t)) {
            assert_eq!(seq(&t), prev + 1, "gap or reorder on {topic}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_error_replies_and_the_connection_stays() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.max_topics_per_connection = 2;
    })
    .await;
    let mut c = Client::connect(&server).await;
    let cases: Vec<(&str, &str)> = vec![
        ("{not json", "bad_json"),
        (r#"{"op":"fly","id":5}"#, "unknown_op"),
        (
            r#"{"op":"subscribe","topics":["bad topic!"],"id":6}"#,
            "invalid_topic",
        ),
        (
            r#"{"op":"subscribe","topics":["ticker.A","ticker.B","ticker.C"],"id":7}"#,
            "too_many_topics",
        ),
        (r#"{"op":"subscribe","topics":"ticker.A"}"#, "bad_request"),
        (r#"[]"#, "bad_request"),
    ];
    for (msg, code) in cases {
        c.send_text(msg).await;
        let e = c.next_of_type("error").await;
        assert_eq!(e["code"], code, "{msg} -> {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send(json!({"op":"fly","id":"abc"})).await;
    let e = c.next_of_type("error").await;
    assert_eq!(e["id"], "abc", "id echoed");
    assert!(
        e["message"].as_str().unwrap().contains("fly"),
        "message names the problem: {e}"
    );
    c.ws.send(tokio_tungstenite::tungstenite::Message::binary(vec![
        1u8, 2, 3,
    ]))
    .await
    .unwrap();
    assert_eq!(
        c.next_of_type("error").await["code"],
        "binary_not_supported"
    );
    c.send(json!({"op":"ping","id":8})).await;
    assert_eq!(
        c.next_of_type("pong").await["id"],
        8,
        "connection still serves"
    );
    let m = metrics(&server).await;
    assert_eq!(
        m.sample("tickcast_client_errors_total{code=\"too_many_topics\"}"),
        Some(1.0),
        "{m:?}"
    );
    assert_eq!(
        m.sample("tickcast_limit_rejections_total{limit=\"max_topics_per_connection\"}"),
        Some(1.0)
    );
    server.shutdown().await;
}

use futures_util::SinkExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_get_rfc6455_close_codes() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.limits.max_message_bytes = 1024;
    })
    .await;
    // Unmasked client frame: 1002.
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0x81, br#"{"op":"ping"}"#, None).await;
    assert_eq!(raw.expect_close_code().await, 1002);
    // Reserved bits set: 1002.
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0xC1, br#"{"op":"ping"}"#, Some([9, 9, 9, 9]))
        .await;
    assert_eq!(raw.expect_close_code().await, 1002);
    // Invalid UTF-8 in a text frame: 1007.
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0x81, &[0x7b, 0xff, 0xfe, 0x7d], Some([1, 2, 3, 4]))
        .await;
    assert_eq!(raw.expect_close_code().await, 1007);
    // Message over max_message_bytes: 1009, also when it is split into fragments.
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0x81, &vec![b' '; 2000], Some([1, 2, 3, 4]))
        .await;
    assert_eq!(raw.expect_close_code().await, 1009);
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0x01, &vec![b' '; 800], Some([1, 2, 3, 4]))
        .await;
    raw.send_frame(0x80, &vec![b' '; 800], Some([1, 2, 3, 4]))
        .await;
    assert_eq!(raw.expect_close_code().await, 1009);
    // Client close: echoed with the same code.
    let mut raw = RawClient::connect(&server).await;
    raw.send_frame(0x88, &1000u16.to_be_bytes(), Some([1, 2, 3, 4]))
        .await;
    assert_eq!(raw.expect_close_code().await, 1000);
    // After all that, a fresh client is served.
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    c.next_of_type("tick").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_subscribe_and_ping_pong_work() {
    let server = start_server(|c| feed(c, &["AAPL"], 100.0)).await;
    let mut raw = RawClient::connect(&server).await;
    let msg = br#"{"op":"subscribe","topics":["ticker.AAPL"],"id":42}"#;
    raw.send_frame(0x01, &msg[..10], Some([1, 2, 3, 4])).await;
    raw.send_frame(0x89, b"hi", Some([5, 6, 7, 8])).await; // a ping between fragments
    raw.send_frame(0x00, &msg[10..30], Some([1, 2, 3, 4])).await;
    raw.send_frame(0x80, &msg[30..], Some([1, 2, 3, 4])).await;
    let mut saw_pong = false;
    let mut saw_ack = false;
    let mut saw_tick = false;
    for _ in 0..50 {
        let (op, p) = raw.read_frame().await.expect("frame");
        match op {
            0xA => {
                assert_eq!(p, b"hi");
                saw_pong = true;
            }
            0x1 => {
                let v: Value = serde_json::from_slice(&p).unwrap();
                if v["type"] == "subscribed" {
                    assert_eq!(v["id"], 42);
                    saw_ack = true;
                } else if v["type"] == "tick" {
                    assert!(saw_ack, "ack precedes ticks");
                    saw_tick = true;
                }
            }
            _ => {}
        }
        if saw_pong && saw_tick {
            break;
        }
    }
    assert!(saw_pong && saw_ack && saw_tick);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pings_idle_clients_and_closes_dead_ones() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 10.0);
        c.keepalive.ping_interval_ms = 200;
        c.keepalive.pong_timeout_ms = 300;
    })
    .await;
    // A raw client that never answers pings.
    let mut raw = RawClient::connect(&server).await;
    let (op, payload) = raw.read_frame().await.expect("a ping");
    assert_eq!(op, 0x9, "server pings an idle client");
    assert!(payload.len() <= 125);
    assert_eq!(
        raw.expect_close_code().await,
        1001,
        "closed after the pong timeout"
    );
    // A tungstenite client answers pings automatically and stays connected past several intervals.
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        c.next_of_type("tick").await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_going_away() {
    let server = start_server(|c| feed(c, &["AAPL"], 100.0)).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    c.next_of_type("tick").await;
    let shutdown = tokio::spawn(server.shutdown());
    let close = c.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("shutdown in time")
        .unwrap();
}
