//! Feeds end to end: ticks published over TCP, HTTP, replay and upstream WebSocket (another tickcast,
//! and local servers replaying Coinbase and Binance sample messages, over ws:// and wss://) reach a
//! real WebSocket subscriber through the real gateway with the right fields and seq; bad input is
//! counted per reason while the good input around it arrives; the upstream feed survives its server
//! being killed and restarted, and refuses a wss:// server whose certificate it does not trust.
//! Loopback only; every wait is bounded and nothing asserts on timing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

/// A raw HTTP/1.1 request: (status, body).
async fn http(
    server: &RunningServer,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    http_request(server.addr(), method, path, headers, body).await
}

/// Checks a received tick against the published values.
fn assert_tick(t: &Value, topic: &str, seq: u64, bid: f64, ask: f64, last: f64, size: f64) {
    assert_eq!(t["type"], "tick", "{t}");
    assert_eq!(t["topic"], topic, "{t}");
    assert_eq!(t["seq"], seq, "{t}");
    assert_eq!(t["bid"].as_f64(), Some(bid), "{t}");
    assert_eq!(t["ask"].as_f64(), Some(ask), "{t}");
    assert_eq!(t["last"].as_f64(), Some(last), "{t}");
    assert_eq!(t["size"].as_f64(), Some(size), "{t}");
    let ts = t["ts"].as_u64().expect("ts");
    assert!(
        (1_577_836_800_000_000..4_102_444_800_000_000).contains(&ts),
        "ts is ingest time in µs: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ticks_arrive_with_their_fields_and_seq() {
    let server = start_server(|c| {
        c.feeds = feeds("[[feeds]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"");
    })
    .await;
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.AAPL", "ticker.MSFT"], 1).await;
    let mut publisher = tcp_publisher(&server, "tcp").await;
    let mut lines = String::new();
    // Prices in whole cents, as a feed would quote them: they must arrive exactly as sent.
    let price = |cents: u64| cents as f64 / 100.0;
    for i in 0..5 {
        let c = 18_912 + i;
        let size = 100.0 * (i + 1) as f64;
        lines += &tick_line("ticker.AAPL", price(c), price(c + 2), price(c + 1), size);
        lines += "\n";
    }
    // Optional fields: upstream ts and seq are accepted, a numeric string price too.
    lines += r#"{"topic":"ticker.MSFT","bid":"415.5","ask":415.52,"last":415.51,"size":0.5,"ts":1763700000000000,"seq":7}"#;
    lines += "\r\n";
    publisher.write_all(lines.as_bytes()).await.unwrap();
    for i in 0..5u64 {
        let t = client.next_of_type("tick").await;
        let c = 18_912 + i;
        let size = 100.0 * (i + 1) as f64;
        assert_tick(
            &t,
            "ticker.AAPL",
            i + 1,
            price(c),
            price(c + 2),
            price(c + 1),
            size,
        );
    }
    let t = client.next_of_type("tick").await;
    assert_tick(&t, "ticker.MSFT", 1, 415.5, 415.52, 415.51, 0.5);
    assert_ne!(
        t["ts"], 1_763_700_000_000_000u64,
        "tickcast stamps its own ts"
    );
    assert_eq!(feed_stats(&server, "tcp").ticks_in(), 6);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_counted_per_reason_and_good_ones_around_them_arrive() {
    let server = start_server(|c| {
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"pub\"\nlisten = \"127.0.0.1:0\"\nmax_line_bytes = 200",
        );
    })
    .await;
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.X"], 1).await;
    let mut publisher = tcp_publisher(&server, "pub").await;
    let good = |n: u32| tick_line("ticker.X", n as f64, n as f64 + 1.0, n as f64 + 0.5, 1.0);
    let bad = [
        "{not json".to_string(),
        format!(r#"{{"topic":"ticker.X","pad":"{}"}}"#, "x".repeat(300)), // too long
        r#"{"topic":"ticker.X","bid":1,"ask":2,"last":1.5}"#.to_string(), // no size
        r#"{"topic":"ticker.X","bid":"abc","ask":2,"last":1.5,"size":1}"#.to_string(),
        r#"{"topic":"no channel","bid":1,"ask":2,"last":1.5,"size":1}"#.to_string(),
        "[1,2,3]".to_string(),
    ];
    // good, bad, good, bad, ... and the over-long line split over two writes.
    let mut n = 0;
    for b in &bad {
        n += 1;
        let mut text = format!("{}\n{}\n", good(n), b);
        if b.len() > 200 {
            let (a, rest) = text.split_at(text.len() - 100);
            publisher.write_all(a.as_bytes()).await.unwrap();
            publisher.flush().await.unwrap();
            text = rest.to_string();
        }
        publisher.write_all(text.as_bytes()).await.unwrap();
    }
    n += 1;
    publisher
        .write_all(format!("{}\n", good(n)).as_bytes())
        .await
        .unwrap();
    for i in 1..=n {
        let t = client.next_of_type("tick").await;
        assert_tick(
            &t,
            "ticker.X",
            i as u64,
            i as f64,
            i as f64 + 1.0,
            i as f64 + 0.5,
            1.0,
        );
    }
    // The connection survived all of it: more good lines still arrive.
    publisher
        .write_all(format!("{}\n", good(99)).as_bytes())
        .await
        .unwrap();
    let t = client.next_of_type("tick").await;
    assert_eq!(t["seq"], n as u64 + 1);
    assert_eq!(t["bid"], 99.0);

    let stats = feed_stats(&server, "pub");
    assert_eq!(stats.parse_errors(), bad.len() as u64);
    for (reason, count) in [
        ("bad_json", 2.0),
        ("too_long", 1.0),
        ("missing_field", 1.0),
        ("bad_number", 1.0),
        ("bad_topic", 1.0),
        ("topic_limit", 0.0),
    ] {
        let sample =
            format!("tickcast_feed_parse_errors_total{{feed=\"pub\",reason=\"{reason}\"}}");
        assert_eq!(metric(&server, &sample).await, Some(count), "{sample}");
    }
    assert_eq!(
        metric(&server, "tickcast_feed_ticks_total{feed=\"pub\"}").await,
        Some(n as f64 + 1.0)
    );
    let age = metric(&server, "tickcast_feed_last_tick_age_seconds{feed=\"pub\"}")
        .await
        .expect("last tick age exported");
    assert!(age >= 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publish_accepts_ndjson_and_json_and_reports_errors() {
    let server = start_server(|c| {
        c.feeds = feeds("[[feeds]]\nkind = \"http\"\nmax_body_bytes = 1024");
    })
    .await;
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.H"], 1).await;

    let body = format!(
        "{}\nnot a tick\n\n{}\n",
        tick_line("ticker.H", 1.25, 1.5, 1.375, 10.0),
        tick_line("ticker.H", 1.3, 1.5, 1.4, 20.0)
    );
    let (status, resp) = http(&server, "POST", "/publish", "", body.as_bytes()).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_slice(&resp).expect("json report");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 2, "{report}");
    assert_eq!(report["errors"][0]["reason"], "bad_json", "{report}");
    assert_tick(
        &client.next_of_type("tick").await,
        "ticker.H",
        1,
        1.25,
        1.5,
        1.375,
        10.0,
    );
    assert_tick(
        &client.next_of_type("tick").await,
        "ticker.H",
        2,
        1.3,
        1.5,
        1.4,
        20.0,
    );

    // One pretty-printed JSON tick.
    let pretty = "{\n  \"topic\": \"ticker.H\",\n  \"bid\": 2,\n  \"ask\": 3,\n  \"last\": 2.5,\n  \"size\": 5\n}";
    let (status, resp) = http(
        &server,
        "POST",
        "/publish",
        "Content-Type: application/json; charset=utf-8\r\n",
        pretty.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_tick(
        &client.next_of_type("tick").await,
        "ticker.H",
        3,
        2.0,
        3.0,
        2.5,
        5.0,
    );

    // Over the body limit: 413, counted.
    let (status, _) = http(&server, "POST", "/publish", "", &[b' '; 2000]).await;
    assert_eq!(status, 413);
    assert_eq!(
        metric(
            &server,
            "tickcast_limit_rejections_total{limit=\"max_body_bytes\"}"
        )
        .await,
        Some(1.0)
    );
    let (status, _) = http(&server, "GET", "/publish", "", b"").await;
    assert_eq!(status, 405);
    // POST stays refused everywhere else.
    let (status, _) = http(&server, "POST", "/topics", "", b"{}").await;
    assert_eq!(status, 405);
    assert_eq!(
        metric(
            &server,
            "tickcast_feed_parse_errors_total{feed=\"http\",reason=\"bad_json\"}"
        )
        .await,
        Some(1.0)
    );
    server.shutdown().await;

    // Without an http feed there is no /publish.
    let plain = start_server(|c| feed(c, &["AAPL"], 10.0)).await;
    let (status, _) = http(&plain, "POST", "/publish", "", b"{}").await;
    assert_eq!(status, 404);
    plain.shutdown().await;
}

/// Three ticks 20 ms apart in file time, `rows` formats each.
fn replay_rows(row: impl Fn(u64, &str, f64) -> String) -> String {
    let base = 1_763_735_400_000_000u64;
    [
        (0, "ticker.R", 10.5),
        (20_000, "ticker.R", 10.75),
        (40_000, "ticker.R", 11.0),
    ]
    .iter()
    .map(|(dt, topic, price)| row(base + dt, topic, *price))
    .collect::<Vec<_>>()
    .join("\n")
}

/// A looping replay: the subscriber sees the file's prices in order, with seq +1 each time.
async fn check_looping_replay(path: &Path, format: &str) {
    let toml = format!(
        "[[feeds]]\nkind = \"replay\"\nname = \"r\"\npath = {:?}\nformat = \"{format}\"\nspeed = 1\nloop = true",
        path.display().to_string()
    );
    let server = start_server(|c| c.feeds = feeds(&toml)).await;
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.R"], 1).await;
    let prices = [10.5, 10.75, 11.0];
    let first = client.next_of_type("tick").await;
    let mut at = prices
        .iter()
        .position(|p| first["last"].as_f64() == Some(*p))
        .expect("a price of the file");
    let mut seq = first["seq"].as_u64().unwrap();
    // Seven more: the file plays around more than twice.
    for _ in 0..7 {
        let t = client.next_of_type("tick").await;
        at = (at + 1) % prices.len();
        seq += 1;
        assert_tick(
            &t,
            "ticker.R",
            seq,
            prices[at] - 0.01,
            prices[at] + 0.01,
            prices[at],
            100.0,
        );
    }
    assert!(feed_stats(&server, "r").connected());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_plays_jsonl_and_csv_files_in_order_and_loops() {
    let jsonl = replay_rows(|ts, topic, p| {
        format!(
            r#"{{"ts":{ts},"topic":"{topic}","bid":{},"ask":{},"last":{p},"size":100}}"#,
            p - 0.01,
            p + 0.01
        )
    });
    let dir = TempDir::new("replay");
    check_looping_replay(&dir.write("r.jsonl", &jsonl), "jsonl").await;
    let csv = format!(
        "ts,topic,bid,ask,last,size\n{}\n",
        replay_rows(|ts, topic, p| format!("{ts},{topic},{},{},{p},100", p - 0.01, p + 0.01))
    );
    check_looping_replay(&dir.write("r.csv", &csv), "csv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_replay_at_full_speed_publishes_every_good_row() {
    let mut text = String::new();
    for i in 1..=500 {
        text += &format!(
            "{{\"ts\":{},\"topic\":\"ticker.F{}\",\"bid\":{i},\"ask\":{},\"last\":{i},\"size\":1}}\n",
            1_763_735_400_000_000u64 + i,
            i % 5,
            i + 1
        );
        if i % 100 == 0 {
            text += "{\"ts\":1,\"topic\":\"ticker.F0\"}\n";
        }
    }
    let dir = TempDir::new("oneshot");
    let path = dir.write("oneshot.jsonl", &text);
    let toml = format!(
        "[[feeds]]\nkind = \"replay\"\nname = \"once\"\npath = {:?}\nspeed = 0\nrequired = false",
        path.display().to_string()
    );
    let server = start_server(|c| c.feeds = feeds(&toml)).await;
    let stats = feed_stats(&server, "once");
    wait_until("the replay finished", || {
        stats.ticks_in() == 500 && !stats.connected()
    })
    .await;
    assert_eq!(stats.parse_errors(), 5);
    for k in 0..5 {
        assert_eq!(last_seq(&server, &format!("ticker.F{k}")), 100);
    }
    // A finished optional feed does not make the server unready.
    let (status, _, _) = http_get(&server, "/readyz").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_required_feeds() {
    let server = start_server(|c| {
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"needed\"\nlisten = \"127.0.0.1:0\"\n\
             [[feeds]]\nkind = \"tcp\"\nname = \"optional\"\nlisten = \"127.0.0.1:0\"\nrequired = false",
        );
    })
    .await;
    let (status, _, body) = http_get(&server, "/readyz").await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["reasons"],
        serde_json::json!(["feed needed is not connected"])
    );
    let _publisher = tcp_publisher(&server, "needed").await;
    let stats = feed_stats(&server, "needed");
    wait_until("the publisher is seen", || stats.connected()).await;
    let (status, _, _) = http_get(&server, "/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&server, "tickcast_feed_up{feed=\"needed\"}").await,
        Some(1.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_cannot_start_fails_startup_naming_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap();
    let base = || {
        let mut c = tickcast::Config::default();
        c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.server.workers = 1;
        c
    };
    let mut c = base();
    c.feeds = feeds(&format!(
        "[[feeds]]\nkind = \"tcp\"\nname = \"in\"\nlisten = \"{port}\""
    ));
    let err = tickcast::start(c.resolve().expect("valid config"))
        .await
        .err()
        .expect("busy port fails startup");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("feed in") && msg.contains(&port.to_string()),
        "{msg}"
    );

    let mut c = base();
    c.feeds =
        feeds("[[feeds]]\nkind = \"replay\"\nname = \"day\"\npath = \"/nonexistent/day.jsonl\"");
    let err = tickcast::start(c.resolve().expect("valid config"))
        .await
        .err()
        .expect("missing file fails startup");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("feed day") && msg.contains("/nonexistent/day.jsonl"),
        "{msg}"
    );

    let mut c = base();
    c.feeds = feeds(
        "[[feeds]]\nkind = \"upstream\"\nname = \"tls\"\nurl = \"wss://127.0.0.1:1/ws\"\n\
         subscribe = [\"a\"]\nca_file = \"/nonexistent/ca.pem\"",
    );
    let err = tickcast::start(c.resolve().expect("valid config"))
        .await
        .err()
        .expect("missing ca_file fails startup");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("feed tls") && msg.contains("ca_file /nonexistent/ca.pem"),
        "{msg}"
    );
}

/// Starts a tickcast with a TCP feed named `src` on `listen` (port 0 = any).
async fn start_source(listen: SocketAddr) -> RunningServer {
    start_server(move |c| {
        c.server.listen = listen;
        c.feeds = feeds(
            "[[feeds]]\nkind = \"tcp\"\nname = \"src\"\nlisten = \"127.0.0.1:0\"\nrequired = false",
        );
    })
    .await
}

/// Starts a tickcast whose only feed is an upstream feed `up` with these settings.
async fn start_relay(settings: String) -> RunningServer {
    let toml = format!(
        "[[feeds]]\nkind = \"upstream\"\nname = \"up\"\nbackoff_min_ms = 20\nbackoff_max_ms = 200\n{settings}"
    );
    start_server(move |c| c.feeds = feeds(&toml)).await
}

/// Publishes AAPL ticks number `ticks` (tick i: bid 100 + i, ask 101 + i, last 100.5, size i).
async fn publish_aapl(publisher: &mut TcpStream, ticks: std::ops::RangeInclusive<u64>) {
    for i in ticks {
        let i = i as f64;
        let line = tick_line("ticker.AAPL", 100.0 + i, 101.0 + i, 100.5, i);
        publisher
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
}

/// Checks that `t` is AAPL tick number `i` of [`publish_aapl`], with seq `i`.
fn assert_aapl_tick(t: &Value, i: u64) {
    let f = i as f64;
    assert_tick(t, "ticker.AAPL", i, 100.0 + f, 101.0 + f, 100.5, f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_tier_republishes_another_tickcast_and_survives_its_restart() {
    let source = start_source(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let source_addr = source.addr();
    let relay = start_relay(format!(
        "url = \"ws://{source_addr}/ws\"\nadapter = \"tickcast\"\nsubscribe = [\"ticker.AAPL\"]"
    ))
    .await;
    let mut client = Client::connect(&relay).await;
    client.subscribe(&["ticker.AAPL"], 1).await;
    let subscribed = |s: &RunningServer| {
        s.running()
            .state()
            .bus
            .get("ticker.AAPL")
            .is_some_and(|t| t.has_subscribers())
    };
    wait_until("the relay subscribed upstream", || subscribed(&source)).await;

    let mut publisher = tcp_publisher(&source, "src").await;
    publish_aapl(&mut publisher, 1..=3).await;
    for i in 1..=3 {
        assert_aapl_tick(&client.next_of_type("tick").await, i);
    }
    let up = feed_stats(&relay, "up");
    assert!(up.connected());

    // Kill the source, then start a new one on the same port.
    drop(publisher);
    source.shutdown().await;
    wait_until("the relay saw the loss", || !up.connected()).await;
    let (status, _, _) = http_get(&relay, "/readyz").await;
    assert_eq!(
        status, 503,
        "a required upstream that is down makes the relay unready"
    );
    let source = start_source(source_addr).await;
    wait_until("the relay resubscribed", || subscribed(&source)).await;
    assert!(up.reconnects() >= 1);

    let mut publisher = tcp_publisher(&source, "src").await;
    publish_aapl(&mut publisher, 4..=5).await;
    // The relay's own seq goes on without a jump; the restarted source's seq went back to 1,
    // which the relay counts as an upstream discontinuity.
    for i in 4..=5 {
        assert_aapl_tick(&client.next_of_type("tick").await, i);
    }
    assert_eq!(up.upstream_gaps(), 1);
    assert_eq!(
        metric(&relay, "tickcast_feed_upstream_gaps_total{feed=\"up\"}").await,
        Some(1.0)
    );
    assert!(metric(&relay, "tickcast_feed_reconnects_total{feed=\"up\"}").await >= Some(1.0));
    relay.shutdown().await;
    source.shutdown().await;
}

/// A local WebSocket server that replays fixture messages to each connection, after recording the
/// client's subscribe message. With `gate`, it waits for the test's go before sending. With a TLS
/// acceptor it serves wss:// and counts the TLS handshakes that failed (a client refusing its
/// certificate).
struct FixtureServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    subscribes: tokio::sync::mpsc::UnboundedReceiver<String>,
    tls_failures: Arc<AtomicUsize>,
}

impl FixtureServer {
    async fn start(addr: SocketAddr, messages: Vec<String>, gate: Option<Arc<Notify>>) -> Self {
        Self::start_with(addr, messages, gate, None).await
    }

    async fn start_with(
        addr: SocketAddr,
        messages: Vec<String>,
        gate: Option<Arc<Notify>>,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fixture server");
        let addr = listener.local_addr().unwrap();
        let (tx, subscribes) = tokio::sync::mpsc::unbounded_channel();
        let tls_failures = Arc::new(AtomicUsize::new(0));
        let failures = tls_failures.clone();
        let task = tokio::spawn(async move {
            // One connection at a time, like an exchange that serves this client.
            while let Ok((stream, _)) = listener.accept().await {
                let Some(acceptor) = &tls else {
                    Self::serve(stream, &messages, &tx, gate.as_deref()).await;
                    continue;
                };
                match tokio::time::timeout(WAIT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => Self::serve(stream, &messages, &tx, gate.as_deref()).await,
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Self {
            addr,
            task,
            subscribes,
            tls_failures,
        }
    }

    /// One client: WebSocket handshake, its subscribe, the messages, then hold until it leaves.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        messages: &[String],
        subscribes: &tokio::sync::mpsc::UnboundedSender<String>,
        gate: Option<&Notify>,
    ) {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let _ = subscribes.send(t.to_string());
            }
            _ => return,
        }
        if let Some(g) = gate {
            g.notified().await;
        }
        for m in messages {
            if ws.send(Message::text(m.clone())).await.is_err() {
                return;
            }
        }
        // Hold the connection until the client leaves (or the task is aborted).
        while let Some(Ok(_)) = ws.next().await {}
    }

    /// Kills the server: listener and connection close at once.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn fixture(name: &str) -> Vec<String> {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_str().expect(key).parse().expect(key)
}

/// The coinbase fixture replayed to feed `up` of `relay`: every well-formed ticker message reaches
/// `client` in order, each topic with its own seq from 1; the truncated line is counted as bad
/// JSON and the out-of-order sequence as an upstream discontinuity.
/// What the coinbase adapter sends to subscribe to ETH-USD and BTC-USD.
const COINBASE_SUBSCRIBE: &str =
    r#"{"type":"subscribe","product_ids":["ETH-USD","BTC-USD"],"channels":["ticker"]}"#;

/// Starts a relay whose upstream feed (`url_and_options`, TOML lines) subscribes to ETH-USD and
/// BTC-USD at `exchange`, opens the gate once the exchange saw the Coinbase subscribe, and checks
/// the whole fixture reaches a client of the relay.
async fn coinbase_relay(
    exchange: &mut FixtureServer,
    gate: &Notify,
    messages: &[String],
    url_and_options: String,
) -> (RunningServer, Client) {
    let relay = start_relay(format!(
        "{url_and_options}\nadapter = \"coinbase\"\nsubscribe = [\"ETH-USD\", \"BTC-USD\"]"
    ))
    .await;
    let mut client = Client::connect(&relay).await;
    client
        .subscribe(&["ticker.ETH-USD", "ticker.BTC-USD"], 1)
        .await;
    let sub = tokio::time::timeout(WAIT, exchange.subscribes.recv())
        .await
        .expect("subscribe in time")
        .expect("a subscribe message");
    assert_eq!(sub, COINBASE_SUBSCRIBE);
    gate.notify_one();
    assert_coinbase_fixture_arrives(&mut client, &relay, messages).await;
    (relay, client)
}

async fn assert_coinbase_fixture_arrives(
    client: &mut Client,
    relay: &RunningServer,
    messages: &[String],
) {
    let tickers: Vec<Value> = messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|v| v["type"] == "ticker")
        .collect();
    assert_eq!(tickers.len(), 4);
    let mut seqs = std::collections::HashMap::new();
    for expected in &tickers {
        let topic = format!("ticker.{}", expected["product_id"].as_str().unwrap());
        let seq = seqs.entry(topic.clone()).or_insert(0u64);
        *seq += 1;
        let t = client.next_of_type("tick").await;
        assert_tick(
            &t,
            &topic,
            *seq,
            num(expected, "best_bid"),
            num(expected, "best_ask"),
            num(expected, "price"),
            num(expected, "last_size"),
        );
    }
    let up = feed_stats(relay, "up");
    assert_eq!(
        up.parse_errors_for(tickcast_ingest::RejectReason::BadJson),
        1
    );
    assert_eq!(up.upstream_gaps(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_ticker_messages_are_republished_and_the_feed_survives_a_restart() {
    let messages = fixture("coinbase_ticker.jsonl");
    let gate = Arc::new(Notify::new());
    let mut exchange = FixtureServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        messages.clone(),
        Some(gate.clone()),
    )
    .await;
    let url = format!("url = \"ws://{}/ws\"", exchange.addr);
    let (relay, mut client) = coinbase_relay(&mut exchange, &gate, &messages, url).await;
    let up = feed_stats(&relay, "up");

    // Kill the exchange and restart it on the same port; the feed reconnects and resubscribes.
    let addr = exchange.addr;
    exchange.kill().await;
    wait_until("the feed saw the loss", || !up.connected()).await;
    let restarted = vec![messages[5].replace("1285.31", "1290.01")];
    let mut exchange = FixtureServer::start(addr, restarted, None).await;
    let sub2 = tokio::time::timeout(WAIT, exchange.subscribes.recv())
        .await
        .expect("resubscribe in time")
        .unwrap();
    assert_eq!(sub2, COINBASE_SUBSCRIBE);
    let t = client.next_of_type("tick").await;
    assert_eq!(t["topic"], "ticker.ETH-USD");
    assert_eq!(t["last"], 1290.01);
    assert_eq!(t["seq"], 4, "seq continues across the reconnect");
    assert!(up.connected());
    assert!(up.reconnects() >= 1);
    relay.shutdown().await;
    exchange.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_book_ticker_and_trade_messages_merge_into_ticks() {
    let messages = fixture("binance_streams.jsonl");
    let gate = Arc::new(Notify::new());
    let mut exchange = FixtureServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        messages,
        Some(gate.clone()),
    )
    .await;
    let relay = start_relay(format!(
        "url = \"ws://{}/ws\"\nadapter = \"binance\"\nsubscribe = [\"BNBUSDT\"]",
        exchange.addr
    ))
    .await;
    let mut client = Client::connect(&relay).await;
    client.subscribe(&["ticker.BNBUSDT"], 1).await;
    let sub = tokio::time::timeout(WAIT, exchange.subscribes.recv())
        .await
        .expect("subscribe in time")
        .unwrap();
    assert_eq!(
        sub,
        r#"{"method":"SUBSCRIBE","params":["bnbusdt@bookTicker","bnbusdt@trade"],"id":1}"#
    );
    gate.notify_one();
    // Book alone publishes nothing; then trade, book update, wrapped trade each publish the merge.
    let t = client.next_of_type("tick").await;
    assert_tick(&t, "ticker.BNBUSDT", 1, 25.3519, 25.3652, 25.36, 100.0);
    let t = client.next_of_type("tick").await;
    assert_tick(&t, "ticker.BNBUSDT", 2, 25.352, 25.365, 25.36, 100.0);
    // Trade 12348 after 12345: two trades lost upstream. Their two seqs stay unused, and the
    // client is told before the next tick. The kline event is unsupported input.
    assert_eq!(
        client.next_json().await,
        json!({"type":"gap","topic":"ticker.BNBUSDT","from":3,"to":4,"reason":"upstream"})
    );
    let t = client.next_of_type("tick").await;
    assert_tick(&t, "ticker.BNBUSDT", 5, 25.352, 25.365, 25.361, 3.5);
    let up = feed_stats(&relay, "up");
    assert_eq!(up.upstream_gaps(), 1);
    assert_eq!(
        metric(
            &relay,
            "tickcast_feed_parse_errors_total{feed=\"up\",reason=\"unsupported\"}"
        )
        .await,
        Some(1.0)
    );
    relay.shutdown().await;
    exchange.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_over_wss_trusting_a_ca_file_republishes_coinbase_ticks() {
    let cert = TestCert::new("wss-ca");
    let messages = fixture("coinbase_ticker.jsonl");
    let gate = Arc::new(Notify::new());
    let mut exchange = FixtureServer::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        messages.clone(),
        Some(gate.clone()),
        Some(cert.acceptor()),
    )
    .await;
    // By name: the certificate is checked against "localhost", which is also the SNI.
    let url = format!(
        "url = \"wss://localhost:{}/ws\"\nca_file = {:?}\nconnect_timeout_ms = 5000",
        exchange.addr.port(),
        cert.cert_path().display().to_string()
    );
    let (relay, _client) = coinbase_relay(&mut exchange, &gate, &messages, url).await;
    let up = feed_stats(&relay, "up");
    assert!(up.connected());
    assert_eq!(exchange.tls_failures.load(Ordering::Relaxed), 0);
    assert_eq!(
        metric(&relay, "tickcast_feed_up{feed=\"up\"}").await,
        Some(1.0)
    );
    relay.shutdown().await;
    exchange.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_over_wss_refuses_an_untrusted_certificate_and_keeps_retrying() {
    // The server's self-signed certificate is in no trusted store: the feed trusts the system's
    // roots plus another self-signed certificate (so the test does not depend on the machine
    // having system roots).
    let cert = TestCert::new("wss-untrusted");
    let other_ca = TestCert::new("wss-other-ca");
    let mut exchange = FixtureServer::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        fixture("coinbase_ticker.jsonl"),
        None,
        Some(cert.acceptor()),
    )
    .await;
    let relay = start_relay(format!(
        "url = \"wss://127.0.0.1:{}/ws\"\nadapter = \"coinbase\"\nsubscribe = [\"ETH-USD\"]\nca_file = {:?}",
        exchange.addr.port(),
        other_ca.cert_path().display().to_string()
    ))
    .await;
    let up = feed_stats(&relay, "up");
    // Each attempt reaches the server and is refused during the TLS handshake; after the first,
    // each one counts as a reconnect.
    wait_until("three refused TLS handshakes", || {
        exchange.tls_failures.load(Ordering::Relaxed) >= 3 && up.reconnects() >= 2
    })
    .await;
    assert!(!up.connected());
    assert_eq!(up.ticks_in(), 0);
    assert_eq!(
        last_seq(&relay, "ticker.ETH-USD"),
        0,
        "no tick was published"
    );
    assert!(
        exchange.subscribes.try_recv().is_err(),
        "no WebSocket session was opened over the refused TLS"
    );
    assert!(metric(&relay, "tickcast_feed_reconnects_total{feed=\"up\"}").await >= Some(2.0));
    assert_eq!(
        metric(&relay, "tickcast_feed_up{feed=\"up\"}").await,
        Some(0.0)
    );
    let (status, _, _) = http_get(&relay, "/readyz").await;
    assert_eq!(
        status, 503,
        "a required upstream that cannot connect is not ready"
    );
    relay.shutdown().await;
    exchange.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_clients_make_up_never_lock_out_a_feed_and_go_away_unused() {
    let server = start_server(|c| {
        c.feeds = feeds("[[feeds]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"");
        c.limits.max_topics = 3;
        c.limits.requested_topic_grace_ms = 0;
        // Only the quotes' own topics count here; candles would take slots of the limit.
        c.market.bars_from_quotes = false;
    })
    .await;
    let bus = server.running().state().bus.clone();
    // A client holds six made-up topics: they wait for a feed, and say so in the ack.
    let junk_names: Vec<String> = (0..6).map(|i| format!("ticker.JUNK{i}")).collect();
    let junk_refs: Vec<&str> = junk_names.iter().map(String::as_str).collect();
    let mut junk = Client::connect(&server).await;
    let ack = junk.subscribe(&junk_refs, 1).await;
    assert_eq!(ack["pending"], serde_json::json!(junk_names), "{ack}");

    // The feed still creates its three topics (one of them subscribed before it existed)...
    let mut client = Client::connect(&server).await;
    client.subscribe(&["ticker.NEWIPO"], 2).await;
    let mut publisher = tcp_publisher(&server, "tcp").await;
    let lines: String = ["ticker.A", "ticker.B", "ticker.NEWIPO", "ticker.D"]
        .iter()
        .map(|t| tick_line(t, 1.0, 1.5, 1.25, 1.0) + "\n")
        .collect();
    publisher.write_all(lines.as_bytes()).await.unwrap();
    let t = client.next_of_type("tick").await;
    assert_eq!(
        (t["topic"].as_str(), t["seq"].as_u64()),
        (Some("ticker.NEWIPO"), Some(1))
    );
    // ...and only its own limit refuses its fourth.
    let stats = feed_stats(&server, "tcp");
    wait_until("the fourth topic is refused", || stats.parse_errors() == 1).await;
    assert_eq!(
        stats.parse_errors_for(tickcast_ingest::RejectReason::TopicLimit),
        1
    );
    assert_eq!(last_seq(&server, "ticker.A"), 1);

    // /topics shows topics with data only, all in the tick's shape.
    let (_, _, body) = http_get(&server, "/topics").await;
    let listed: Value = serde_json::from_slice(&body).expect("json");
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| {
            assert_eq!(t["type"], "tick", "{t}");
            t["topic"].as_str().expect("topic")
        })
        .collect();
    assert_eq!(names, ["ticker.A", "ticker.B", "ticker.NEWIPO"]);

    // The made-up topics go once their client has left.
    assert_eq!(bus.requested_topic_count(), 6);
    drop(junk);
    wait_until("made-up topics are reaped", || {
        bus.requested_topic_count() == 0 && bus.topic_count() == 3
    })
    .await;
    assert_eq!(
        metric(&server, "tickcast_topics_reaped_total").await,
        Some(6.0)
    );
    assert_eq!(
        metric(&server, "tickcast_topics_requested").await,
        Some(0.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_of_made_up_subscriptions_leaves_the_topic_count_where_it_started() {
    let server = start_server(|c| {
        feed(c, &["AAPL"], 50.0);
        c.limits.requested_topic_grace_ms = 0;
        // Room for every round at once: the reaper may not have run between rounds.
        c.limits.max_requested_topics = 1000;
    })
    .await;
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let bus = server.running().state().bus.clone();
    let start = bus.topic_count();
    for round in 0..5 {
        let names: Vec<String> = (0..200).map(|i| format!("ticker.R{round}X{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut c = Client::connect(&server).await;
        let ack = c.subscribe(&refs, 1).await;
        assert_eq!(ack["pending"].as_array().map(Vec::len), Some(200));
    }
    wait_until("the churn leaves no topic behind", || {
        bus.topic_count() == start && bus.requested_topic_count() == 0
    })
    .await;

    // Past max_requested_topics a subscribe is refused, and what it created does not stay either.
    let names: Vec<String> = (0..1001).map(|i| format!("ticker.OVER{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut c = Client::connect(&server).await;
    c.send(serde_json::json!({"op":"subscribe","topics":refs,"id":9}))
        .await;
    let err = c.next_of_type("error").await;
    assert_eq!(
        (err["code"].as_str(), err["id"].as_u64()),
        (Some("topic_limit"), Some(9))
    );
    assert_eq!(
        metric(
            &server,
            "tickcast_limit_rejections_total{limit=\"max_requested_topics\"}"
        )
        .await,
        Some(1.0)
    );
    // The feed's topic is still served to the same connection.
    let ack = c.subscribe(&["ticker.AAPL"], 10).await;
    assert!(ack.get("pending").is_none(), "{ack}");
    wait_until("the refused subscribe leaves no topic behind", || {
        bus.topic_count() == start
    })
    .await;
    server.shutdown().await;
}
