//! The read side of a WebSocket session as fastwebsockets sees it: the bytes hyper read ahead during
//! the handshake, then the socket, passed through a frame-boundary tracker.
//!
//! The tracker enforces what fastwebsockets 0.10 does not: client frames must be masked (RFC 6455
//! §5.1, close 1002) and a message reassembled from fragments must fit `max_message_bytes` (1009).
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

use tokio::io::{AsyncRead, ReadBuf};

use crate::transport::Transport;

/// Bytes read from the socket per syscall into the staging buffer.
const STAGING: usize = 4096;
/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
const MAX_HEADER: usize = 14;

/// A violation found by the tracker; carried inside an `io::Error` through fastwebsockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireViolation {
    /// A client frame without a mask.
    #[error("client frame is not masked")]
    Unmasked,
    /// A message larger than the limit.
    #[error("message of {0} bytes exceeds the limit")]
    TooBig(u64),
}

/// Where the tracker is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum Track {
    /// Collecting a header; `have` bytes of it so far.
    Header { buf: [u8; MAX_HEADER], have: usize },
    /// Inside a payload.
    Payload { remaining: u64 },
}

const FRAME_START: Track = Track::Header {
    buf: [0; MAX_HEADER],
    have: 0,
};

/// Follows frame boundaries in a client byte stream.
#[derive(Debug)]
pub(crate) struct FrameTracker {
    state: Track,
    message_bytes: u64,
    max_message: u64,
    /// A fragmented message has started and not finished.
    in_message: bool,
}

impl FrameTracker {
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            state: FRAME_START,
            message_bytes: 0,
            max_message: max_message as u64,
            in_message: false,
        }
    }

    /// True between frames, outside any fragmented message.
    pub(crate) fn at_rest(&self) -> bool {
        matches!(self.state, Track::Header { have: 0, .. }) && !self.in_message
    }

    /// How many of `staged` bytes belong to the current frame (at least 1 when `staged` is not empty).
    pub(crate) fn deliverable(&self, staged: &[u8]) -> usize {
        match self.state {
            Track::Payload { remaining } => remaining.min(staged.len() as u64) as usize,
            Track::Header { mut buf, mut have } => {
                for (i, b) in staged.iter().enumerate() {
                    buf[have] = *b;
                    have += 1;
                    if let Some(payload) = Self::header_complete(&buf, have) {
                        let frame_rest = (i as u64 + 1).saturating_add(payload);
                        return frame_rest.min(staged.len() as u64) as usize;
                    }
                }
                staged.len()
            }
        }
    }

    /// Feeds bytes that were just delivered.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WireViolation> {
        while !bytes.is_empty() {
            match &mut self.state {
                Track::Payload { remaining } => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = FRAME_START;
                    }
                }
                Track::Header { buf, have } => {
                    buf[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if let Some(payload) = Self::header_complete(buf, *have) {
                        let (fin, opcode, masked) =
                            (buf[0] & 0x80 != 0, buf[0] & 0x0f, buf[1] & 0x80 != 0);
                        if !masked {
                            return Err(WireViolation::Unmasked);
                        }
                        match opcode {
                            0x1 | 0x2 => {
                                self.message_bytes = payload;
                                self.in_message = !fin;
                            }
                            0x0 => {
                                self.message_bytes = self.message_bytes.saturating_add(payload);
                                self.in_message = !fin;
                            }
                            _ => {}
                        }
                        if opcode < 0x8 && self.message_bytes > self.max_message {
                            return Err(WireViolation::TooBig(self.message_bytes));
                        }
                        self.state = if payload == 0 {
                            FRAME_START
                        } else {
                            Track::Payload { remaining: payload }
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// The payload length once `have` bytes make a whole header (with mask key), else `None`.
    fn header_complete(buf: &[u8; MAX_HEADER], have: usize) -> Option<u64> {
        if have < 2 {
            return None;
        }
        let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
        let (ext, len) = match buf[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(n as u64)),
        };
        if have < 2 + ext + mask {
            return None;
        }
        Some(match (ext, len) {
            (_, Some(n)) => n,
            (2, _) => u16::from_be_bytes([buf[2], buf[3]]) as u64,
            _ => u64::from_be_bytes([
                buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9],
            ]),
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, masked: bool, len: usize) -> Vec<u8> {
        let mut v = vec![(fin as u8) << 7 | opcode];
        let m = if masked { 0x80 } else { 0 };
        if len < 126 {
            v.push(m | len as u8);
        } else if len < 65536 {
            v.push(m | 126);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            v.push(m | 127);
            v.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if masked {
            v.extend_from_slice(&[1, 2, 3, 4]);
        }
        v.extend(std::iter::repeat_n(b'x', len));
        v
    }

    #[test]
    fn accepts_masked_frames_split_anywhere() {
        let mut t = FrameTracker::new(1000);
        let mut bytes = frame(true, 1, true, 5);
        bytes.extend(frame(true, 1, true, 300));
        bytes.extend(frame(true, 9, true, 0));
        for chunk in bytes.chunks(3) {
            t.feed(chunk).unwrap();
        }
        assert!(t.at_rest());
    }

    #[test]
    fn delivers_one_frame_at_a_time() {
        let mut t = FrameTracker::new(100_000);
        let mut bytes = frame(true, 1, true, 5);
        let first = bytes.len();
        bytes.extend(frame(true, 1, true, 300));
        bytes.extend(frame(true, 9, true, 0));
        let mut pos = 0;
        let mut cuts = Vec::new();
        while pos < bytes.len() {
            let n = t.deliverable(&bytes[pos..]);
            assert!(n > 0);
            t.feed(&bytes[pos..pos + n]).unwrap();
            pos += n;
            cuts.push(pos);
        }
        assert_eq!(cuts, vec![first, first + 2 + 2 + 4 + 300, bytes.len()]);
        // A partial header is delivered as is.
        let mut t = FrameTracker::new(100_000);
        assert_eq!(t.deliverable(&bytes[..1]), 1);
        t.feed(&bytes[..1]).unwrap();
        assert!(!t.at_rest());
    }

    #[test]
    fn fragmented_message_is_not_at_rest() {
        let mut t = FrameTracker::new(1000);
        t.feed(&frame(false, 1, true, 3)).unwrap();
        assert!(!t.at_rest());
        t.feed(&frame(true, 0, true, 3)).unwrap();
        assert!(t.at_rest());
    }

    #[test]
    fn rejects_unmasked() {
        let mut t = FrameTracker::new(1000);
        assert_eq!(
            t.feed(&frame(true, 1, false, 5)),
            Err(WireViolation::Unmasked)
        );
    }

    #[test]
    fn limits_reassembled_messages() {
        let mut t = FrameTracker::new(1000);
        t.feed(&frame(false, 1, true, 600)).unwrap();
        t.feed(&frame(true, 9, true, 4)).unwrap(); // a ping between fragments does not count
        assert_eq!(
            t.feed(&frame(true, 0, true, 600)),
            Err(WireViolation::TooBig(1200))
        );
        let mut t = FrameTracker::new(1000);
        assert_eq!(
            t.feed(&frame(true, 2, true, 70_000)[..14]),
            Err(WireViolation::TooBig(70_000))
        );
    }
}
