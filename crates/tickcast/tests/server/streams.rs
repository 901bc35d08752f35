//! Protocol v2's stream guarantees end to end: recovery after a reconnect (every missed seq once,
//! or a plain "cannot" and the snapshot), epochs, `gap` markers for what backpressure took away,
//! per-topic heartbeats that tell a quiet topic from a dead feed, and clear errors for malformed
//! options. Real server, real sockets, independent clients.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tickcast::config::streams::HistoryBounds;

const AAPL: &str = "ticker.AAPL";

/// Subscribes to `topic`, returning the epoch from the ack.
async fn subscribe_for_epoch(c: &mut Client, topic: &str) -> String {
    let ack = c.subscribe(&[topic], 1).await;
    ack["epochs"][topic]
        .as_str()
        .unwrap_or_else(|| panic!("epoch of {topic} in {ack}"))
        .to_string()
}

/// Subscribes to AAPL from `seq` of `epoch`; returns the ack.
async fn resubscribe(c: &mut Client, seq: u64, epoch: &str, id: u64) -> Value {
    c.send(json!({
        "op": "subscribe",
        "topics": [AAPL],
        "since": {"ticker.AAPL": {"seq": seq, "epoch": epoch}},
        "id": id,
    }))
    .await;
    let ack = c.next_json().await;
    assert_eq!(ack["type"], "subscribed", "the ack comes first: {ack}");
    assert_eq!(ack["epochs"][AAPL], epoch, "{ack}");
    ack
}

