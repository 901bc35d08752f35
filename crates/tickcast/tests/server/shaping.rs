//! Streams shaped to the client (protocol v2, part 2): wildcard subscriptions that also get
//! topics feeds start later, within the credential's entitlements and the connection's topic
//! limit; per-subscription throttles that deliver the latest tick at most once per interval and
//! never leave the last value behind; and clear errors for malformed options. Real server, real
//! sockets, independent clients; ticks come from a TCP publisher so the test decides what exists.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tickcast::config::ApiKeySection;
use tickcast_gateway::auth::Secret;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TCP_FEED: &str = "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"";

/// Publishes one tick of each of `topics` (price `n`), in order.
async fn publish(publisher: &mut TcpStream, topics: &[&str], n: u32) {
    let mut lines = String::new();
    for t in topics {
        let p = f64::from(n);
        lines += &tick_line(t, p, p + 1.0, p + 0.5, 1.0);
        lines += "\n";
    }
    publisher.write_all(lines.as_bytes()).await.unwrap();
}

/// The next tick's (topic, seq), skipping other message types.
async fn next_tick(c: &mut Client) -> (String, u64) {
    let t = c.next_of_type("tick").await;
    (
        t["topic"].as_str().unwrap().to_string(),
        t["seq"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_gets_every_topic_of_its_channel_including_later_ones_until_unsubscribed() {
    let server = start_server(|c| c.feeds = feeds(TCP_FEED)).await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    publish(&mut publisher, &["ticker.AAPL", "fx.AAPL"], 1).await;
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    wait_for_seq(&server, "fx.AAPL", 1).await;
    // A topic only a client asked for (no feed publishes it) is not the channel's.
    let mut other = Client::connect(&server).await;
    other.subscribe(&["ticker.MADEUP"], 1).await;

    let mut c = Client::connect(&server).await;
    c.send(json!({"op": "subscribe", "topics": ["ticker.*"], "id": 1}))
        .await;
    let ack = c.next_json().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["patterns"], json!(["ticker.*"]), "{ack}");
    assert!(ack["epochs"]["ticker.AAPL"].is_string(), "{ack}");
    assert!(ack["epochs"].get("ticker.MADEUP").is_none(), "{ack}");
    assert_eq!(
        next_tick(&mut c).await,
        ("ticker.AAPL".into(), 1),
        "snapshot"
    );

    // Topics a feed starts after the subscribe arrive from their first tick; other channels don't.
    publish(&mut publisher, &["fx.AAPL", "ticker.NEW", "ticker.AAPL"], 2).await;
    assert_eq!(next_tick(&mut c).await, ("ticker.NEW".into(), 1));
    assert_eq!(next_tick(&mut c).await, ("ticker.AAPL".into(), 2));

    // Unsubscribing the pattern stops all of it; a topic named afterwards is the next tick.
    c.send(json!({"op": "unsubscribe", "topics": ["ticker.*"], "id": 2}))
        .await;
    let ack = c.next_of_type("unsubscribed").await;
    assert_eq!(ack["patterns"], json!(["ticker.*"]), "{ack}");
    publish(
        &mut publisher,
        &["ticker.AAPL", "ticker.NEW", "ticker.LATER"],
        3,
    )
    .await;
    wait_for_seq(&server, "ticker.LATER", 1).await;
    c.subscribe(&["fx.AAPL"], 3).await;
    assert_eq!(next_tick(&mut c).await, ("fx.AAPL".into(), 2), "snapshot");
    publish(
        &mut publisher,
        &["ticker.AAPL", "ticker.LATEST", "fx.AAPL"],
        4,
    )
    .await;
    assert_eq!(next_tick(&mut c).await, ("fx.AAPL".into(), 3));

    wait_for_metric(&server, "tickcast_wildcard_matches_total", 2.0).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_never_delivers_a_forbidden_topic_and_its_matches_count_against_the_topic_limit()
{
    const KEY: &str = "a-key-for-A-tickers";
    let server = start_server(|c| {
        c.feeds = feeds(TCP_FEED);
        c.auth.enabled = true;
        c.auth.api_keys = vec![ApiKeySection {
            key: Secret::new(KEY),
            topics: vec!["ticker.A*".into()],
        }];
    })
    .await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    publish(
        &mut publisher,
        &["ticker.AAPL", "ticker.MSFT", "ticker.AMZN"],
        1,
    )
    .await;
    wait_for_seq(&server, "ticker.AMZN", 1).await;
    let mut c = Client::connect_url(&format!("{}?token={KEY}", server.ws_url())).await;
    c.send(json!({"op": "subscribe", "topics": ["ticker.*"], "id": 1}))
        .await;
    let ack = c.next_json().await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert!(ack["epochs"].get("ticker.MSFT").is_none(), "{ack}");
    let mut got = vec![next_tick(&mut c).await.0, next_tick(&mut c).await.0];
    got.sort();
    assert_eq!(got, ["ticker.AAPL", "ticker.AMZN"]);
    // New topics too: MSFT2 is forbidden, ABNB is not; ABNB is published last.
    publish(
        &mut publisher,
        &["ticker.MSFT", "ticker.MSFT2", "ticker.ABNB"],
        2,
    )
    .await;
    assert_eq!(next_tick(&mut c).await, ("ticker.ABNB".into(), 1));
    wait_for_metric(
        &server,
        "tickcast_wildcard_refusals_total{reason=\"forbidden\"}",
        2.0,
    )
    .await;
    server.shutdown().await;

    // Without auth, a limit of 2 topics per connection: the wildcard takes two, says so once.
    let server = start_server(|c| {
        c.feeds = feeds(TCP_FEED);
        c.limits.max_topics_per_connection = 2;
    })
    .await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    publish(&mut publisher, &["ticker.A", "ticker.B", "ticker.C"], 1).await;
    wait_for_seq(&server, "ticker.C", 1).await;
    let mut c = Client::connect(&server).await;
    c.send(json!({"op": "subscribe", "topics": ["ticker.*"], "id": 1}))
        .await;
    let mut errors = 0;
    let mut ticks = Vec::new();
    while ticks.len() < 2 {
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("error") => {
                assert_eq!(v["code"], "too_many_topics", "{v}");
                errors += 1;
            }
            Some("tick") => ticks.push(v["topic"].as_str().unwrap().to_string()),
            _ => {}
        }
    }
    assert_eq!(ticks, ["ticker.A", "ticker.B"], "sorted by name");
    publish(&mut publisher, &["ticker.D", "ticker.A"], 2).await;
    let v = loop {
        let v = c.next_json().await;
        if v["type"] == "error" {
            errors += 1;
            continue;
        }
        break v;
    };
    assert_eq!(
        (v["topic"].as_str(), v["seq"].as_u64()),
        (Some("ticker.A"), Some(2)),
        "{v}"
    );
    assert_eq!(errors, 1, "told once");
    wait_for_metric(
        &server,
        "tickcast_wildcard_refusals_total{reason=\"topic_limit\"}",
        2.0,
    )
    .await;
    server.shutdown().await;
}

/// Reads ticks of `topic` until seq `last` arrives; returns them with their arrival times.
async fn throttled_until(c: &mut Client, last: u64) -> Vec<(Instant, Value)> {
    let mut out: Vec<(Instant, Value)> = Vec::new();
    while out
        .last()
        .is_none_or(|(_, t)| t["seq"].as_u64() < Some(last))
    {
        let t = c.next_of_type("tick").await;
        out.push((Instant::now(), t));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_sends_the_latest_tick_at_most_once_per_interval_and_never_leaves_the_last_behind(
) {
    let server = start_server(|c| {
        c.feeds = feeds(TCP_FEED);
        c.server.workers = 1;
    })
    .await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    publish(&mut publisher, &["ticker.AAPL"], 0).await;
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let mut a = Client::connect(&server).await;
    a.send(json!({"op": "subscribe", "topics": ["ticker.AAPL"], "throttle_ms": 250, "id": 1}))
        .await;
    assert_eq!(a.next_json().await["type"], "subscribed");
    let mut b = Client::connect(&server).await;
    b.send(json!({"op": "subscribe", "topics": ["ticker.AAPL@250ms"], "id": 1}))
        .await;
    assert_eq!(b.next_json().await["type"], "subscribed");
    // 60 ticks 20 ms apart (1.2 s), then quiet.
    let published = Instant::now();
    for n in 1..=60 {
        publish(&mut publisher, &["ticker.AAPL"], n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spent = published.elapsed();
    let got_a = throttled_until(&mut a, 61).await;
    let got_b = throttled_until(&mut b, 61).await;
    // The snapshot, then at most one per 250 ms of publishing (plus the one after it went quiet).
    let most = 2 + (spent.as_millis() / 250) as usize + 1;
    assert!(got_a.len() <= most, "{} ticks in {spent:?}", got_a.len());
    assert!(got_a.len() >= 4, "{} ticks in {spent:?}", got_a.len());
    let seqs: Vec<u64> = got_a
        .iter()
        .map(|(_, t)| t["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        *seqs.last().unwrap(),
        61,
        "the final value, after the topic went quiet"
    );
    // Same rate, same shard: the same ticks, byte for byte.
    let values = |v: &[(Instant, Value)]| v.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
    assert_eq!(values(&got_a), values(&got_b));
    // Released once per interval for both, not once per client.
    wait_for_metric(&server, "tickcast_throttle_superseded_total", 30.0).await;
    let releases = metrics(&server)
        .await
        .value("tickcast_throttle_releases_total");
    assert!(releases <= (got_a.len() - 1) as f64, "{releases}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_throttles_and_patterns_are_named_and_leave_the_connection_as_it_was() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 100.0);
        c.limits.max_patterns_per_connection = 1;
    })
    .await;
    let mut c = Client::connect(&server).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    let cases = [
        (
            json!({"topics": ["ticker.MSFT"], "throttle_ms": 5}),
            "invalid_field",
            Some("throttle_ms"),
        ),
        (
            json!({"topics": ["ticker.MSFT"], "throttle_ms": "fast"}),
            "invalid_field",
            Some("throttle_ms"),
        ),
        (
            json!({"topics": ["ticker.MSFT@120000ms"]}),
            "invalid_field",
            Some("topics"),
        ),
        (
            json!({"topics": ["ticker.MSFT@fast"]}),
            "invalid_field",
            Some("topics"),
        ),
        (json!({"topics": ["ticker.MS*"]}), "invalid_topic", None),
        (
            json!({"topics": ["ticker.*", "trade.*"]}),
            "too_many_patterns",
            None,
        ),
    ];
    for (i, (request, code, field)) in cases.into_iter().enumerate() {
        let mut request = request;
        request["op"] = json!("subscribe");
        request["id"] = json!(100 + i);
        c.send(request.clone()).await;
        let e = c.next_of_type("error").await;
        assert_eq!(e["code"], code, "{request} -> {e}");
        assert_eq!(e["id"], 100 + i, "{e}");
        if let Some(field) = field {
            assert_eq!(e["field"], field, "{e}");
        }
    }
    // Still subscribed to AAPL alone, live.
    let before = last_seq(&server, "ticker.AAPL");
    let t = loop {
        let t = c.next_of_type("tick").await;
        if t["seq"].as_u64().unwrap() > before {
            break t;
        }
    };
    assert_eq!(t["topic"], "ticker.AAPL");
    wait_for_metric(
        &server,
        "tickcast_limit_rejections_total{limit=\"max_patterns_per_connection\"}",
        1.0,
    )
    .await;
    server.shutdown().await;
}
