//! https/wss end to end: a real tickcast with `[tls]` set to a certificate generated here (rcgen), and
//! an independent client (rustls + tokio-tungstenite) that trusts only that certificate. Covers
//! ticks in order, error replies and pings through TLS, https routes, a slow TLS reader whose
//! socket fills (the writer's TLS backpressure path), a client speaking plain HTTP to the TLS port
//! (counted, and the server keeps serving), and the 1001 close at shutdown.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A self-signed certificate for localhost / 127.0.0.1 in a fresh temp dir.
struct TestCert {
    dir: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    fn new(name: &str) -> TestCert {
        let dir = std::env::temp_dir().join(format!("tickcast-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("certificate");
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).expect("write key");
        TestCert {
            dir,
            der: ck.cert.der().clone(),
        }
    }

    fn configure(&self, config: &mut tickcast::Config) {
        config.tls.cert_path = Some(self.dir.join("cert.pem"));
        config.tls.key_path = Some(self.dir.join("key.pem"));
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test cert");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    async fn tls(&self, server: &RunningServer) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(server.addr()).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        tokio::time::timeout(WAIT, self.connector().connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake")
    }

    async fn wss(&self, server: &RunningServer) -> WebSocketStream<TlsStream<TcpStream>> {
        let tls = self.tls(server).await;
        let url = format!("wss://localhost:{}/ws", server.addr().port());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
            .await
            .expect("upgrade in time")
            .expect("upgrade");
        ws
    }

    /// GET over https: (status, body).
    async fn https_get(&self, server: &RunningServer, path: &str) -> (u16, String) {
        let mut tls = self.tls(server).await;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        // A peer that closes without close_notify is fine here: the body is complete.
        let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut buf))
            .await
            .expect("response in time");
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn send(ws: &mut WebSocketStream<TlsStream<TcpStream>>, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// Next text message as JSON (pings and pongs skipped).
async fn next_json(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("valid frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn next_of_type(ws: &mut WebSocketStream<TlsStream<TcpStream>>, ty: &str) -> Value {
    for _ in 0..10_000 {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
    panic!("no {ty} message");
}

fn metric(server: &RunningServer, name: &str) -> f64 {
    let state = server.running().state();
    let text = state.metrics.render(&state.bus);
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn wss_delivers_ticks_in_order_and_answers_requests() {
    let cert = TestCert::new("ticks");
    let server = start_server(|c| {
        cert.configure(c);
        feed(c, &["AAPL", "MSFT"], 400.0);
    })
    .await;
    let mut ws = cert.wss(&server).await;

    send(
        &mut ws,
        json!({"op":"subscribe","topics":["ticker.AAPL"],"id":1}),
    )
    .await;
    let ack = next_of_type(&mut ws, "subscribed").await;
    assert_eq!(ack["id"], 1);
    let mut last = 0u64;
    for _ in 0..200 {
        let t = next_of_type(&mut ws, "tick").await;
        assert_eq!(t["topic"], "ticker.AAPL");
        let seq = t["seq"].as_u64().expect("seq");
        assert!(last == 0 || seq == last + 1, "seq {seq} after {last}");
        assert!(t["bid"].as_f64().expect("bid") > 0.0);
        last = seq;
    }

    // Reads go through TLS too: a bad request gets its error reply, a ping its pong.
    ws.send(Message::text("{not json")).await.expect("send");
    let err = next_of_type(&mut ws, "error").await;
    assert_eq!(err["code"], "bad_json");
    ws.send(Message::Ping(b"tls-ping".to_vec().into()))
        .await
        .expect("ping");
    let mut ponged = false;
    for _ in 0..10_000 {
        match tokio::time::timeout(WAIT, ws.next())
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
    let mut code = None;
    for _ in 0..100_000 {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Close(f))) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
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
    let (status, body) = cert.https_get(&server, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    // /topics lists topics that have data.
    wait_for_seq(&server, "ticker.AAPL", 1).await;
    let (status, body) = cert.https_get(&server, "/topics").await;
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
    let (status, _) = cert.https_get(&server, "/healthz").await;
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
    let mut ws = cert.wss(&server).await;
    let topics: Vec<String> = refs.iter().map(|s| format!("ticker.{s}")).collect();
    send(&mut ws, json!({"op":"subscribe","topics":topics,"id":1})).await;
    next_of_type(&mut ws, "subscribed").await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    wait_until("conflation while the TLS reader sleeps", || {
        metric(&server, "tickcast_messages_conflated_total") > 0.0
    })
    .await;

    // Every record still decrypts and every frame parses; per topic, seq only moves forward.
    let mut last = std::collections::HashMap::new();
    for _ in 0..3000 {
        let t = next_of_type(&mut ws, "tick").await;
        let topic = t["topic"].as_str().expect("topic").to_string();
        let seq = t["seq"].as_u64().expect("seq");
        if let Some(prev) = last.insert(topic.clone(), seq) {
            assert!(seq > prev, "{topic}: seq {seq} after {prev}");
        }
    }
    assert_eq!(last.len(), 20, "every topic kept flowing");
}
