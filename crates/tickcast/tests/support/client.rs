//! The independent test client: tokio-tungstenite over any stream, plain TCP or TLS.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::tls::{tls_connect, TestCert};
use super::{RunningServer, WAIT};

/// A test client over stream `S`: `Client` (ws:// over TCP) by default,
/// `Client<TlsStream<TcpStream>>` for wss:// ([`Client::connect_tls`]).
pub struct Client<S = MaybeTlsStream<TcpStream>> {
    pub ws: WebSocketStream<S>,
}

/// What the client saw next.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect(server: &RunningServer) -> Client {
        Self::connect_url(&server.ws_url()).await
    }

    /// Connects to a ws:// URL (for tasks that do not borrow the server).
    pub async fn connect_url(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("handshake");
        Client { ws }
    }
}

impl Client<TlsStream<TcpStream>> {
    /// wss:// to `server`, trusting only `cert` (which the server presents), by the name
    /// `localhost`.
    pub async fn connect_tls(server: &RunningServer, cert: &TestCert) -> Self {
        let tls = tls_connect(server.addr(), cert).await;
        let url = format!("wss://localhost:{}/ws", server.addr().port());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
            .await
            .expect("upgrade in time")
            .expect("upgrade");
        Client { ws }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
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

    /// Next JSON message or close, within [`WAIT`]; pings, pongs and binary frames are skipped.
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
