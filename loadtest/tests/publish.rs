//! End to end, whole path: one run of the real `tickcast-loadgen` binary in combined mode
//! (NDJSON publishers into tickcast's TCP feed + WebSocket subscribers) against a real
//! in-process tickcast whose only feed is that TCP input, checked through the JSON report.
//! Loopback only; every wait is bounded; timing bounds are generous.

mod support;

use support::{assert_success, read_report, run_loadgen, temp_path};

/// Topics published and subscribed: ticker.SYM0000..0009.
const TOPICS: usize = 10;
/// Ticks/s published over all publisher connections.
const PUBLISH_RATE: f64 = 2_000.0;
const CONNS: u64 = 8;
const PER_CONN: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_publish_and_subscribe_over_tcp_feed() {
    // The only feed is the TCP/NDJSON input: every tick subscribers see was published by the
    // load generator itself.
    let server = tickcast::test_support::start_server(|c| {
        c.feeds = tickcast::Config::from_toml(
            "[[feeds]]\nkind = \"tcp\"\nname = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        )
        .expect("valid feeds")
        .feeds;
    })
    .await;
    let feed_addr = server.running().feed_addr("tcp").expect("tcp feed address");
    let json = temp_path("publish.json");
    let args: Vec<String> = [
        "--mode",
        "both",
        "--url",
        &server.ws_url(),
        "--publish-addr",
        &feed_addr.to_string(),
        "--publish-rate",
        &PUBLISH_RATE.to_string(),
        "--publish-conns",
        "2",
        "--conns",
        &CONNS.to_string(),
        "--per-conn",
        &PER_CONN.to_string(),
        "--topics",
        &TOPICS.to_string(),
        "--warmup",
        "1",
        "--duration",
        "3",
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_loadgen(args).await;
    server.shutdown().await;
    println!("{}", assert_success(&out));

    let report = read_report(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(
        report["ramp"]["connected"], CONNS,
        "all connected: {report:#}"
    );

    // Subscribe side.
    let sub = &report["subscribe"];
    let fast = &sub["fast"];
    assert!(
        sub["messages"].as_u64().unwrap() > 0,
        "messages received: {sub:#}"
    );
    assert!(sub["msgs_per_s"].as_f64().unwrap() > 0.0, "{sub:#}");
    assert_eq!(fast["gaps"], 0, "fast clients see no gaps: {fast:#}");
    assert_eq!(fast["gaps_all_phases"], 0, "{fast:#}");
    assert_eq!(fast["reorders"], 0, "{fast:#}");
    assert_eq!(fast["unexpected_topic"], 0, "{fast:#}");
    assert_eq!(
        fast["baselines"],
        CONNS * PER_CONN,
        "one baseline per subscribed topic: {fast:#}"
    );
    let lat = &fast["latency_us"];
    assert!(lat["samples"].as_u64().unwrap() > 0, "{lat:#}");
    let (p50, p99, max) = (
        lat["p50"].as_f64().expect("p50"),
        lat["p99"].as_f64().expect("p99"),
        lat["max"].as_f64().expect("max"),
    );
    assert!(
        p50 <= p99 && p99 <= max,
        "ordered: p50 {p50} p99 {p99} max {max}"
    );

    // Publish side: the achieved rate is reported and near the target (generous bound).
    let publish = &report["publish"];
    assert_eq!(publish["target_rate"].as_f64(), Some(PUBLISH_RATE));
    let achieved = publish["achieved_rate"].as_f64().expect("achieved rate");
    assert!(
        (PUBLISH_RATE * 0.5..=PUBLISH_RATE * 1.5).contains(&achieved),
        "achieved {achieved}/s vs target {PUBLISH_RATE}/s: {publish:#}"
    );
    assert!(publish["sent_window"].as_u64().unwrap() > 0, "{publish:#}");
    assert_eq!(publish["errors"], 0, "{publish:#}");
    assert_eq!(publish["connected"], 2, "{publish:#}");

    // Every subscribed tick came from the publishers: each topic is published at
    // PUBLISH_RATE / TOPICS and has CONNS * PER_CONN / TOPICS subscribers.
    let expected = sub["expected_msgs_per_s"]
        .as_f64()
        .expect("expected rate known");
    let offered = PUBLISH_RATE * (CONNS * PER_CONN) as f64 / TOPICS as f64;
    assert!((expected - offered).abs() < 1.0, "expected {expected}");
    let got = sub["msgs_per_s"].as_f64().unwrap();
    assert!(
        got > expected * 0.5 && got < expected * 1.5,
        "delivered {got} vs {expected}"
    );
}
