//! What every upstream session does with its WebSocket besides the payloads: watch for silence
//! (a ping after `idle_timeout`, lost after twice that) and sort what arrives into text, binary,
//! frames to ignore and the end of the connection. Shared by the quote and the market sessions.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::Ws;

/// The idle watch of one connection.
pub(super) struct Liveness {
    idle: Duration,
    last_heard: Instant,
    pinged: bool,
}

impl Liveness {
    /// A watch that starts now.
    pub(super) fn new(idle: Duration) -> Self {
        Self {
            idle,
            last_heard: Instant::now(),
            pinged: false,
        }
    }

    /// When [`on_deadline`](Self::on_deadline) is due unless something arrives first.
    pub(super) fn deadline(&self) -> Instant {
        self.last_heard
            + if self.pinged {
                self.idle * 2
            } else {
                self.idle
            }
    }

    /// Something arrived: the upstream is alive.
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged = false;
    }

    /// At the deadline: pings a silent upstream (it may be alive with nothing to say), or says why
    /// the connection is lost when it stayed silent after the ping.
    pub(super) async fn on_deadline(&mut self, ws: &mut Ws) -> Result<(), String> {
        if self.pinged {
            return Err(format!("no data for {} ms", (self.idle * 2).as_millis()));
        }
        self.pinged = true;
        ws.send(Message::Ping(Default::default()))
            .await
            .map_err(|e| format!("ping failed: {e}"))
    }
}

/// What one read from the WebSocket means for a session.
pub(super) enum Received {
    /// A text message: the session's payload.
    Text(Utf8Bytes),
    /// A binary message: no adapter speaks binary; counted as unsupported.
    Binary,
    /// A ping or pong (tungstenite answers pings itself).
    Control,
    /// The connection ended, and why.
    End(String),
}

impl From<Option<Result<Message, tungstenite::Error>>> for Received {
    fn from(msg: Option<Result<Message, tungstenite::Error>>) -> Self {
        match msg {
            None => Received::End("connection closed".into()),
            Some(Err(e)) => Received::End(e.to_string()),
            Some(Ok(Message::Text(t))) => Received::Text(t),
            Some(Ok(Message::Binary(_))) => Received::Binary,
            Some(Ok(Message::Close(frame))) => Received::End(frame.map_or_else(
                || "closed by upstream".to_string(),
                |f| format!("closed by upstream: {} {}", f.code, f.reason),
            )),
            Some(Ok(_)) => Received::Control,
        }
    }
}
