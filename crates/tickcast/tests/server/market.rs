//! Order books, trades and candles end to end (issue 20): each book built once at ingest, its
//! snapshot and deltas checked by an independent book in the test (every checksum, thousands of
//! updates, also across a stall that ends in a resync); trades never conflated, their losses
//! announced; candles against a hand-computed OHLCV; book and trade lines from a TCP publisher,
//! with bad ones counted and skipped. Real server, real sockets, independent clients.

use crate::support::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// A synthetic feed making `market_rate` book changes per second over `symbols` (few quotes).
fn market_feed(c: &mut tickcast::Config, symbols: &[&str], market_rate: f64) {
    let list: Vec<String> = symbols.iter().map(|s| format!("{s:?}")).collect();
    c.feeds = feeds(&format!(
        "[[feeds]]\nkind = \"synthetic\"\nname = \"market\"\nsymbols = [{}]\nrate = 10\nmarket_rate = {market_rate}\n",
        list.join(", ")
    ));
}

/// Reads `client`'s messages into `books` (per book topic) and `ledger` until `enough` says so;
/// every book message must verify and every seq be accounted for.
async fn read_books<F: FnMut(&std::collections::HashMap<String, BookBuilder>) -> bool>(
    mut next: impl AsyncFnMut() -> Option<Value>,
    books: &mut std::collections::HashMap<String, BookBuilder>,
    ledger: &mut SeqLedger,
    log: &mut Vec<Value>,
    mut enough: F,
) {
    while !enough(books) {
        let Some(v) = next().await else {
            panic!("connection ended")
        };
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
        if v["type"] == "book" {
            let topic = v["topic"].as_str().expect("topic").to_string();
            books
                .entry(topic)
                .or_default()
                .apply(&v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        if v["type"] == "gap" || v["snapshot"] == true {
            log.push(v);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_verify_over_thousands_of_updates_and_a_stalled_client_is_resynced() {
    // A client that keeps up (default queue limits): a snapshot, then every delta, each checksum
    // right.
    let server = start_server(|c| market_feed(c, &["AAPL", "MSFT"], 2000.0)).await;
    let mut fast = Client::connect(&server).await;
    let ack = fast.subscribe(&["book.AAPL", "trade.AAPL"], 1).await;
    assert!(ack["epochs"]["book.AAPL"].is_string(), "{ack}");
    let (mut books, mut ledger, mut log) = Default::default();
    read_books(
        async || Some(fast.next_json().await),
        &mut books,
        &mut ledger,
        &mut log,
        |b| b.get("book.AAPL").is_some_and(|b| b.verified >= 3000),
    )
    .await;
    let aapl = &books["book.AAPL"];
    assert_eq!(aapl.snapshots, 1, "one snapshot, then deltas: {log:?}");
    assert_eq!(
        ledger.markers(),
        0,
        "a fast client loses nothing: {:?}",
        ledger.gaps
    );
    assert!(aapl.len().0 >= 10 && aapl.len().1 >= 10, "{:?}", aapl.len());

    server.shutdown().await;

    // A client that stops reading, on a server with small queues: its book deltas pile up, then
    // become one snapshot.
    let server = start_server(|c| {
        market_feed(c, &["AAPL", "MSFT"], 4000.0);
        c.backpressure.max_queued_frames = 32;
        c.server.socket_send_buffer_bytes = 4096;
    })
    .await;
    let mut slow = RawClient::connect_with(&server, Some(4096)).await;
    slow.send_text(r#"{"op":"subscribe","topics":["book.AAPL","book.MSFT","trade.AAPL"],"id":1}"#)
        .await;
    wait_until_async("a stalled book client is resynced", WAIT, || async {
        metric(
            &server,
            "tickcast_messages_dropped_total{reason=\"book_resync\"}",
        )
        .await
        .unwrap_or(0.0)
            > 0.0
    })
    .await;
    let (mut books, mut ledger, mut log) = Default::default();
    let mut next = async || loop {
        let (op, payload) = slow.read_frame().await?;
        if op == 0x1 {
            return Some(serde_json::from_slice::<Value>(&payload).expect("JSON"));
        }
    };
    read_books(&mut next, &mut books, &mut ledger, &mut log, |b| {
        ["book.AAPL", "book.MSFT"].iter().all(|t| {
            b.get(*t)
                .is_some_and(|b| b.snapshots >= 2 && b.verified >= 2000)
        })
    })
    .await;
    let resyncs: Vec<&Value> = log.iter().filter(|v| v["reason"] == "resync").collect();
    assert!(!resyncs.is_empty(), "{log:?}");
    for (i, v) in log.iter().enumerate() {
        if v["reason"] == "resync" {
            let next = &log[i + 1];
            assert_eq!(
                (&next["topic"], &next["snapshot"], next["seq"].as_u64()),
                (&v["topic"], &json!(true), v["to"].as_u64().map(|t| t + 1)),
                "a resync marker is followed by the snapshot at the next seq"
            );
        }
    }
    assert_eq!(
        ledger.gaps.get("conflated"),
        None,
        "books and trades are never conflated"
    );
    let m = metrics(&server).await;
    assert!(m.value("tickcast_gap_markers_total{reason=\"resync\"}") > 0.0);
    eprintln!(
        "slow client: {} messages, markers {:?}, {} seqs announced",
        ledger.ticks, ledger.gaps, ledger.announced
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_reach_a_fast_client_whole_and_a_stalled_one_with_announced_drops() {
    // A client that keeps up (default queue limits) gets every trade.
    let server = start_server(|c| market_feed(c, &["AAPL"], 5000.0)).await;
    let mut fast = Client::connect(&server).await;
    fast.subscribe(&["trade.AAPL"], 1).await;
    let mut ledger = SeqLedger::default();
    let mut first = None;
    while ledger.ticks < 1000 {
        let v = fast.next_json().await;
        if v["type"] == "trade" {
            first.get_or_insert(v["seq"].as_u64().expect("seq"));
            assert!(v["price"].is_string() && v["size"].is_string(), "{v}");
            assert!(v["side"] == "buy" || v["side"] == "sell", "{v}");
        }
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(ledger.markers(), 0, "{:?}", ledger.gaps);
    server.shutdown().await;

    // One that stops reading, with small queues, loses trades only with a marker.
    let server = start_server(|c| {
        market_feed(c, &["AAPL"], 5000.0);
        c.backpressure.max_queued_frames = 16;
        c.server.socket_send_buffer_bytes = 4096;
    })
    .await;
    let mut slow = RawClient::connect_with(&server, Some(4096)).await;
    slow.send_text(r#"{"op":"subscribe","topics":["trade.AAPL","ticker.AAPL"],"id":1}"#)
        .await;
    wait_until_async("trades dropped for the stalled client", WAIT, || async {
        metric(
            &server,
            "tickcast_messages_dropped_total{reason=\"event_overflow\"}",
        )
        .await
        .unwrap_or(0.0)
            > 0.0
    })
    .await;
    let target = last_seq(&server, "trade.AAPL") + 20;
    let mut ledger = SeqLedger::default();
    while ledger.last("trade.AAPL").is_none_or(|l| l < target) {
        let (op, payload) = slow.read_frame().await.expect("still served");
        if op == 0x1 {
            let v: Value = serde_json::from_slice(&payload).expect("JSON");
            ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert!(
        ledger.gaps.get("dropped").copied().unwrap_or(0) > 0,
        "{:?}",
        ledger.gaps
    );
    server.shutdown().await;
}

/// Trades of two one-second candles, as a publisher sends them; the second interval's trade
/// closes the first candle.
const T0: u64 = 1_700_000_000_000_000;

fn trade_line(price: &str, size: &str, side: &str, at_ms: u64) -> String {
    format!(
        r#"{{"type":"trade","topic":"trade.XBT","price":"{price}","size":"{size}","side":"{side}","ts":{}}}"#,
        T0 + at_ms * 1000
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candles_match_a_hand_computed_ohlcv_and_bad_lines_are_counted() {
    let server = start_server(|c| {
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"\nrequired = false",
        );
        c.market.bar_update_ms = 10;
    })
    .await;
    let mut client = Client::connect(&server).await;
    // Subscribed before the topics exist: they are requested, and served once the feed starts them.
    client.subscribe(&["bar.1s.XBT", "book.XBT"], 1).await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    let lines = [
        r#"{"type":"book","topic":"book.XBT","bids":[["99.5","1"]]}"#.to_string(), // delta before a snapshot
        r#"{"type":"book","topic":"book.XBT","snapshot":true,"bids":[["100.00","2"],["99.50","1.5"]],"asks":[["100.50","3"]]}"#.into(),
        r#"{"type":"book","topic":"book.XBT","bids":[["100.25","1"]],"asks":[["100.50","0"],["100.75","4"]]}"#.into(),
        r#"{"type":"book","topic":"book.XBT","bids":[["100.00","-1"]]}"#.into(), // negative size
        r#"{"type":"book","topic":"book.XBT","bids":[[100.25,"1"]]}"#.into(), // float price
        r#"{"type":"trade","topic":"trade.XBT","price":"abc","size":"1","side":"buy"}"#.into(), // not a decimal
        r#"{"type":"trade","topic":"book.XBT","price":"1","size":"1","side":"buy"}"#.into(), // wrong channel
        trade_line("100.10", "2", "buy", 100),
        trade_line("100.30", "1", "buy", 300),
        trade_line("99.90", "4", "sell", 500),
        trade_line("100.00", "3", "buy", 900),
        trade_line("100.20", "1", "sell", 1_200),
    ];
    publisher
        .write_all((lines.join("\n") + "\n").as_bytes())
        .await
        .expect("publish");

    let mut book = BookBuilder::default();
    let mut ledger = SeqLedger::default();
    let mut closed = None;
    while closed.is_none() || book.verified < 2 {
        let v = client.next_json().await;
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
        match v["type"].as_str() {
            Some("book") => book.apply(&v).unwrap_or_else(|e| panic!("{e}")),
            // The feed's clock may close the (historical) candle before its last trades arrive;
            // they then revise it, closed, with the same start.
            Some("bar") if v["closed"] == true && v["start"] == T0 && v["trades"] == 4 => {
                closed = Some(v)
            }
            _ => {}
        }
    }
    // By hand: open 100.10, high 100.30, low 99.90, close 100.00, volume 10,
    // vwap (200.20 + 100.30 + 399.60 + 300.00) / 10 = 100.01, 4 trades.
    let bar = closed.expect("closed bar");
    assert_eq!(
        (
            &bar["open"],
            &bar["high"],
            &bar["low"],
            &bar["close"],
            &bar["volume"],
            &bar["vwap"],
            &bar["trades"]
        ),
        (
            &json!("100.10"),
            &json!("100.30"),
            &json!("99.90"),
            &json!("100.00"),
            &json!("10"),
            &json!("100.01"),
            &json!(4)
        ),
        "{bar}"
    );
    assert_eq!(
        book.len(),
        (3, 1),
        "the valid delta applied, the bad ones not"
    );

    // A delta that would cross the book: refused, and the book is not trusted (nor served) until
    // the feed sends a snapshot; a delta meanwhile is refused too.
    let untrusted = [
        r#"{"type":"book","topic":"book.XBT","bids":[["101","1"]]}"#,
        r#"{"type":"book","topic":"book.XBT","bids":[["99","1"]]}"#,
    ];
    publisher
        .write_all((untrusted.join("\n") + "\n").as_bytes())
        .await
        .expect("publish");
    wait_until_async("the crossed book is marked", WAIT, || async {
        let (_, _, body) = http_get(&server, "/readyz").await;
        String::from_utf8_lossy(&body).contains(r#""untrusted_books":["book.XBT"]"#)
    })
    .await;
    assert_eq!(metric(&server, "tickcast_books_untrusted").await, Some(1.0));
    publisher
        .write_all(
            b"{\"type\":\"book\",\"topic\":\"book.XBT\",\"snapshot\":true,\"bids\":[[\"100\",\"1\"]],\"asks\":[[\"101\",\"1\"]]}\n",
        )
        .await
        .expect("publish");
    // The subscriber is told what it did not get, then has the whole book again.
    let gap = client.next_of_type("gap").await;
    ledger.observe(&gap).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (&gap["topic"], &gap["reason"]),
        (&json!("book.XBT"), &json!("upstream")),
        "{gap}"
    );
    let snapshot = client.next_of_type("book").await;
    ledger.observe(&snapshot).unwrap_or_else(|e| panic!("{e}"));
    book.apply(&snapshot).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((book.len(), &snapshot["snapshot"]), ((1, 1), &json!(true)));
    assert_eq!(metric(&server, "tickcast_books_untrusted").await, Some(0.0));

    let stats = feed_stats(&server, "pub");
    use tickcast_ingest::reject::RejectReason;
    assert_eq!(
        stats.parse_errors_for(RejectReason::BookRefused),
        3,
        "no snapshot, crossed, delta while untrusted"
    );
    assert_eq!(
        stats.parse_errors_for(RejectReason::BadNumber),
        3,
        "negative, float, abc"
    );
    assert_eq!(
        stats.parse_errors_for(RejectReason::BadTopic),
        1,
        "trade on a book topic"
    );
    let m = metrics(&server).await;
    assert_eq!(
        m.value("tickcast_feed_parse_errors_total{feed=\"pub\",reason=\"book_refused\"}"),
        3.0
    );
    assert_eq!(m.value("tickcast_book_refusals_total"), 3.0);
    server.shutdown().await;
}

/// A feed that sends only quotes still gets candles: each quote with a new last trade counts as a
/// trade of its `last` and `size`; a quote repeating it adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quote_only_symbols_get_candles_from_last_and_size() {
    let server = start_server(|c| {
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"\nrequired = false",
        );
        c.market.bar_update_ms = 10;
    })
    .await;
    let mut client = Client::connect(&server).await;
    client.subscribe(&["bar.1m.QQ"], 1).await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    let quotes = [
        tick_line("ticker.QQ", 9.9, 10.1, 10.0, 100.0),
        tick_line("ticker.QQ", 9.8, 10.1, 10.0, 100.0), // the same last trade: not counted
        tick_line("ticker.QQ", 10.9, 11.1, 11.0, 200.0),
        tick_line("ticker.QQ", 8.9, 9.1, 9.0, 300.0),
    ];
    publisher
        .write_all((quotes.join("\n") + "\n").as_bytes())
        .await
        .expect("publish");
    // Latest state per candle (a minute boundary may split them): 3 trades, 600 shares in all.
    let mut candles = std::collections::BTreeMap::new();
    while candles
        .values()
        .map(|b: &Value| b["trades"].as_u64().unwrap_or(0))
        .sum::<u64>()
        < 3
    {
        let v = client.next_of_type("bar").await;
        candles.insert(v["start"].as_u64().expect("start"), v);
    }
    let all: Vec<&Value> = candles.values().collect();
    let volume: u64 = all
        .iter()
        .map(|b| b["volume"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(volume, 600, "{all:?}");
    assert_eq!(all[0]["open"], "10", "{all:?}");
    assert_eq!(all[all.len() - 1]["close"], "9", "{all:?}");
    server.shutdown().await;
}
