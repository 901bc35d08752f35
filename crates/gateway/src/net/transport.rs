//! A session's byte stream after the upgrade: plain TCP, or TCP carrying TLS (wss://).
//!
//! The session's reader and writer share one `Rc<Transport>` on
//! the shard's thread and use it the way they use a non-blocking socket: readiness, then `try_read`
//! / `try_write` that may say `WouldBlock`. For TLS the rustls connection state sits in a `RefCell`
//! between them, which is sound because a shard is single-threaded and neither side holds the borrow
//! across an await.
//!
//! TLS keeps serialize-once intact: frames are still encoded once and shared; encryption happens per
//! connection on the gathered write, as it must (every connection has its own keys).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};

use rustls::ServerConnection;
use socket2::SockRef;
use tokio::net::TcpStream;

/// Plaintext the writer may hand rustls beyond what the socket has taken; past it `try_write`
/// accepts less, so an unread TLS client is held back by the same backpressure as a plain one.
const TLS_SEND_BUFFER: usize = 64 * 1024;

/// Most bytes one [`Transport::poll_discard`] reads: a client sending at full speed is drained in
/// few syscalls (4 MiB in 64).
const DISCARD_CHUNK: usize = 64 * 1024;

/// The socket of one upgraded connection.
pub(crate) struct Transport {
    tcp: TcpStream,
    /// Boxed: rustls' state is large and plain connections should not carry its space.
    tls: Option<Box<Tls>>,
}

struct Tls {
    conn: RefCell<ServerConnection>,
    /// rustls holds decrypted bytes not yet read: the socket being quiet does not mean "no data".
    plaintext_buffered: Cell<bool>,
}

impl Transport {
    /// A plain TCP connection.
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self { tcp, tls: None }
    }

    /// A TCP connection whose TLS handshake is done; `conn` may already hold decrypted bytes.
    pub(crate) fn tls(tcp: TcpStream, mut conn: ServerConnection) -> Self {
        conn.set_buffer_limit(Some(TLS_SEND_BUFFER));
        Self {
            tcp,
            tls: Some(Box::new(Tls {
                conn: RefCell::new(conn),
                plaintext_buffered: Cell::new(true),
            })),
        }
    }

    /// The client's address.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    /// Ready when a read may make progress. Poll-style (the waker goes into the socket's own slot),
    /// so a waiting session keeps no waiter node in its task.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has_buffered_plaintext() {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    /// Ready when the socket takes bytes again; only the writer task polls this.
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }

    fn has_buffered_plaintext(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.plaintext_buffered.get())
    }

    /// Reads client bytes without waiting: `Ok(0)` is end of stream, `WouldBlock` means wait for
    /// [`poll_read_ready`](Self::poll_read_ready).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.try_read(buf);
        };
        let mut conn = tls.conn.borrow_mut();
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tls.plaintext_buffered.set(false);
                }
                // The peer closed TCP without close_notify: end of stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if conn.read_tls(&mut NonBlocking(&self.tcp))? == 0 {
                return Ok(0);
            }
            let state = conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            tls.plaintext_buffered
                .set(state.plaintext_bytes_to_read() > 0);
            if conn.wants_write() {
                // Post-handshake records (key updates, alerts). If the socket is full the writer
                // sends them with its next write.
                match conn.write_tls(&mut NonBlocking(&self.tcp)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The socket of a plain TCP connection (for batched sends); `None` for TLS, whose bytes go
    /// through rustls.
    pub(crate) fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.tls.is_none().then(|| self.tcp.as_raw_fd())
    }

    /// Whether this is plain TCP (no TLS records held back between writes).
    pub(crate) fn is_plain(&self) -> bool {
        self.tls.is_none()
    }

    /// Writes `buf` (or a prefix of it) without waiting; returns how many bytes of `buf` were taken.
    /// For TLS "taken" means encrypted and owned by rustls: [`flush`](Self::flush) must then report
    /// `Ok` before the connection counts as drained.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            // Straight to send(2): tokio's try_write first reads its readiness state, one more
            // cache line per connection on the fan-out path. A full socket goes through tokio once,
            // so it learns the socket is full and `poll_write_ready` really waits.
            return match SockRef::from(&self.tcp).send_with_flags(buf, libc::MSG_NOSIGNAL) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.try_write(buf),
                r => r,
            };
        };
        let mut conn = tls.conn.borrow_mut();
        drain_tls(&mut conn, &self.tcp)?;
        let n = conn.writer().write(buf)?;
        match drain_tls(&mut conn, &self.tcp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(n)
    }

    /// Sends bytes already taken but not yet on the wire (TLS records); `WouldBlock` while the
    /// socket is full. Always `Ok` for plain TCP, which buffers nothing here.
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.tls {
            None => Ok(()),
            Some(tls) => drain_tls(&mut tls.conn.borrow_mut(), &self.tcp),
        }
    }

    /// Whether every byte [`try_write`](Self::try_write) took is on its way: always for plain TCP;
    /// for TLS, once rustls holds no record the socket has not taken. A close frame counts as sent
    /// only then, or the FIN after it would cut it off.
    pub(crate) fn is_flushed(&self) -> bool {
        self.tls
            .as_ref()
            .is_none_or(|tls| !tls.conn.borrow().wants_write())
    }

    /// Reads up to `max` bytes (at most [`DISCARD_CHUNK`]) of what the client sent, only to throw
    /// them away, while a closed connection lingers; returns how many, `Ok(0)` being end of stream.
    /// `max` must not be zero, which would read as end of stream.
    ///
    /// These are the socket's raw bytes, TLS records included and not decrypted: after our close
    /// frame and close_notify nothing the client sends is used, so decrypting it would be waste. For
    /// the same reason it waits on the socket's own readiness, not on plaintext rustls holds (which
    /// is never read now, and would make [`poll_read_ready`](Self::poll_read_ready) ready forever).
    pub(crate) fn poll_discard(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            // On the stack and only once the socket is readable: a lingering connection keeps no
            // buffer, and waiting costs no zeroing.
            let mut buf = [0u8; DISCARD_CHUNK];
            let len = max.min(DISCARD_CHUNK);
            match self.tcp.try_read(&mut buf[..len]) {
                // tokio's readiness was stale; try_read cleared it, so the next poll really waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Ends our direction after the close frame: TLS close_notify (best effort), then TCP FIN, so
    /// the client sees end of stream and can answer the close.
    pub(crate) fn shutdown_write(&self) {
        if let Some(tls) = &self.tls {
            let mut conn = tls.conn.borrow_mut();
            conn.send_close_notify();
            let _ = drain_tls(&mut conn, &self.tcp);
        }
        let _ = SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write);
    }
}

/// Writes pending TLS records until none are left (`Ok`) or the socket is full (`WouldBlock`).
fn drain_tls(conn: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut NonBlocking(tcp))?;
    }
    Ok(())
}

/// `std::io` view of a tokio socket through its non-blocking `try_*` calls, which keep tokio's
/// readiness bookkeeping right when they return `WouldBlock`.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_connections_do_not_carry_tls_state() {
        // rustls' connection is over 1 KiB; inline it would cost every plain connection that much.
        assert!(std::mem::size_of::<rustls::ServerConnection>() > 512);
        assert!(std::mem::size_of::<super::Transport>() <= 64);
    }
}
