//! Scale-out over NATS end to end, with a real `nats-server` (Debian's package) started on a free
//! loopback port: one ingest node (synthetic or TCP feed, NATS sink) and gateway nodes (NATS feed),
//! all real servers on 127.0.0.1:0 in this process, talked to by independent WebSocket clients.
//! Every wait is bounded and nothing asserts on timing.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::*;
use tickcast::config::Role;
use tokio::io::AsyncWriteExt;

/// The epoch of `topic` on `server` (its bus's view).
fn epoch_of(server: &RunningServer, topic: &str) -> String {
    server
        .running()
        .state()
        .bus
        .get(topic)
        .map(|t| t.epoch().as_str().to_string())
        .unwrap_or_default()
}

/// An ingest node: the synthetic feed over `symbols` at `rate`, every tick to NATS.
async fn ingest(nats: &NatsServer, symbols: &[&str], rate: f64) -> RunningServer {
    let url = nats.url();
    start_server(|c| {
        feed(c, symbols, rate);
        c.server.role = Role::Ingest;
        c.nats.url = url;
    })
    .await
}

/// An ingest node like [`ingest`] that also keeps the history stream (every tick for a minute).
async fn ingest_with_history(nats: &NatsServer, symbols: &[&str], rate: f64) -> RunningServer {
    let url = nats.url();
    start_server(|c| {
        feed(c, symbols, rate);
        c.server.role = Role::Ingest;
        c.nats.url = url;
        c.nats.history_ms = 60_000;
    })
    .await
}

/// Connects to `g`, subscribes to `topic` resuming after `since` in `epoch`, checks the ack says
/// recovered, and that exactly the next `n` seqs follow, each once and in order, ticks only.
async fn resume_exactly(g: &RunningServer, topic: &str, since: u64, epoch: &str, n: u64) -> Value {
    let mut c = Client::connect(g).await;
    c.send(json!({"op":"subscribe","topics":[topic],"since":{topic:{"seq":since,"epoch":epoch}},"id":2}))
        .await;
    let ack = c.next_of_type("subscribed").await;
    assert_eq!(ack["recovery"][topic]["recovered"], true, "{ack}");
    for expect in since + 1..=since + n {
        let v = c.next_json().await;
        assert_eq!(v["type"], "tick", "only ticks expected: {v}");
        assert_eq!(v["seq"].as_u64(), Some(expect), "{v}");
    }
    ack
}

/// (topic, seq) → (ts, last price) of the ticks a client received.
type Seen = BTreeMap<(String, u64), (u64, f64)>;

/// Reads ticks until every topic in `topics` reached at least `seq`; checks seq only goes up.
async fn collect(client: &mut Client, topics: &[&str], seq: u64) -> Seen {
    let mut seen = Seen::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    while topics
        .iter()
        .any(|t| last.get(*t).copied().unwrap_or(0) < seq)
    {
        let t = client.next_of_type("tick").await;
        let topic = t["topic"].as_str().expect("topic").to_string();
        let s = t["seq"].as_u64().expect("seq");
        let prev = last.insert(topic.clone(), s).unwrap_or(0);
        assert!(s > prev, "seq went from {prev} to {s} on {topic}");
        seen.insert(
            (topic, s),
            (
                t["ts"].as_u64().expect("ts"),
                t["last"].as_f64().expect("last"),
            ),
        );
    }
    seen
}

