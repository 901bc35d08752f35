//! The read side of a WebSocket session as fastwebsockets sees it: the bytes hyper read ahead during
//! the handshake, then the socket, passed through a frame-boundary tracker.
//!
//! The tracker enforces what fastwebsockets 0.10 does not: client frames must be masked (RFC 6455
//! §5.1, close 1002) and a message reassembled from fragments must fit `max_message_bytes` (1009).
//! It sees headers as they stream past, so it costs a few comparisons per frame.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;

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
#[derive(Debug)]
enum Track {
    /// Collecting a header; `have` bytes of it so far.
    Header { buf: [u8; 14], have: usize },
    /// Skipping payload bytes.
    Payload { remaining: u64 },
}

/// Follows frame boundaries in a client byte stream.
#[derive(Debug)]
pub(crate) struct FrameTracker {
    state: Track,
    message_bytes: u64,
    max_message: u64,
}

impl FrameTracker {
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            state: Track::Header {
                buf: [0; 14],
                have: 0,
            },
            message_bytes: 0,
            max_message: max_message as u64,
        }
    }

    /// Feeds bytes that were just read.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WireViolation> {
        while !bytes.is_empty() {
            match &mut self.state {
                Track::Payload { remaining } => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = Track::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                Track::Header { buf, have } => {
                    buf[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if let Some(payload) = Self::header_complete(buf, *have) {
                        let (opcode, masked) = (buf[0] & 0x0f, buf[1] & 0x80 != 0);
                        if !masked {
                            return Err(WireViolation::Unmasked);
                        }
                        match opcode {
                            0x1 | 0x2 => self.message_bytes = payload,
                            0x0 => self.message_bytes = self.message_bytes.saturating_add(payload),
                            _ => {}
                        }
                        if opcode < 0x8 && self.message_bytes > self.max_message {
                            return Err(WireViolation::TooBig(self.message_bytes));
                        }
                        self.state = if payload == 0 {
                            Track::Header {
                                buf: [0; 14],
                                have: 0,
                            }
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
    fn header_complete(buf: &[u8; 14], have: usize) -> Option<u64> {
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

/// The session's read stream: read-ahead bytes first, then the socket, all tracked.
pub(crate) struct InboundStream {
    read_ahead: Bytes,
    socket: OwnedReadHalf,
    tracker: FrameTracker,
}

impl InboundStream {
    pub(crate) fn new(read_ahead: Bytes, socket: OwnedReadHalf, max_message: usize) -> Self {
        Self {
            read_ahead,
            socket,
            tracker: FrameTracker::new(max_message),
        }
    }
}

impl AsyncRead for InboundStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        if this.read_ahead.has_remaining() {
            let n = this.read_ahead.len().min(buf.remaining());
            buf.put_slice(&this.read_ahead[..n]);
            this.read_ahead.advance(n);
        } else {
            match Pin::new(&mut this.socket).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        match this.tracker.feed(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(v) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v))),
        }
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
        assert!(matches!(t.state, Track::Header { have: 0, .. }));
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
            t.feed(&frame(true, 2, true, 70_000)[..10]),
            Err(WireViolation::TooBig(70_000))
        );
    }
}
