//! Shared helpers for tickcast's integration tests: an independent WebSocket client
//! (tokio-tungstenite) and raw-socket tools for protocol violations. Servers are started through
//! `tickcast::test_support::start_server`, always on 127.0.0.1:0.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tickcast::test_support::{start_server, RunningServer};

/// Upper bound for any single wait in these tests; they never depend on timing otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// A test client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the client saw next.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect(server: &RunningServer) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(server.ws_url()))
            .await
            .expect("connect in time")
            .expect("handshake");
        Client { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws
            .send(Message::text(s.to_string()))
            .await
            .expect("send");
    }

    pub async fn subscribe(&mut self, topics: &[&str], id: u64) -> Value {
        self.send(json!({"op":"subscribe","topics":topics,"id":id}))
            .await;
        self.next_of_type("subscribed").await
    }

    /// Next JSON message or close, within [`WAIT`].
    pub async fn next_event(&mut self) -> Event {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("message in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Event::Json(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(c))) => return Event::Closed(c),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    /// Next JSON message; panics on close.
    pub async fn next_json(&mut self) -> Value {
        match self.next_event().await {
            Event::Json(v) => v,
            Event::Closed(c) => panic!("connection closed: {c:?}"),
        }
    }

    /// Skips messages until one has `type == ty`.
    pub async fn next_of_type(&mut self, ty: &str) -> Value {
        for _ in 0..100_000 {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
        panic!("no {ty} message");
    }

    /// Waits for the close frame, skipping data.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        for _ in 0..100_000 {
            if let Event::Closed(c) = self.next_event().await {
                return c;
            }
        }
        panic!("no close");
    }
}

/// Resident memory (VmRSS) of process `pid` ("self" for this one: the in-process server plus the
/// test clients), in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A free loopback port: bound, then released for the process under test to take.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Kills (and reaps) a child process when dropped, so a failing test leaves nothing running.
pub struct Reaped(pub Option<std::process::Child>);

impl Reaped {
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Raises the open-file soft limit for tests that open many sockets.
pub fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// A hand-driven WebSocket client over a raw socket, for sending what tungstenite refuses to send.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(server: &RunningServer) -> RawClient {
        Self::connect_with(server, None).await
    }

    /// Connects with an optional small receive buffer (to make a slow reader fill up fast).
    pub async fn connect_with(server: &RunningServer, recv_buf: Option<u32>) -> RawClient {
        Self::connect_addr(server.addr(), recv_buf).await
    }

    /// Connects to a server at `addr` (e.g. a spawned binary).
    pub async fn connect_addr(addr: SocketAddr, recv_buf: Option<u32>) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buf {
            socket.set_recv_buffer_size(size).expect("rcvbuf");
        }
        let mut stream = socket.connect(addr).await.expect("tcp connect");
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .expect("write handshake");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake in time")
                .expect("read");
            assert!(n > 0, "server closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
        }
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            buf.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
        let rest = buf.split_off(head_end);
        RawClient { stream, buf: rest }
    }

    /// Sends one frame; `mask` = None sends it unmasked (a protocol violation from a client).
    pub async fn send_frame(&mut self, first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut f = vec![first_byte];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else if payload.len() < 65536 {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        self.stream.write_all(&f).await.expect("send frame");
    }

    /// Sends a masked final text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(0x81, text.as_bytes(), Some([1, 2, 3, 4]))
            .await;
    }

    /// Reads one server frame: (opcode, payload). `None` on EOF.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        read_frame_from(&mut self.stream, &mut self.buf).await
    }

    /// Reads frames until a close; returns its code.
    pub async fn expect_close_code(&mut self) -> u16 {
        for _ in 0..100_000 {
            match self.read_frame().await {
                Some((0x8, p)) if p.len() >= 2 => return u16::from_be_bytes([p[0], p[1]]),
                Some((0x8, _)) => return 1005,
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
        panic!("no close frame");
    }
}

/// Reads one unmasked server frame from `r`: (opcode, payload); `buf` keeps what was read past it.
/// `None` on EOF or a read error. For tests that read one half of a split socket.
pub async fn read_frame_from<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Option<(u8, Vec<u8>)> {
    loop {
        if buf.len() >= 2 {
            let (hlen, len) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&buf[2..10]);
                    (10, u64::from_be_bytes(l) as usize)
                }
                126 | 127 => (usize::MAX, 0),
                n => (2, n as usize),
            };
            if hlen != usize::MAX && buf.len() >= hlen + len {
                let op = buf[0] & 0x0f;
                let payload = buf[hlen..hlen + len].to_vec();
                buf.drain(..hlen + len);
                return Some((op, payload));
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, r.read(&mut chunk))
            .await
            .expect("frame in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of one sample in the `/metrics` of the server at `addr`, e.g.
/// `tickcast_feed_up{feed="tcp"}`; `None` when it is not exported.
pub async fn metric_at(addr: SocketAddr, sample: &str) -> Option<f64> {
    let (status, _, body) = http_get_addr(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics");
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits (bounded) until the server at `addr` reports `n` open WebSocket connections.
pub async fn wait_for_open(addr: SocketAddr, n: usize) {
    let deadline = std::time::Instant::now() + 3 * WAIT;
    while metric_at(addr, "tickcast_connections_open").await != Some(n as f64) {
        assert!(
            std::time::Instant::now() < deadline,
            "never {n} open connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's view of a topic's latest seq.
pub fn last_seq(server: &RunningServer, topic: &str) -> u64 {
    server
        .running()
        .state()
        .bus
        .get(topic)
        .and_then(|t| t.last())
        .map_or(0, |l| l.seq.0)
}

/// Waits (bounded) until `topic` has published at least `seq`.
pub async fn wait_for_seq(server: &RunningServer, topic: &str, seq: u64) {
    for _ in 0..1000 {
        if last_seq(server, topic) >= seq {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{topic} never reached seq {seq}");
}

/// Sets the synthetic feed of a test config.
pub fn feed(config: &mut tickcast::Config, symbols: &[&str], rate: f64) {
    use tickcast::config::Overrides;
    use tickcast_ingest::synthetic::Symbols;
    config
        .apply(Overrides {
            symbols: Some(Symbols::List(
                symbols.iter().map(|s| s.to_string()).collect(),
            )),
            rate: Some(rate),
            ..Default::default()
        })
        .expect("valid feed");
}

/// A plain HTTP/1.1 GET over a raw socket: (status, headers, body).
pub async fn http_get(server: &RunningServer, path: &str) -> (u16, String, Vec<u8>) {
    http_get_addr(server.addr(), path).await
}

/// [`http_get`] to a server at `addr` (e.g. a spawned binary).
pub async fn http_get_addr(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head[9..12].parse().expect("status code");
    let mut body = buf[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// A raw HTTP/1.1 request with extra `headers` (each line ending in `\r\n`) and `body`, sent in
/// one write: (status, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    // One write: the server may answer (413) without reading the body, and body bytes still in
    // flight when it closes could reset the connection before the answer is read.
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    let _ = s.write_all(&req).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&buf);
    let status = text[9..12].parse().expect("status");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    (status, buf[split..].to_vec())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// Polls `cond` every 10 ms, at most [`WAIT`] in total.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..(WAIT.as_millis() / 10) {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The stats of the server's feed called `name`.
pub fn feed_stats(
    server: &RunningServer,
    name: &str,
) -> std::sync::Arc<tickcast_ingest::FeedStats> {
    server
        .running()
        .feeds()
        .all()
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no feed {name}"))
}
