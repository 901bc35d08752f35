//! https/wss end to end: a real tickcast with `[tls]` set to a certificate generated here (rcgen), and
//! an independent client (rustls + tokio-tungstenite) that trusts only that certificate. Covers
//! ticks in order, error replies and pings through TLS, https routes, a slow TLS reader whose
//! socket fills (the writer's TLS backpressure path), a client speaking plain HTTP to the TLS port
//! (counted, and the server keeps serving), and the 1001 close at shutdown.

use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// `tickcast_*` counters read from the server's registry (`/metrics` itself is https here).
fn metric(server: &RunningServer, name: &str) -> f64 {
    let state = server.running().state();
    Metrics::parse(&state.metrics.render(&state.bus)).value(name)
}

#[tokio::test]
async fn wss_delivers_ticks_in_order_and_answers_requests() {
    let cert = TestCert::new("ticks");
    let server = start_server(|c| {
        cert.configure(c);
        feed(c, &["AAPL", "MSFT"], 400.0);
    })
    .await;
    let mut ws = Client::connect_tls(&server, &cert).await;

    let ack = ws.subscribe(&["ticker.AAPL"], 1).await;
    assert_eq!(ack["id"], 1);
    let mut last = 0u64;
    for _ in 0..200 {
        let t = ws.next_of_type("tick").await;
        assert_eq!(t["topic"], "ticker.AAPL");
        let seq = t["seq"].as_u64().expect("seq");
        assert!(last == 0 || seq == last + 1, "seq {seq} after {last}");
        assert!(t["bid"].as_f64().expect("bid") > 0.0);
        last = seq;
    }

    // Reads go through TLS too: a bad request gets its error reply, a ping its pong.
    ws.send_text("{not json").await;
    let err = ws.next_of_type("error").await;
    assert_eq!(err["code"], "bad_json");
    ws.ws
        .send(Message::Ping(b"tls-ping".to_vec().into()))
        .await
        .expect("ping");
    let mut ponged = false;
    for _ in 0..10_000 {
        match tokio::time::timeout(WAIT, ws.ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(&p[..], b"tls-ping");
                ponged = true;
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
    assert!(ponged);

    // Graceful shutdown reaches TLS clients as 1001 too.
    let shutdown = tokio::spawn(server.shutdown());
    let code = ws.expect_close().await.map(|f| u16::from(f.code));
    assert_eq!(code, Some(1001));
    shutdown.await.expect("shutdown");
}

#[tokio::test]
async fn https_routes_and_plain_clients_on_the_tls_port() {
    let cert = TestCert::new("https");
    let server = start_server(|c| {
        cert.configure(c);
        feed(c, &["AAPL"], 50.0);
    })
    .await;
    let (status, body) = https_get(&server, &cert, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    // /topics lists topics that have data.
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let (status, body) = https_get(&server, &cert, "/topics").await;
    assert_eq!(status, 200);
    assert!(body.contains("ticker.AAPL"), "{body}");

    // Plain HTTP to the TLS port: the handshake fails, is counted, and nothing else is affected.
    let mut plain = TcpStream::connect(server.addr()).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    wait_until("handshake failure counted", || {
        metric(&server, "tickcast_tls_handshake_failures_total") >= 1.0
    })
    .await;
    let (status, _) = https_get(&server, &cert, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn slow_tls_reader_is_conflated_and_its_stream_stays_intact() {
    let cert = TestCert::new("slow");
    let symbols: Vec<String> = (0..20).map(|i| format!("S{i:02}")).collect();
    let refs: Vec<&str> = symbols.iter().map(|s| s.as_str()).collect();
    let server = start_server(|c| {
        cert.configure(c);
        feed(c, &refs, 4000.0);
        // Small socket buffer and queue: the socket fills within the pause below, so the writer
        // meets a full socket with TLS records pending and the queue conflates.
        c.server.socket_send_buffer_bytes = 4096;
        c.backpressure.max_queued_frames = 16;
    })
    .await;
    let mut ws = Client::connect_tls(&server, &cert).await;
    let topics: Vec<String> = refs.iter().map(|s| format!("ticker.{s}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    ws.subscribe(&topics, 1).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_until("conflation while the TLS reader sleeps", || {
        metric(&server, "tickcast_messages_conflated_total") > 0.0
    })
    .await;

    // Every record still decrypts and every frame parses; per topic, seq only moves forward, and
    // only skips where a `gap` marker said so.
    let mut ledger = SeqLedger::default();
    let mut last = std::collections::HashSet::new();
    while ledger.ticks < 3000 {
        let v = ws.next_json().await;
        ledger.observe(&v).unwrap_or_else(|e| panic!("{e}"));
        if v["type"] == "tick" {
            last.insert(v["topic"].as_str().expect("topic").to_string());
        }
    }
    assert_eq!(last.len(), 20, "every topic kept flowing");
}
