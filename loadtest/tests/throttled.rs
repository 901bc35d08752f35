//! A throttled subscribe run (`--throttle-ms`) of the real `tickcast-loadgen` binary against a
//! real in-process tickcast: every connection gets at most one tick per topic per interval (the
//! server's throttle), seqs only go forward, and the skipped seqs are not reported as gaps.

use tickcast::config::Overrides;
use tickcast_ingest::synthetic::Symbols;

mod support;

use support::{assert_success, read_report, run_loadgen, temp_path};

/// 20 symbols at 2,000 ticks/s in all: 100 ticks/s per topic, throttled to 4/s.
const SYMBOLS: usize = 20;
const RATE: f64 = 2_000.0;
const THROTTLE_MS: u64 = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_run_gets_at_most_one_tick_per_topic_per_interval() {
    let server = tickcast::test_support::start_server(|c| {
        c.apply(Overrides {
            symbols: Some(Symbols::Count(SYMBOLS)),
            rate: Some(RATE),
            ..Default::default()
        })
        .expect("valid feed overrides");
    })
    .await;
    let json = temp_path("throttled.json");
    let (conns, per_conn, duration) = (10, 5, 3.0);
    let args: Vec<String> = [
        "--url",
        &server.ws_url(),
        "--conns",
        &conns.to_string(),
        "--per-conn",
        &per_conn.to_string(),
        "--topics",
        &SYMBOLS.to_string(),
        "--throttle-ms",
        &THROTTLE_MS.to_string(),
        "--warmup",
        "1",
        "--duration",
        &duration.to_string(),
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_loadgen(args).await;
    server.shutdown().await;
    assert_success(&out);
    let report = read_report(&json);
    assert_eq!(report["params"]["throttle_ms"], THROTTLE_MS, "{report:#}");
    let fast = &report["subscribe"]["fast"];
    assert_eq!(fast["gaps"], 0, "throttle skips are not gaps: {fast:#}");
    assert_eq!(fast["reorders"], 0, "{fast:#}");
    // Per connection and topic, at most one tick per 250 ms of the window (plus one at each
    // edge), and a fair share of that: the feed gives every topic 100 ticks/s.
    let per_s = report["subscribe"]["msgs_per_s"].as_f64().unwrap();
    let per_topic = per_s / (conns * per_conn) as f64;
    let most = 1000.0 / THROTTLE_MS as f64;
    assert!(
        per_topic <= most + 2.0 / duration,
        "{per_topic:.2} ticks/s per topic"
    );
    assert!(per_topic >= most / 2.0, "{per_topic:.2} ticks/s per topic");
}
