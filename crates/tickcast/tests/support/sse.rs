//! An independent Server-Sent Events client: HTTP/1.1 over a raw loopback socket, the chunked
//! transfer coding undone by hand, events split as the EventSource spec says (`id:`, `data:`,
//! `retry:` fields, a blank line ends an event, an id persists until the next one).

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::WAIT;

/// One event: its data parsed as JSON, and the last event id in force after it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub data: Value,
    pub last_id: Option<String>,
}

/// An open `/sse` stream.
pub struct SseStream {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not read yet.
    body: Vec<u8>,
    /// The last `id:` seen.
    pub last_id: Option<String>,
    /// The last `retry:` seen.
    pub retry: Option<u64>,
    /// The response head.
    pub head: String,
}

/// What `GET path` answered: a stream (200), or the status and body of a refusal.
pub enum SseOpen {
    Stream(SseStream),
    Refused(u16, String, Value),
}

impl SseOpen {
    /// The stream; panics on a refusal.
    #[track_caller]
    pub fn stream(self) -> SseStream {
        match self {
            SseOpen::Stream(s) => s,
            SseOpen::Refused(status, head, body) => panic!("refused {status}: {head}\n{body}"),
        }
    }

    /// The refusal's status and JSON body; panics on a stream.
    #[track_caller]
    pub fn refused(self) -> (u16, Value) {
        match self {
            SseOpen::Stream(s) => panic!("expected a refusal, got a stream: {}", s.head),
            SseOpen::Refused(status, _, body) => (status, body),
        }
    }
}

/// `GET path` (with its query) on `addr`, with `extra` header lines (each ending in `\r\n`).
pub async fn sse_open(addr: SocketAddr, path: &str, extra: &str) -> SseOpen {
    sse_open_with(addr, path, extra, None).await
}

/// [`sse_open`] with a receive buffer of `recv_buffer` bytes (a slow reader's).
pub async fn sse_open_with(
    addr: SocketAddr,
    path: &str,
    extra: &str,
    recv_buffer: Option<u32>,
) -> SseOpen {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let tcp = socket.connect(addr).await.expect("connect");
    let mut reader = BufReader::new(tcp);
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{extra}\r\n");
    reader.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, reader.read_line(&mut line))
            .await
            .expect("response head in time")
            .expect("read head");
        assert!(n > 0, "connection closed in the head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let lower = head.to_ascii_lowercase();
    if status != 200 {
        let len: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await.unwrap();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return SseOpen::Refused(status, head, json);
    }
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    SseOpen::Stream(SseStream {
        reader,
        body: Vec::new(),
        last_id: None,
        retry: None,
        head,
    })
}

impl SseStream {
    /// Reads one more chunk of the body; false at its end.
    async fn fill(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
            return false;
        }
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        if n == 0 {
            return false;
        }
        let mut chunk = vec![0; n + 2];
        self.reader.read_exact(&mut chunk).await.expect("chunk");
        assert_eq!(&chunk[n..], b"\r\n", "chunk ends with CRLF");
        self.body.extend_from_slice(&chunk[..n]);
        true
    }

    /// The next body line (without its `\n`); `None` at the end of the stream.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                return Some(String::from_utf8(line[..i].to_vec()).expect("UTF-8"));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next event with data, within [`WAIT`]; `None` when the stream ended.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.next_event_inner())
            .await
            .expect("an event in time")
    }

    async fn next_event_inner(&mut self) -> Option<SseEvent> {
        let mut data: Option<String> = None;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if let Some(d) = data.take() {
                    let data = serde_json::from_str(&d)
                        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {d}"));
                    return Some(SseEvent {
                        data,
                        last_id: self.last_id.clone(),
                    });
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.last_id = Some(value.to_string()),
                "retry" => self.retry = value.parse().ok(),
                "data" => {
                    assert!(data.is_none(), "one data line per event: {line}");
                    data = Some(value.to_string());
                }
                "" => {} // a comment
                other => panic!("unknown field {other:?} in {line:?}"),
            }
        }
    }

    /// The next event of `type` (others skipped).
    pub async fn next_of_type(&mut self, ty: &str) -> SseEvent {
        loop {
            let e = self.next_event().await.expect("stream still open");
            if e.data["type"] == ty {
                return e;
            }
        }
    }
}
