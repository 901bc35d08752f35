//! Books and trades (issue 20) at scale: short runs of the real `tickcast-loadgen` binary with
//! `--channel book` and `--channel trade` against a real in-process tickcast whose synthetic feed
//! makes thousands of book changes per second. Every connection keeps every book it subscribed
//! to and verifies every checksum (none may mismatch); slow trade readers lose trades only with
//! `dropped` gap markers, never silently. Loopback only; every wait is bounded.

use tickcast::config::Overrides;
use tickcast_ingest::synthetic::Symbols;

mod support;

use support::{assert_success, read_report, run_loadgen, temp_path};

/// A server whose synthetic feed quotes `symbols` (SYM0000..) with few ticks and makes
/// `market_rate` book changes per second over all of them (a fifth of them also trades).
async fn market_server(
    symbols: usize,
    market_rate: f64,
    slow: bool,
) -> tickcast::test_support::RunningServer {
    tickcast::test_support::start_server(|c| {
        c.feeds = tickcast::Config::from_toml(&format!(
            "[[feeds]]\nkind = \"synthetic\"\nname = \"market\"\nmarket_rate = {market_rate:?}\n"
        ))
        .expect("valid feed")
        .feeds;
        c.apply(Overrides {
            symbols: Some(Symbols::Count(symbols)),
            rate: Some(10.0),
            ..Default::default()
        })
        .expect("valid feed overrides");
        if slow {
            // Small buffers and queue, so a reader capped well below its rate meets the server's
            // queue within the run.
            c.server.socket_send_buffer_bytes = 4096;
            c.backpressure.max_queued_frames = 16;
        }
    })
    .await
}

/// Waits (bounded, 10 s) until the synthetic feed has published a book for every one of the
/// `symbols` (it starts books one by one as its changes reach them): the load generator's
/// `--topics-from-server` reads the list once.
async fn wait_for_books(server: &tickcast::test_support::RunningServer, symbols: usize) {
    let bus = &server.running().state().bus;
    let all = || {
        (0..symbols).all(|i| {
            bus.get(&format!("book.SYM{i:04}"))
                .is_some_and(|t| t.last().is_some())
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !all() {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed started all {symbols} books"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_run_verifies_thousands_of_checksums_without_a_mismatch() {
    // 20 symbols, 4,000 changes/s: 200 deltas/s per book; 20 connections x 2 books get
    // ~8,000 book messages/s between them.
    let server = market_server(20, 4_000.0, false).await;
    wait_for_books(&server, 20).await;
    let json = temp_path("book.json");
    let out = run_loadgen(args(&[
        "--url",
        &server.ws_url(),
        "--channel",
        "book",
        // The server's topics, filtered to the channel: book.SYM0000..book.SYM0019.
        "--topics-from-server",
        "--conns",
        "20",
        "--per-conn",
        "2",
        "--warmup",
        "1",
        "--duration",
        "3",
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
    ]))
    .await;
    server.shutdown().await;
    let stdout = assert_success(&out);
    assert!(stdout.contains("books verified"), "{stdout}");
    println!("{stdout}");
    let report = read_report(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["topics_total"], 20, "only book topics: {report:#}");
    let sub = &report["subscribe"];
    assert_eq!(sub["channel"], "book");
    let fast = &sub["fast"];
    assert_eq!(report["ramp"]["connected"], 20, "{report:#}");
    let verified = fast["books_verified"].as_u64().unwrap();
    assert!(
        verified >= 3_000,
        "thousands of book messages verified in the window: {fast:#}"
    );
    assert_eq!(fast["book_checksum_mismatches"], 0, "{fast:#}");
    assert_eq!(fast["book_errors"], 0, "{fast:#}");
    assert_eq!(fast["book_unverified"], 0, "{fast:#}");
    assert!(
        fast["book_snapshots"].as_u64().unwrap() >= 40,
        "a snapshot per book per connection: {fast:#}"
    );
    assert_eq!(
        fast["book_snapshots"].as_u64().unwrap(),
        40 + fast["book_resyncs"].as_u64().unwrap(),
        "{fast:#}"
    );
    assert_eq!(fast["unannounced_gaps_all_phases"], 0, "{fast:#}");
    assert_eq!(fast["reorders"], 0, "{fast:#}");
    assert_eq!(fast["unexpected_topic"], 0, "{fast:#}");
    assert_eq!(fast["baselines"], 40, "{fast:#}");
    assert!(fast["data_messages"]["book"].as_u64().unwrap() >= verified);
    assert!(
        fast["latency_us"]["samples"].as_u64().unwrap() > 0,
        "{fast:#}"
    );
    assert!(
        sub["books_verified_per_s"].as_f64().unwrap() > 1_000.0,
        "{sub:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_trade_readers_lose_trades_only_with_announced_drops() {
    // 4 symbols, 5,000 changes/s: 250 trades/s per topic, 500/s per connection of 2 topics;
    // slow readers take 50/s.
    let server = market_server(4, 5_000.0, true).await;
    let json = temp_path("trade.json");
    let out = run_loadgen(args(&[
        "--url",
        &server.ws_url(),
        "--channel",
        "trade",
        "--topics",
        "4",
        "--conns",
        "10",
        "--per-conn",
        "2",
        "--slow-share",
        "0.5",
        "--slow-mode",
        "cap",
        "--slow-rate",
        "50",
        "--slow-recv-buffer",
        "4096",
        "--market-rate",
        "5000",
        "--warmup",
        "1",
        "--duration",
        "4",
        "--no-progress",
        "--json-out",
        json.to_str().unwrap(),
    ]))
    .await;
    server.shutdown().await;
    let stdout = assert_success(&out);
    println!("{stdout}");
    let report = read_report(&json);
    let _ = std::fs::remove_file(&json);
    let sub = &report["subscribe"];
    assert_eq!(sub["channel"], "trade");
    assert!(
        sub["expected_msgs_per_s"].as_f64().unwrap() > 0.0,
        "{sub:#}"
    );
    for class in ["fast", "slow"] {
        let c = &sub[class];
        assert_eq!(c["connected"], 5, "{class}: {c:#}");
        assert!(c["trades"].as_u64().unwrap() > 0, "{class}: {c:#}");
        assert_eq!(c["unannounced_gaps_all_phases"], 0, "{class}: {c:#}");
        assert_eq!(c["trade_duplicates"], 0, "{class}: {c:#}");
        assert_eq!(c["reorders"], 0, "{class}: {c:#}");
        assert_eq!(
            c["gap_markers_all_phases"]["conflated"], 0,
            "trades are never conflated"
        );
        assert_eq!(c["unexpected_topic"], 0, "{class}: {c:#}");
    }
    let slow = &sub["slow"];
    let dropped = slow["trades_dropped_announced_all_phases"]
        .as_u64()
        .unwrap();
    assert!(
        dropped > 0,
        "slow readers were told about dropped trades: {slow:#}"
    );
    assert!(
        slow["gap_markers_all_phases"]["dropped"].as_u64().unwrap() > 0,
        "{slow:#}"
    );
    assert!(
        slow["disconnects"].as_object().unwrap().is_empty(),
        "{slow:#}"
    );
}
