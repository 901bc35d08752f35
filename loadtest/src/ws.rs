//! Opening one client WebSocket: TCP connect (optionally from a chosen source address) and a
//! hand-rolled HTTP/1.1 upgrade, then fastwebsockets for framing.
//!
//! The handshake is written by hand rather than through hyper's client so a connection costs
//! one small write and one read, and no HTTP machinery stays attached to 50k sockets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use fastwebsockets::{Role, WebSocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::target::WsTarget;

/// Largest upgrade response accepted; a real one is ~150 bytes.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Largest server message accepted; ticks are ~150 bytes, so anything near this is a bug.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// How opening a connection failed, by stage, so the report can say which stage breaks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Socket creation or binding the source address failed (often: out of ports or files).
    #[error("socket/bind: {0}")]
    Bind(io::Error),
    /// TCP connect failed (refused, unreachable, backlog full...).
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The HTTP upgrade failed or was refused.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The stage did not finish in time.
    #[error("timed out")]
    Timeout,
}

impl ConnectError {
    /// Short stable label for counting failures by kind.
    pub fn label(&self) -> &'static str {
        match self {
            ConnectError::Bind(_) => "bind",
            ConnectError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => "refused",
            ConnectError::Connect(_) => "connect",
            ConnectError::Handshake(_) => "handshake",
            ConnectError::Timeout => "timeout",
        }
    }
}

/// A TCP stream that first replays bytes read past the end of the upgrade response.
///
/// The server normally sends nothing before our first request, so `prefix` is almost always
/// empty; it exists so a server that greets first is still read correctly.
pub struct Stream {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Socket options for one connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOpts {
    /// Local address to bind (None: the kernel's choice).
    pub src: Option<IpAddr>,
    /// SO_RCVBUF in bytes (None: system default). Slow readers use a small one so the server
    /// sees backpressure within seconds instead of after megabytes of kernel buffering.
    pub recv_buffer: Option<u32>,
}

/// Opens a TCP connection to `addr` with `opts`.
pub async fn tcp_connect(addr: SocketAddr, opts: SocketOpts) -> Result<TcpStream, ConnectError> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(ConnectError::Bind)?;
    if let Some(ip) = opts.src {
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(ConnectError::Bind)?;
    }
    if let Some(n) = opts.recv_buffer {
        // Before connect, so the window scale negotiated in the handshake matches.
        sock.set_recv_buffer_size(n).map_err(ConnectError::Bind)?;
    }
    let s = sock.connect(addr).await.map_err(ConnectError::Connect)?;
    // Requests are tiny and latency matters more than packet count.
    s.set_nodelay(true).map_err(ConnectError::Connect)?;
    Ok(s)
}

/// Connects and upgrades; the whole thing is bounded by `timeout`.
pub async fn connect(
    target: &WsTarget,
    opts: SocketOpts,
    timeout: Duration,
) -> Result<WebSocket<Stream>, ConnectError> {
    let fut = async {
        let tcp = tcp_connect(target.addr, opts).await?;
        let stream = upgrade(tcp, target).await?;
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        ws.set_max_message_size(MAX_MESSAGE_SIZE);
        ws.set_auto_pong(true);
        ws.set_auto_close(true);
        Ok(ws)
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

async fn upgrade(mut tcp: TcpStream, target: &WsTarget) -> Result<Stream, ConnectError> {
    let key = base64_16(&nonce());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    // Bounded: each pass adds at least one byte and the head is capped.
    let head_end = loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        if n == 0 {
            return Err(ConnectError::Handshake(
                "connection closed during upgrade".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(ConnectError::Handshake(
                "upgrade response head too large".into(),
            ));
        }
    };
    check_response(&buf[..head_end])?;
    let prefix = buf.split_off(head_end);
    Ok(Stream {
        prefix,
        pos: 0,
        inner: tcp,
    })
}

/// Checks the status line is 101 and an `Upgrade: websocket` header is present.
///
/// Sec-WebSocket-Accept is not verified (that needs SHA-1); on loopback against a server we
/// started ourselves a 101 with the upgrade header is enough evidence.
fn check_response(head: &[u8]) -> Result<(), ConnectError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.splitn(3, ' ');
    let _version = parts.next();
    let code = parts.next().unwrap_or_default();
    if code != "101" {
        return Err(ConnectError::Handshake(format!(
            "server answered {:?} instead of 101",
            status.trim()
        )));
    }
    let upgraded = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("upgrade") && v.trim().eq_ignore_ascii_case("websocket")
        })
    });
    if !upgraded {
        return Err(ConnectError::Handshake(
            "101 response without Upgrade: websocket".into(),
        ));
    }
    Ok(())
}

/// A fresh 16-byte handshake nonce. It only has to differ between connections (RFC 6455 asks
/// for randomness to defeat caching proxies, which loopback has none of), so a time-seeded
/// per-thread generator is enough.
fn nonce() -> [u8; 16] {
    use rand::{Rng, SeedableRng};
    thread_local! {
        static RNG: std::cell::RefCell<rand::rngs::SmallRng> = std::cell::RefCell::new(
            rand::rngs::SmallRng::seed_from_u64(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x5eed),
            ),
        );
    }
    RNG.with(|r| r.borrow_mut().random())
}

/// Standard base64 of 16 bytes (24 chars with `==`), for Sec-WebSocket-Key.
fn base64_16(b: &[u8; 16]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(24);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, &x) in idx.iter().enumerate() {
            if i <= c.len() {
                out.push(A[x as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc6455_sample() {
        // RFC 6455 section 1.3: "the sample nonce" is dGhlIHNhbXBsZSBub25jZQ==.
        assert_eq!(base64_16(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn checks_upgrade_response() {
        assert!(check_response(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
        )
        .is_ok());
        assert!(check_response(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_err());
        assert!(check_response(b"HTTP/1.1 101 OK\r\n\r\n").is_err());
    }
}