#[test]
fn shipped_gateway_config_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/scaleout/gateway.toml"
    );
    let c = tickcast::Config::from_file(std::path::Path::new(path)).expect("gateway.toml");
    assert!(matches!(
        c.resolve().expect("valid gateway.toml").feeds[0],
        tickcast_ingest::FeedConfig::Nats(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_gateways_receive_identical_streams() {
    let nats = NatsServer::start();
    let ingest = ingest(&nats, &["AAPL", "MSFT"], 400.0).await;
    let g1 = nats_gateway(&nats).await;
    let g2 = nats_gateway(&nats).await;
    let topics = ["ticker.AAPL", "ticker.MSFT"];
    let mut c1 = Client::connect(&g1).await;
    let mut c2 = Client::connect(&g2).await;
    c1.subscribe(&topics, 1).await;
    c2.subscribe(&topics, 1).await;
    let start = last_seq(&ingest, "ticker.AAPL").max(last_seq(&ingest, "ticker.MSFT"));
    let target = start + 100;
    let s1 = collect(&mut c1, &topics, target).await;
    let s2 = collect(&mut c2, &topics, target).await;
    // Both saw every seq from shortly after subscribing to the target, with the same ts and
    // price: one sequence, assigned once at ingest.
    let mut common = 0;
    for topic in topics {
        for seq in start + 1..=target {
            let key = (topic.to_string(), seq);
            let (a, b) = (s1.get(&key), s2.get(&key));
            assert!(
                a.is_some() && b.is_some(),
                "{topic} seq {seq}: {a:?} vs {b:?}"
            );
            assert_eq!(a, b, "{topic} seq {seq}");
            common += 1;
        }
    }
    assert_eq!(common, 200);
    // The ingest node's own cache agrees with what the gateways hold.
    wait_for_seq(&g1, "ticker.AAPL", target).await;
    assert!(last_seq(&ingest, "ticker.AAPL") >= last_seq(&g1, "ticker.AAPL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_gateway_serves_the_latest_tick_as_snapshot() {
    let nats = NatsServer::start();
    let url = nats.url();
    let feeds = feeds("[[feeds]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\nrequired = false\n");
    let ingest = start_server(|c| {
        c.feeds = feeds;
        c.server.role = Role::Ingest;
        c.nats.url = url;
    })
    .await;
    // An early gateway witnesses that the ticks went through NATS.
    let early = nats_gateway(&nats).await;
    let mut publisher = tcp_publisher(&ingest, "tcp").await;
    for (i, price) in [10.5, 11.25, 12.125].into_iter().enumerate() {
        let line = tick_line(
            "ticker.LATE",
            price - 0.5,
            price + 0.5,
            price,
            (i + 1) as f64,
        ) + "\n";
        publisher.write_all(line.as_bytes()).await.expect("write");
    }
    wait_for_seq(&early, "ticker.LATE", 3).await;

    let late = nats_gateway(&nats).await;
    let mut c = Client::connect(&late).await;
    c.subscribe(&["ticker.LATE"], 1).await;
    let t = c.next_of_type("tick").await;
    let cached = ingest
        .running()
        .state()
        .bus
        .get("ticker.LATE")
        .and_then(|t| t.last())
        .expect("ingest has the tick");
    let ingest_json: Value = serde_json::from_slice(cached.frame.payload()).expect("json");
    assert_eq!(t, ingest_json, "the snapshot is the ingest node's tick");
    assert_eq!(t["seq"], 3);
    assert_eq!(t["last"].as_f64(), Some(12.125));
    assert_eq!(t["size"].as_f64(), Some(3.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_recover_when_nats_restarts() {
    let mut nats = NatsServer::start();
    let ingest = ingest(&nats, &["AAPL"], 200.0).await;
    let g1 = nats_gateway(&nats).await;
    let g2 = nats_gateway(&nats).await;
    let mut clients = Vec::new();
    for g in [&g1, &g2] {
        let mut c = Client::connect(g).await;
        c.subscribe(&["ticker.AAPL"], 1).await;
        c.next_of_type("tick").await;
        clients.push(c);
    }

    nats.kill();
    for g in [&g1, &g2] {
        let stats = feed_stats(g, "nats");
        wait_until("the feed notices NATS is gone", || !stats.connected()).await;
        let (status, _, body) = http_get(g, "/readyz").await;
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    }
    // Clients are kept through the outage.
    for c in &mut clients {
        c.send(json!({"op":"ping","id":7})).await;
        assert_eq!(c.next_of_type("pong").await["id"], 7);
    }
    let before = last_seq(&g1, "ticker.AAPL");

    nats.spawn();
    for (g, c) in [&g1, &g2].into_iter().zip(&mut clients) {
        let stats = feed_stats(g, "nats");
        wait_until("the feed reconnects", || stats.connected()).await;
        assert!(stats.reconnects() >= 1);
        // Data flows again, past where it stopped.
        loop {
            let t = c.next_of_type("tick").await;
            if t["seq"].as_u64().unwrap() > before + 20 {
                break;
            }
        }
        let reconnects = metric(g, "tickcast_feed_reconnects_total{feed=\"nats\"}")
            .await
            .expect("reconnects metric");
        assert!(reconnects >= 1.0, "{reconnects}");
        eprintln!(
            "after the NATS restart: reconnects {reconnects}, upstream gaps {}, stale {}",
            stats.upstream_gaps(),
            g.running().state().bus.stale()
        );
    }
    drop(ingest);
}

/// Reads messages into `ledger` (which checks them) until `topic` is past seq `past`.
async fn read_past(c: &mut Client, ledger: &mut SeqLedger, topic: &str, past: u64) {
    while ledger.last(topic).unwrap_or(0) <= past {
        let v = c.next_json().await;
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A memory stream is gone when NATS restarts, but the seq space is not: the running ingest node
/// puts its epoch into the recreated stream when it leads again and continues every seq after one
/// unused one, so a gateway's client sees no reset, no seq going back and the loss announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_memory_stream_a_nats_restart_keeps_the_epoch_and_announces_the_loss() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let ingest = start_server(|c| {
        feed(c, &["AAPL"], 200.0);
        c.server.role = Role::Ingest;
        c.nats.url = url;
        c.nats.stream_storage = tickcast::config::StorageSpec::Memory;
    })
    .await;
    let epoch = ingest.running().state().bus.epoch().as_str().to_string();
    let g = nats_gateway(&nats).await;
    let mut c = Client::connect(&g).await;
    let ack = c.subscribe(&["ticker.AAPL"], 1).await;
    assert_eq!(ack["epochs"]["ticker.AAPL"], epoch.as_str(), "{ack}");
    let mut ledger = SeqLedger::default();
    read_past(&mut c, &mut ledger, "ticker.AAPL", 20).await;

    nats.kill();
    let stats = feed_stats(&g, "nats");
    wait_until("the feed notices NATS is gone", || !stats.connected()).await;
    let before = ledger.last("ticker.AAPL").unwrap_or(0);
    nats.spawn();
    read_past(&mut c, &mut ledger, "ticker.AAPL", before + 50).await;
    assert!(
        ledger.gaps.get("upstream").copied().unwrap_or(0) >= 1,
        "{:?}",
        ledger.gaps
    );
    assert_eq!(epoch_of(&g, "ticker.AAPL"), epoch, "the epoch is kept");
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moves_to_the_other_gateway_without_seq_going_back() {
    let nats = NatsServer::start();
    let _ingest = ingest(&nats, &["AAPL"], 200.0).await;
    let g1 = nats_gateway(&nats).await;
    let g2 = nats_gateway(&nats).await;
    let mut c = Client::connect(&g1).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    let mut last = 0;
    for _ in 0..20 {
        let s = c.next_of_type("tick").await["seq"].as_u64().unwrap();
        assert!(s > last);
        last = s;
    }
    g1.shutdown().await;
    c.expect_close().await;

    let mut c = Client::connect(&g2).await;
    c.subscribe(&["ticker.AAPL"], 1).await;
    // The snapshot may repeat the last tick seen (nothing newer yet), never an older one.
    let first = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    assert!(first >= last, "seq went back from {last} to {first}");
    let mut prev = first;
    for _ in 0..20 {
        let s = c.next_of_type("tick").await["seq"].as_u64().unwrap();
        assert!(s > prev, "seq went from {prev} to {s}");
        prev = s;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_what_it_missed_on_another_gateway_after_its_gateway_dies() {
    let nats = NatsServer::start();
    let ingest = ingest(&nats, &["AAPL"], 100.0).await;
    let g1 = nats_gateway(&nats).await;
    let g2 = nats_gateway(&nats).await;
    let topic = "ticker.AAPL";
    let epoch = ingest.running().state().bus.epoch().as_str().to_string();
    let mut c = Client::connect(&g1).await;
    let ack = c.subscribe(&[topic], 1).await;
    // The ingest tier's epoch, on every node: the gateways adopted it from the messages.
    assert_eq!(ack["epochs"][topic], epoch.as_str(), "{ack}");
    let mut last = 0;
    for _ in 0..20 {
        let s = c.next_of_type("tick").await["seq"].as_u64().unwrap();
        assert!(s > last, "seq went from {last} to {s}");
        last = s;
    }
    assert_eq!(epoch_of(&g2, topic), epoch);

    // Gateway 1 dies while ticks flow; the client misses some before it reaches gateway 2.
    g1.shutdown().await;
    c.expect_close().await;
    wait_for_seq(&g2, topic, last + 30).await;

    // Exactly the ticks after `last`, each once and in order, then live ones.
    let ack = resume_exactly(&g2, topic, last, &epoch, 40).await;
    assert_eq!(ack["epochs"][topic], epoch.as_str(), "{ack}");
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_after_the_ticks_recovers_them_for_a_client_from_the_stream() {
    let nats = NatsServer::start();
    let ingest = ingest_with_history(&nats, &["AAPL"], 20.0).await;
    let topic = "ticker.AAPL";
    let epoch = ingest.running().state().bus.epoch().as_str().to_string();
    let g1 = nats_gateway(&nats).await;
    let mut c = Client::connect(&g1).await;
    c.subscribe(&[topic], 1).await;
    let mut last = 0;
    for _ in 0..5 {
        let s = c.next_of_type("tick").await["seq"].as_u64().unwrap();
        assert!(s > last, "seq went from {last} to {s}");
        last = s;
    }
    g1.shutdown().await;
    c.expect_close().await;
    wait_for_seq(&ingest, topic, last + 10).await;

    // Gateway 2 did not exist while those ticks flowed: its history comes from JetStream.
    let g2 = nats_gateway(&nats).await;
    resume_exactly(&g2, topic, last, &epoch, 15).await;
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_gateway_reads_only_as_much_of_a_long_history_stream_as_its_history_keeps() {
    let nats = NatsServer::start();
    let topic = "ticker.AAPL";
    let ingest = ingest_with_history(&nats, &["AAPL"], 10.0).await;
    let epoch = ingest.running().state().bus.epoch().as_str().to_string();
    // The history stream then holds more than 10 per subject it has (ticks and heartbeats): the
    // gateway starts its read at the last 10 x subjects messages, not at the first.
    wait_for_seq(&ingest, topic, 40).await;
    let g = nats_gateway_with(&nats, |c| c.history.size = 10).await;
    let last = last_seq(&g, topic);
    assert!(last >= 40, "warmed up to {last}");
    resume_exactly(&g, topic, last - 3, &epoch, 6).await;
    drop(ingest);
}

/// An ingest node whose synthetic feed makes quotes and `market_rate` book changes per second (and
/// trades, candles) for AAPL.
async fn market_ingest(
    nats: &NatsServer,
    market_rate: f64,
    settings: impl FnOnce(&mut tickcast::Config),
) -> RunningServer {
    let url = nats.url();
    start_server(|c| {
        c.feeds = feeds(&format!(
            "[[feeds]]\nkind = \"synthetic\"\nname = \"market\"\nsymbols = [\"AAPL\"]\nrate = 10\nmarket_rate = {market_rate}\n"
        ));
        c.server.role = Role::Ingest;
        c.nats.url = url;
        settings(c);
    })
    .await
}

/// A gateway of every subject of the ingest tier (not only quotes).
async fn gateway_of_everything(nats: &NatsServer) -> RunningServer {
    let all = format!(
        "[[feeds]]\nkind = \"nats\"\nurl = \"{}\"\nsubjects = [\"tickcast.>\"]\n",
        nats.url()
    );
    nats_gateway_with(nats, |c| c.feeds = feeds(&all)).await
}

/// The next `n` messages of `kind` (`trade`, `bar`) `client` gets, by seq; checks each seq follows
/// the one before.
async fn series(client: &mut Client, kind: &str, n: usize) -> BTreeMap<u64, Value> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let t = client.next_of_type(kind).await;
        let seq = t["seq"].as_u64().expect("seq");
        if let Some((last, _)) = got.last_key_value() {
            assert_eq!(seq, last + 1, "{kind} seq jumped: {t}");
        }
        got.insert(seq, t);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_and_candles_reach_gateway_clients_with_the_ingest_nodes_seq_and_body() {
    let nats = NatsServer::start();
    let ingest = market_ingest(&nats, 1000.0, |_| {}).await;
    let g = gateway_of_everything(&nats).await;
    for (topic, kind, n) in [("trade.AAPL", "trade", 20), ("bar.1s.AAPL", "bar", 4)] {
        let mut at_source = Client::connect(&ingest).await;
        at_source.subscribe(&[topic], 1).await;
        let mut at_gateway = Client::connect(&g).await;
        at_gateway.subscribe(&[topic], 1).await;
        let source = series(&mut at_source, kind, n + n / 2).await;
        let served = series(&mut at_gateway, kind, n).await;
        // The same messages under the same seqs, as the ingest node made them.
        let common: Vec<_> = served.keys().filter(|s| source.contains_key(s)).collect();
        assert!(common.len() >= n / 2, "{topic}: {} in common", common.len());
        for seq in common {
            assert_eq!(served[seq], source[seq]);
        }
    }
    drop(ingest);
}

/// Reads `n` book messages (after a snapshot, every seq following the one before), each applied
/// to the test's own book and its checksum checked.
async fn checked_book(client: &mut Client, n: usize) -> BTreeMap<u64, Value> {
    let got = series(client, "book", n).await;
    let mut book = BookBuilder::default();
    for m in got.values() {
        book.apply(m).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(book.verified, n as u64);
    got
}

/// Checks that the deltas both have under one seq are the same message; returns how many.
fn deltas_in_common(source: &BTreeMap<u64, Value>, served: &BTreeMap<u64, Value>) -> usize {
    let delta = |m: &Value| m["snapshot"] == false;
    let mut n = 0;
    for (seq, m) in served {
        if let Some(o) = source.get(seq).filter(|o| delta(o) && delta(m)) {
            assert_eq!(m, o, "seq {seq}");
            n += 1;
        }
    }
    n
}

/// Clients of `book.AAPL` on the ingest node and on `gateway` each keep a checked book, and the
/// deltas both got under one seq are the same message (at least 50 of them).
async fn same_book_at_both(ingest: &RunningServer, gateway: &RunningServer) {
    let topic = "book.AAPL";
    let mut at_source = Client::connect(ingest).await;
    at_source.subscribe(&[topic], 1).await;
    let mut at_gateway = Client::connect(gateway).await;
    at_gateway.subscribe(&[topic], 1).await;
    let source = checked_book(&mut at_source, 150).await;
    let served = checked_book(&mut at_gateway, 100).await;
    assert!(
        deltas_in_common(&source, &served) >= 50,
        "too few deltas in common"
    );
}

/// Books cross NATS: a gateway keeps its own copy of each book from the ingest node's messages,
/// so its clients get a snapshot and then the ingest node's deltas under the same seqs, every
/// checksum matching. A gateway started while the book was long under way serves it from the
/// leader's periodic snapshot (`[nats] book_snapshot_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn books_reach_gateway_clients_with_the_ingest_nodes_seqs_and_a_late_gateway_resyncs() {
    let nats = NatsServer::start();
    let ingest = market_ingest(&nats, 200.0, |c| c.nats.book_snapshot_ms = 200).await;
    let early = gateway_of_everything(&nats).await;
    same_book_at_both(&ingest, &early).await;

    // A gateway that starts now, the book hundreds of deltas on: its client gets a snapshot (the
    // leader's latest, read from the stream, or the next one) and then the deltas.
    let late = gateway_of_everything(&nats).await;
    same_book_at_both(&ingest, &late).await;
    let resyncs = late.running().state().bus.book_resyncs();
    assert!(resyncs >= 1, "the late gateway took no snapshot: {resyncs}");
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_node_that_lost_its_stream_starts_a_new_epoch_that_gateways_adopt() {
    let mut nats = NatsServer::start();
    let topic = "ticker.AAPL";
    let first = ingest(&nats, &["AAPL"], 100.0).await;
    let old_epoch = first.running().state().bus.epoch().as_str().to_string();
    let g = nats_gateway(&nats).await;
    let mut c = Client::connect(&g).await;
    let ack = c.subscribe(&[topic], 1).await;
    assert_eq!(ack["epochs"][topic], old_epoch.as_str(), "{ack}");
    let mut last = 0;
    while last < 30 {
        last = c.next_of_type("tick").await["seq"].as_u64().unwrap();
    }

    // The ingest node stops, NATS loses its store, the ingest node starts again: no stream, so a
    // new epoch, and seqs from 1.
    first.shutdown().await;
    nats.kill_and_wipe();
    nats.spawn();
    let second = ingest(&nats, &["AAPL"], 100.0).await;
    let new_epoch = second.running().state().bus.epoch().as_str().to_string();
    assert_ne!(new_epoch, old_epoch);

    // The connected client is told, then gets the new seq space going forward.
    let mut prev = last;
    let reset = loop {
        let v = c.next_json().await;
        match v["type"].as_str() {
            Some("reset") => break v,
            Some("tick") => {
                let s = v["seq"].as_u64().unwrap();
                assert!(s > prev, "old epoch's seq went from {prev} to {s}");
                prev = s;
            }
            _ => {}
        }
    };
    assert_eq!(
        reset,
        json!({"type":"reset","topic":topic,"epoch":new_epoch})
    );
    let mut prev = 0;
    for _ in 0..20 {
        let s = c.next_of_type("tick").await["seq"].as_u64().unwrap();
        assert!(s > prev, "new epoch's seq went from {prev} to {s}");
        prev = s;
    }
    // Seqs of the new ingest node's space (what it has issued), not the old one's continued.
    assert!(prev <= last_seq(&second, topic), "{prev}");
    assert_eq!(epoch_of(&g, topic), new_epoch);
    assert!(
        metric(&g, "tickcast_resets_sent_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        metric(&g, "tickcast_epoch_resets_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );

    // A client coming back with the old epoch is told and gets the snapshot of the new one.
    let mut late = Client::connect(&g).await;
    late.send(json!({"op":"subscribe","topics":[topic],"since":{topic:{"seq":last,"epoch":old_epoch}},"id":3}))
        .await;
    let ack = late.next_of_type("subscribed").await;
    assert_eq!(ack["recovery"][topic]["recovered"], false, "{ack}");
    assert_eq!(ack["recovery"][topic]["reason"], "epoch_changed", "{ack}");
    assert_eq!(ack["epochs"][topic], new_epoch.as_str(), "{ack}");
    late.next_of_type("tick").await;
    drop(second);
}
