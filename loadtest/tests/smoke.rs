//! End to end: a short subscribe run of the real `tickcast-loadgen` binary against a real
//! in-process tickcast, checked through its JSON report.

use tickcast::config::Overrides;
use tickcast_ingest::synthetic::Symbols;

mod support;

use support::{assert_success, read_report, run_loadgen, temp_path};

/// Feed used by the test: 100 symbols (ticker.SYM0000..0099) at 2,000 ticks/s in total.
const SYMBOLS: usize = 100;
const RATE: f64 = 2_000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_run_reports_rate_latency_and_no_gaps() {
    let server = tickcast::test_support::start_server(|c| {
        c.apply(Overrides {
            symbols: Some(Symbols::Count(SYMBOLS)),
            rate: Some(RATE),
            ..Default::default()
        })
        .expect("valid feed overrides");
    })
    .await;
    let json = temp_path("smoke.json");
    let svg = temp_path("smoke.svg");
    let args: Vec<String> = [
        "--url",
        &server.ws_url(),
        "--conns",
        "20",
        "--per-conn",
        "5",
        "--topics",
        &SYMBOLS.to_string(),
        "--feed-rate",
        &RATE.to_string(),
        "--warmup",
        "1",
        "--duration",
        "3",
        "--server-pid",
        &std::process::id().to_string(),
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_loadgen(args).await;
    server.shutdown().await;
    let stdout = assert_success(&out);
    assert!(
        stdout.contains("latency p99"),
        "human table printed: {stdout}"
    );

    let report = read_report(&json);
    let sub = &report["subscribe"];
    let fast = &sub["fast"];
    assert_eq!(report["ramp"]["connected"], 20, "all connected: {report:#}");
    assert!(
        sub["messages"].as_u64().unwrap() > 0,
        "messages received: {sub:#}"
    );
    assert!(sub["msgs_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(fast["gaps"], 0, "fast clients see no gaps: {fast:#}");
    assert_eq!(fast["gaps_all_phases"], 0, "{fast:#}");
    assert_eq!(fast["reorders"], 0, "{fast:#}");
    assert_eq!(fast["unexpected_topic"], 0, "{fast:#}");
    assert_eq!(
        fast["baselines"], 100,
        "one baseline per subscribed topic: {fast:#}"
    );
    assert_eq!(fast["other_messages"]["subscribed"], 20, "{fast:#}");
    assert!(sub["slow"].is_null());
    let lat = &fast["latency_us"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().expect("p50"),
        lat["p99"].as_f64().expect("p99"),
        lat["max"].as_f64().expect("max"),
    );
    assert!(lat["samples"].as_u64().unwrap() > 0);
    assert!(
        p50 <= p99 && p99 <= max,
        "ordered: p50 {p50} p99 {p99} max {max}"
    );
    // Loose sanity on delivery: the feed offers RATE * 20 * 5 / SYMBOLS = 2,000 msgs/s; a
    // debug-built client sharing two cores with the server should still get most of it.
    let expected = sub["expected_msgs_per_s"]
        .as_f64()
        .expect("expected rate known");
    assert!((expected - 2_000.0).abs() < 1.0, "expected {expected}");
    let got = sub["msgs_per_s"].as_f64().unwrap();
    assert!(
        got > expected * 0.5 && got < expected * 1.5,
        "delivered {got} vs {expected}"
    );
    assert!(
        report["server"]["cpu_s"].as_f64().is_some(),
        "server /proc sampled"
    );
    assert!(!report["timeline"].as_array().unwrap().is_empty());
    assert_eq!(report["params"]["conns"], 20);

    let svg_text = std::fs::read_to_string(&svg).expect("plot written");
    assert!(svg_text.starts_with("<svg") && svg_text.contains("latency"));
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(svg);
}

/// A run against a server that does not publish the subscribed topics (the default feed quotes
/// ticker.AAPL, ticker.MSFT, ..., the load generator subscribes to ticker.SYM0000.. by default)
/// receives nothing: it must say so on stderr and exit non-zero, not report 0% and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_receives_no_ticks_fails_and_says_why() {
    // The default feed: 24 familiar tickers, none of them ticker.SYM*.
    let server = tickcast::test_support::start_server(|_| {}).await;
    let json = temp_path("no-ticks.json");
    let args: Vec<String> = [
        "--url",
        &server.ws_url(),
        "--conns",
        "3",
        "--per-conn",
        "2",
        "--warmup",
        "0.5",
        "--duration",
        "1",
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_loadgen(args).await;
    server.shutdown().await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a run without ticks must fail: {stderr}\n{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(
        lines[0].starts_with("error: received no ticks"),
        "says what happened: {stderr}"
    );
    assert!(
        lines[0].contains("check that the server publishes the subscribed topics")
            && lines[0].contains("ticker.SYM0000"),
        "says what to check: {stderr}"
    );
    // The table and the report are still written: they show what was tried.
    assert!(stdout.contains("connections"), "{stdout}");
    let report = read_report(&json);
    assert_eq!(report["ramp"]["connected"], 3, "{report:#}");
    assert_eq!(report["subscribe"]["messages"], 0, "{report:#}");
    let _ = std::fs::remove_file(json);
}
