//! End to end, protocol v2 gap markers: a short run of the bundled slow-consumers scenario (the
//! real `tickcast-loadgen` binary) against a real in-process tickcast configured with the
//! scenario's own `[server]` settings (small send buffer and queue), once with the `conflate`
//! policy and once with `drop_oldest`. The slow readers must reach the server's policy and get
//! gap markers of that policy's reason; no class may see a seq skipped without a marker.
//! Loopback only; every wait is bounded (the loadgen's own phases plus support's watchdog).

use tickcast::config::Overrides;
use tickcast_ingest::synthetic::Symbols;
use tickcast_loadgen::scenario::{self, ServerPolicy};

mod support;

use support::{assert_success, read_report, run_loadgen, temp_path};

/// Connections: fewer than the scenario's thousand, so a debug-built server and load generator
/// sharing two cores keep up; a tenth of them are slow readers, as in the scenario.
const CONNS: u64 = 40;

/// Runs the scenario for a few seconds against a server with its `[server]` settings and
/// `policy`; returns the report.
async fn run_slow_consumers(policy: ServerPolicy, name: &str) -> serde_json::Value {
    let mut sc = scenario::load("slow-consumers").expect("bundled scenario");
    sc.server.policy = Some(policy);
    // What run.sh hands the server, read by tickcast's own config parser.
    let file = tickcast::Config::from_toml(&sc.server_config()).expect("valid tickcast config");
    assert!(
        file.server.socket_send_buffer_bytes > 0,
        "a small send buffer"
    );
    let server = tickcast::test_support::start_server(|c| {
        c.server.socket_send_buffer_bytes = file.server.socket_send_buffer_bytes;
        c.backpressure = file.backpressure.clone();
        c.apply(Overrides {
            symbols: Some(Symbols::Count(sc.server.symbols)),
            rate: Some(sc.server.rate),
            ..Default::default()
        })
        .expect("valid feed overrides");
    })
    .await;
    let json = temp_path(&format!("{name}.json"));
    let args: Vec<String> = [
        "--scenario",
        "slow-consumers",
        "--url",
        &server.ws_url(),
        "--conns",
        &CONNS.to_string(),
        // The first marker reaches a slow reader once it has read what was ahead of it: the
        // kernel's buffers and the server's queue (~170 ticks at 50/s), about 4.5 s after it
        // subscribed; the window ends at about 7 s.
        "--warmup",
        "1",
        "--duration",
        "6",
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
    report
}

/// The checks both policies share; returns the slow class.
fn check_classes(report: &serde_json::Value) -> &serde_json::Value {
    assert_eq!(
        report["ramp"]["connected"], CONNS,
        "all connected: {report:#}"
    );
    let sub = &report["subscribe"];
    assert!(sub["messages"].as_u64().unwrap() > 0, "{sub:#}");
    for class in ["fast", "slow"] {
        let c = &sub[class];
        assert!(c.is_object(), "{class} class reported: {sub:#}");
        assert_eq!(
            c["unannounced_gaps_all_phases"], 0,
            "{class}: every skipped seq was announced by a gap marker: {c:#}"
        );
        assert_eq!(c["unannounced_gaps"], 0, "{class}: {c:#}");
        assert_eq!(c["reorders"], 0, "{class}: {c:#}");
        assert_eq!(c["marker_reorders"], 0, "{class}: {c:#}");
        assert_eq!(c["bad_markers"], 0, "{class}: {c:#}");
        assert_eq!(c["unexpected_topic"], 0, "{class}: {c:#}");
    }
    let slow = &sub["slow"];
    assert_eq!(slow["conns"], CONNS / 10, "{slow:#}");
    assert!(
        slow["disconnects"].as_object().unwrap().is_empty(),
        "slow readers stay connected: {slow:#}"
    );
    slow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflate_announces_every_gap_of_slow_readers() {
    let report = run_slow_consumers(ServerPolicy::Conflate, "slow-conflate").await;
    let slow = check_classes(&report);
    let markers = slow["gap_markers"]["conflated"].as_u64().unwrap();
    assert!(
        markers > 0,
        "slow readers got conflated markers in the window: {slow:#}"
    );
    assert!(slow["announced_seqs"]["conflated"].as_u64().unwrap() >= markers);
    assert!(slow["announced_gaps"].as_u64().unwrap() > 0, "{slow:#}");
    assert_eq!(slow["gap_markers"]["dropped"], 0, "{slow:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_announces_every_gap_of_slow_readers() {
    let report = run_slow_consumers(ServerPolicy::DropOldest, "slow-drop").await;
    let slow = check_classes(&report);
    let markers = slow["gap_markers"]["dropped"].as_u64().unwrap();
    assert!(
        markers > 0,
        "slow readers got dropped markers in the window: {slow:#}"
    );
    assert!(slow["announced_seqs"]["dropped"].as_u64().unwrap() >= markers);
    assert!(slow["announced_gaps"].as_u64().unwrap() > 0, "{slow:#}");
    assert_eq!(slow["gap_markers"]["conflated"], 0, "{slow:#}");
}
