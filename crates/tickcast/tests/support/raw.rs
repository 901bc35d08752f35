//! A hand-driven WebSocket client over a raw socket, for sending what tungstenite refuses to send.

use std::fmt::Display;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frame::{client_frame, read_frame_from, upgrade_request, MASK};
use super::{RunningServer, WAIT};

/// A raw client after its upgrade: write frames with [`RawClient::send_frame`] (or bytes to
/// `stream`), read the server's frames with [`RawClient::read_frame`].
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
        let buf = upgrade_over(&mut stream, addr).await;
        RawClient { stream, buf }
    }

    /// The socket and the bytes already read past the handshake (the start of the server's first
    /// frame, if any), for a test that reads and writes it from two halves.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// Sends one frame; `mask` = None sends it unmasked (a protocol violation from a client).
    pub async fn send_frame(&mut self, first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let f = client_frame(first_byte, payload, mask);
        self.stream.write_all(&f).await.expect("send frame");
    }

    /// Sends a masked final text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(0x81, text.as_bytes(), Some(MASK)).await;
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

/// Upgrades `stream` (plain TCP, or TLS already handshaken) to a WebSocket on `/ws` of `host`:
/// sends the request and reads the 101 head. Returns the bytes read past the head.
pub async fn upgrade_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: impl Display,
) -> Vec<u8> {
    stream
        .write_all(upgrade_request(host, "").as_bytes())
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
    buf.split_off(head_end)
}
