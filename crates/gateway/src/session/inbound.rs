//! The read side of a WebSocket session as fastwebsockets sees it: the bytes hyper read ahead during
//! the handshake, then the socket, passed through a frame-boundary tracker.
//!
//! The tracker ([`FrameTracker`], I/O-free in core) enforces what fastwebsockets 0.10 does not:
//! client frames must be masked (RFC 6455 §5.1, close 1002) and a message reassembled from fragments
//! must fit `max_message_bytes` (1009).
//!
//! It also keeps idle connections small. Bytes are handed to fastwebsockets one frame at a time, so
//! when a frame has been read and nothing more is staged, fastwebsockets holds no buffered bytes and
//! the session can drop its frame reader (and its 8 KiB buffer) until the client sends again. Most
//! market-data clients send a subscribe and then only read, so most connections hold no read buffer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tickcast_core::wire::FrameTracker;
pub(crate) use tickcast_core::wire::WireViolation;
use tokio::io::{AsyncRead, ReadBuf};

use crate::net::transport::Transport;

/// Bytes read from the socket per syscall into the staging buffer.
const STAGING: usize = 4096;
struct Core {
    stream: Rc<Transport>,
    /// Bytes read but not yet delivered; no capacity while the connection is at rest.
    staging: Vec<u8>,
    pos: usize,
    tracker: FrameTracker,
    /// The peer closed its side; reads return end-of-stream.
    eof: bool,
}

/// The session's read stream: read-ahead bytes first, then the socket, delivered frame by frame and
/// tracked. Cheap to clone: clones share the same state, so a frame reader can be dropped and made
/// again without losing bytes.
#[derive(Clone)]
pub(crate) struct Inbound(Rc<RefCell<Core>>);

impl Inbound {
    pub(crate) fn new(read_ahead: &[u8], stream: Rc<Transport>, max_message: usize) -> Self {
        Inbound(Rc::new(RefCell::new(Core {
            stream,
            staging: read_ahead.to_vec(),
            pos: 0,
            tracker: FrameTracker::new(max_message),
            eof: false,
        })))
    }

    /// True when no byte is staged and the stream is between messages: a frame reader holds nothing.
    pub(crate) fn at_rest(&self) -> bool {
        let core = self.0.borrow();
        core.pos == core.staging.len() && core.tracker.at_rest()
    }

    /// Gives back the staging buffer of a connection at rest.
    pub(crate) fn release(&self) {
        let mut core = self.0.borrow_mut();
        if core.pos == core.staging.len() {
            core.staging = Vec::new();
            core.pos = 0;
        }
    }

    /// Ready once bytes are staged (or the peer closed), reading them from the socket; bytes read
    /// are kept in the staging buffer. A reader made after this is ready has data to read and does
    /// not sit on its buffer waiting (tokio reports readiness until a read would block, so readiness
    /// alone is not proof of data).
    pub(crate) fn poll_fill(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut core = self.0.borrow_mut();
        let core = &mut *core;
        loop {
            if core.pos < core.staging.len() || core.eof {
                return Poll::Ready(Ok(()));
            }
            ready!(core.stream.poll_read_ready(cx))?;
            core.pos = 0;
            core.staging.clear();
            core.staging.resize(STAGING, 0);
            match core.stream.try_read(&mut core.staging) {
                Ok(0) => {
                    core.staging = Vec::new();
                    core.eof = true;
                    return Poll::Ready(Ok(()));
                }
                Ok(n) => {
                    core.staging.truncate(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) => {
                    core.staging = Vec::new();
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
    }
}

impl AsyncRead for Inbound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut core = self.0.borrow_mut();
        let core = &mut *core;
        if core.eof {
            return Poll::Ready(Ok(()));
        }
        if core.pos == core.staging.len() {
            // Refill. `staging` holds only real bytes whenever this returns, Pending included.
            core.staging.clear();
            core.pos = 0;
            loop {
                ready!(core.stream.poll_read_ready(cx))?;
                core.staging.resize(STAGING, 0);
                match core.stream.try_read(&mut core.staging) {
                    Ok(n) => {
                        core.staging.truncate(n);
                        if n == 0 {
                            core.eof = true;
                            return Poll::Ready(Ok(()));
                        }
                        break;
                    }
                    Err(e) => {
                        core.staging.clear();
                        if e.kind() != io::ErrorKind::WouldBlock {
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
        let staged = &core.staging[core.pos..];
        let n = core.tracker.deliverable(staged).min(buf.remaining());
        let chunk = &staged[..n];
        if let Err(v) = core.tracker.feed(chunk) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v)));
        }
        buf.put_slice(chunk);
        core.pos += n;
        Poll::Ready(Ok(()))
    }
}