/// Reads into `ledger` until `topic` reaches `seq`.
async fn read_until(c: &mut Client, ledger: &mut SeqLedger, topic: &str, seq: u64) {
    while ledger.last(topic).is_none_or(|l| l < seq) {
        let v = c.next_json().await;
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_recover_every_missed_seq_exactly_once_at_a_high_rate() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 3000.0);
        c.history.size = 50_000;
        c.history.ttl_ms = 0;
    })
    .await;
    let mut c = Client::connect(&server).await;
    let epoch = subscribe_for_epoch(&mut c, AAPL).await;
    let mut ledger = SeqLedger::default();
    let first = c.next_of_type("tick").await;
    ledger.observe(&first).unwrap();
    let first = first["seq"].as_u64().unwrap();
    read_until(&mut c, &mut ledger, AAPL, first + 100).await;
    for round in 0..5 {
        // The network blips: the client is gone while hundreds of ticks are published.
        drop(c);
        let had = ledger.last(AAPL).unwrap();
        wait_for_seq(&server, AAPL, had + 300).await;
        c = Client::connect(&server).await;
        let ack = resubscribe(&mut c, had, &epoch, round + 2).await;
        assert_eq!(ack["recovery"][AAPL], json!({"recovered": true}), "{ack}");
        // The missed ticks, then those published while the recovery ran, then live ones: the
        // ledger fails on any hole or duplicate.
        let target = last_seq(&server, AAPL) + 300;
        read_until(&mut c, &mut ledger, AAPL, target).await;
    }
    let last = ledger.last(AAPL).unwrap();
    assert_eq!(ledger.markers(), 0, "nothing was skipped");
    assert_eq!(
        ledger.ticks,
        last - first + 1,
        "every seq from {first} to {last} once"
    );
    let m = metrics(&server).await;
    assert_eq!(
        m.sample("tickcast_recoveries_total{outcome=\"recovered\"}"),
        Some(5.0)
    );
    assert!(m.value("tickcast_history_entries") > 0.0);
    assert!(m.value("tickcast_history_bytes") > m.value("tickcast_history_entries") * 40.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_past_the_history_says_too_old_and_sends_the_snapshot() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 1000.0);
        c.history.size = 10;
    })
    .await;
    let mut c = Client::connect(&server).await;
    let epoch = subscribe_for_epoch(&mut c, AAPL).await;
    let had = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    drop(c);
    wait_for_seq(&server, AAPL, had + 50).await;
    let mut c = Client::connect(&server).await;
    let ack = resubscribe(&mut c, had, &epoch, 2).await;
    assert_eq!(
        ack["recovery"][AAPL],
        json!({"recovered": false, "reason": "too_old"})
    );
    // The snapshot, as without `since`, then live ticks right after it.
    let snap = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    assert!(snap >= had + 50, "snapshot {snap}");
    assert_eq!(c.next_of_type("tick").await["seq"], snap + 1);
    server.shutdown().await;

    // A channel that keeps no history: no_history.
    let server = start_server(|c| {
        feed(c, &["AAPL"], 200.0);
        c.history
            .channels
            .insert("ticker".into(), HistoryBounds { size: 0, ttl_ms: 0 });
    })
    .await;
    let mut c = Client::connect(&server).await;
    let epoch = subscribe_for_epoch(&mut c, AAPL).await;
    let had = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    drop(c);
    wait_for_seq(&server, AAPL, had + 5).await;
    let mut c = Client::connect(&server).await;
    let ack = resubscribe(&mut c, had, &epoch, 2).await;
    assert_eq!(
        ack["recovery"][AAPL],
        json!({"recovered": false, "reason": "no_history"})
    );
    assert!(c.next_of_type("tick").await["seq"].as_u64().unwrap() > had);
    assert_eq!(
        metric(&server, "tickcast_recoveries_total{outcome=\"no_history\"}").await,
        Some(1.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_has_a_new_epoch_and_says_epoch_changed() {
    let config = |c: &mut tickcast::Config| feed(c, &["AAPL"], 200.0);
    let server = start_server(config).await;
    let mut c = Client::connect(&server).await;
    let epoch = subscribe_for_epoch(&mut c, AAPL).await;
    let had = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    drop(c);
    server.shutdown().await;

    let server = start_server(config).await;
    wait_for_seq(&server, AAPL, 1).await;
    let mut c = Client::connect(&server).await;
    c.send(json!({
        "op": "subscribe",
        "topics": [AAPL],
        "since": {"ticker.AAPL": {"seq": had, "epoch": epoch}},
        "id": 2,
    }))
    .await;
    let ack = c.next_of_type("subscribed").await;
    assert_ne!(ack["epochs"][AAPL], epoch.as_str(), "a new seq space");
    assert_eq!(
        ack["recovery"][AAPL],
        json!({"recovered": false, "reason": "epoch_changed"})
    );
    assert!(
        c.next_of_type("tick").await["seq"].is_u64(),
        "the snapshot follows"
    );
    server.shutdown().await;
}

/// A client that stops reading under `policy` is told, before its next tick of a topic, which
/// seqs it will not get; with the write pass's sends batched through io_uring or one `send(2)`
/// each (`io_uring`), which must not differ in what a client gets.
async fn stalled_client_is_told_what_it_missed(policy: &str, counter: &str, io_uring: bool) {
    let policy_value = policy.to_string();
    let server = start_server(|c| {
        feed(c, &["AAPL", "MSFT"], 2000.0);
        c.backpressure.policy = serde_json::from_value(json!(policy_value)).expect("a policy name");
        c.backpressure.max_queued_frames = 32;
        c.server.socket_send_buffer_bytes = 4096;
        c.server.io_uring = io_uring;
    })
    .await;
    let available = tickcast_uring::SendRing::new().is_ok();
    let shards = server.running().state().bus.shard_count() as f64;
    let expected = if io_uring && available { shards } else { 0.0 };
    // Each shard opens its ring as its thread starts, which on a loaded machine may be after the
    // listener answers: wait for the gauge to settle at what the config and kernel allow.
    wait_until_async(
        &format!(
            "tickcast_io_uring_shards = {expected} (io_uring {io_uring}, available {available})"
        ),
        WAIT,
        || async { metric(&server, "tickcast_io_uring_shards").await == Some(expected) },
    )
    .await;
    let mut slow = RawClient::connect_with(&server, Some(4096)).await;
    slow.send_text(r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"id":1}"#)
        .await;
    wait_until_async(
        &format!("{counter} while the client stalls"),
        WAIT,
        || async { metrics(&server).await.value(counter) > 0.0 },
    )
    .await;
    let target: Vec<(&str, u64)> = ["ticker.AAPL", "ticker.MSFT"]
        .into_iter()
        .map(|t| (t, last_seq(&server, t) + 10))
        .collect();
    let mut ledger = SeqLedger::default();
    while target
        .iter()
        .any(|(t, seq)| ledger.last(t).is_none_or(|l| l < *seq))
    {
        let (op, payload) = slow.read_frame().await.expect("still served");
        if op != 0x1 {
            continue;
        }
        let v: Value = serde_json::from_slice(&payload).expect("JSON");
        ledger
            .observe(&v)
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
    }
    let reason = if policy == "conflate" {
        "conflated"
    } else {
        "dropped"
    };
    assert!(
        ledger.gaps.get(reason).copied().unwrap_or(0) > 0,
        "{policy}: markers {:?}",
        ledger.gaps
    );
    assert!(
        metric(
            &server,
            &format!("tickcast_gap_markers_total{{reason=\"{reason}\"}}")
        )
        .await
        .unwrap_or(0.0)
            > 0.0
    );
    eprintln!(
        "{policy}: {} ticks, {} markers covering {} seqs",
        ledger.ticks,
        ledger.markers(),
        ledger.announced
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflated_client_gets_a_gap_marker_before_its_next_tick() {
    stalled_client_is_told_what_it_missed("conflate", "tickcast_messages_conflated_total", true)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflated_client_gets_a_gap_marker_before_its_next_tick_with_send_per_connection() {
    stalled_client_is_told_what_it_missed("conflate", "tickcast_messages_conflated_total", false)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_ticks_were_dropped_gets_a_gap_marker_before_its_next_tick() {
    stalled_client_is_told_what_it_missed(
        "drop_oldest",
        "tickcast_messages_dropped_total{reason=\"drop_oldest\"}",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_come_for_a_quiet_topic_not_a_busy_one_and_tell_a_dead_feed() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 200.0);
        c.feeds.extend(feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"\nrequired = false",
        ));
    })
    .await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    use tokio::io::AsyncWriteExt;
    let line = tick_line("ticker.QUIET", 1.0, 2.0, 1.5, 10.0) + "\n";
    publisher.write_all(line.as_bytes()).await.unwrap();
    wait_for_seq(&server, "ticker.QUIET", 1).await;
    wait_for_seq(&server, AAPL, 1).await;

    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"subscribe","topics":[AAPL,"ticker.QUIET"],"heartbeat_ms":200,"id":1}))
        .await;
    c.next_of_type("subscribed").await;
    let quiet_ts = c.next_of_type("tick").await;
    let started = Instant::now();
    let mut beats: HashMap<String, Vec<Value>> = HashMap::new();
    let mut quiet_tick_ts = None;
    if quiet_ts["topic"] == "ticker.QUIET" {
        quiet_tick_ts = quiet_ts["ts"].as_u64();
    }
    while started.elapsed() < Duration::from_millis(1500) {
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("heartbeat") => {
                let topic = v["topic"].as_str().unwrap().to_string();
                beats.entry(topic).or_default().push(v);
            }
            Some("tick") if v["topic"] == "ticker.QUIET" => quiet_tick_ts = v["ts"].as_u64(),
            _ => {}
        }
    }
    let quiet = beats.get("ticker.QUIET").cloned().unwrap_or_default();
    assert!(quiet.len() >= 4, "about one per 200 ms: {quiet:?}");
    assert!(
        !beats.contains_key(AAPL),
        "a busy topic needs none: {beats:?}"
    );
    for b in &quiet {
        assert_eq!(b["seq"], 1);
        assert_eq!(b["ts"].as_u64(), quiet_tick_ts, "the time of the last tick");
        assert_eq!(b["feed_up"], true);
    }
    let m = metrics(&server).await;
    let encoded = m.value("tickcast_heartbeats_encoded_total");
    assert!(encoded >= 4.0 && m.value("tickcast_heartbeats_sent_total") >= encoded);

    // The feed's only publisher goes away: the topic's heartbeats say so.
    drop(publisher);
    for _ in 0..100 {
        let v = c.next_of_type("heartbeat").await;
        if v["topic"] == "ticker.QUIET" && v["feed_up"] == false {
            assert_eq!(v["seq"], 1, "still the last seq it had");
            server.shutdown().await;
            return;
        }
    }
    panic!("no heartbeat with feed_up false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_options_get_an_error_naming_the_field_and_nothing_else_changes() {
    let server = start_server(|c| feed(c, &["AAPL", "MSFT"], 200.0)).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&[AAPL], 1).await;
    let cases = [
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"heartbeat_ms":5,"id":2}),
            "heartbeat_ms",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"heartbeat_ms":"1s","id":3}),
            "heartbeat_ms",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"since":[1],"id":4}),
            "since",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"since":{"ticker.MSFT":{"seq":-1,"epoch":"a"}},"id":5}),
            "since.ticker.MSFT.seq",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"since":{"ticker.MSFT":{"seq":1}},"id":6}),
            "since.ticker.MSFT.epoch",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"since":{"ticker.MSFT":{"seq":1,"epoch":"much-too-long-for-an-epoch"}},"id":7}),
            "since.ticker.MSFT.epoch",
        ),
        (
            json!({"op":"subscribe","topics":["ticker.MSFT"],"since":{"ticker.AAPL":{"seq":1,"epoch":"a"}},"id":8}),
            "since.ticker.AAPL",
        ),
    ];
    for (request, field) in cases {
        let id = request["id"].clone();
        c.send(request).await;
        let err = c.next_of_type("error").await;
        assert_eq!(err["code"], "invalid_field", "{err}");
        assert_eq!(err["field"], field, "{err}");
        assert_eq!(err["id"], id, "{err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
    }
    // Still connected, still subscribed to AAPL, and MSFT was never subscribed.
    let mut ledger = SeqLedger::default();
    for _ in 0..20 {
        let v = c.next_of_type("tick").await;
        assert_eq!(v["topic"], AAPL, "{v}");
        ledger.observe(&v).unwrap();
    }
    assert_eq!(
        metric(
            &server,
            "tickcast_client_errors_total{code=\"invalid_field\"}"
        )
        .await,
        Some(7.0)
    );
    server.shutdown().await;
}
