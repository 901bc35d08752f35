//! Server-to-client WebSocket frames, encoded once into a single [`Bytes`].
//!
//! Frames sent by a server are unmasked and tickcast negotiates no extension, so the wire bytes of a
//! message are the same for every client: header and payload are built once, and each subscriber gets
//! a clone of the same [`Bytes`] (a refcount bump). Small frames, which ticks are, live inline in one
//! heap block together with their refcount: one allocation per tick.

use bytes::Bytes;

use crate::json;
use crate::tick::Tick;

/// WebSocket opcodes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    /// A UTF-8 text message.
    Text = 0x1,
    /// Connection close, with code and reason.
    Close = 0x8,
    /// Keepalive probe.
    Ping = 0x9,
    /// Reply to a ping.
    Pong = 0xA,
}

/// RFC 6455 close codes tickcast sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal closure.
    Normal = 1000,
    /// The server is shutting down.
    GoingAway = 1001,
    /// The peer broke the protocol (unmasked frame, reserved bits, bad fragmentation...).
    Protocol = 1002,
    /// A text frame held invalid UTF-8.
    InvalidPayload = 1007,
    /// A policy was violated: slow consumer, rate limit, expired credentials.
    Policy = 1008,
    /// A message exceeded the configured size limit.
    TooBig = 1009,
    /// The server hit an unexpected condition.
    Internal = 1011,
    /// The server is overloaded; try again later.
    TryAgainLater = 1013,
}

/// Payloads up to this size are stored inline with the refcount (one allocation per frame).
const INLINE_CAP: usize = 252;
/// The largest header a frame under 64 KiB needs; longer frames take the heap path.
const INLINE_HEAD: usize = 4;

/// A complete, pre-encoded server frame (header + payload): clone it per subscriber.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}

/// Owner of an inline frame: header and payload in one fixed block, so `Bytes::from_owner` makes a
/// single allocation that also holds the refcount.
struct InlineFrame {
    buf: [u8; INLINE_HEAD + INLINE_CAP],
    start: u8,
    end: u16,
}

impl AsRef<[u8]> for InlineFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }
}

/// Writes the header of an unmasked, final frame into `head` and returns its length (2, 4 or 10).
pub fn write_header(opcode: OpCode, payload_len: usize, head: &mut [u8; 10]) -> usize {
    head[0] = 0x80 | opcode as u8;
    if payload_len < 126 {
        head[1] = payload_len as u8;
        2
    } else if payload_len <= u16::MAX as usize {
        head[1] = 126;
        head[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

impl Frame {
    /// No bytes at all: a placeholder for a frame not encoded yet.
    pub const fn empty() -> Frame {
        Frame(Bytes::new())
    }

    /// Frames `payload` with the given opcode.
    pub fn new(opcode: OpCode, payload: &[u8]) -> Frame {
        let mut head = [0u8; 10];
        let hlen = write_header(opcode, payload.len(), &mut head);
        if payload.len() <= INLINE_CAP {
            let mut block = InlineFrame {
                buf: [0u8; INLINE_HEAD + INLINE_CAP],
                start: (INLINE_HEAD - hlen) as u8,
                end: (INLINE_HEAD + payload.len()) as u16,
            };
            block.buf[INLINE_HEAD - hlen..INLINE_HEAD].copy_from_slice(&head[..hlen]);
            block.buf[INLINE_HEAD..INLINE_HEAD + payload.len()].copy_from_slice(payload);
            Frame(Bytes::from_owner(block))
        } else {
            let mut v = Vec::with_capacity(hlen + payload.len());
            v.extend_from_slice(&head[..hlen]);
            v.extend_from_slice(payload);
            Frame(Bytes::from(v))
        }
    }

    /// A text frame carrying `payload` (which must be UTF-8, as all of tickcast's JSON is).
    pub fn text(payload: &[u8]) -> Frame {
        Frame::new(OpCode::Text, payload)
    }

    /// A pong echoing a ping's payload.
    pub fn pong(payload: &[u8]) -> Frame {
        Frame::new(OpCode::Pong, payload)
    }

    /// A server ping; the payload comes back in the pong.
    pub fn ping(payload: &[u8]) -> Frame {
        Frame::new(OpCode::Ping, payload)
    }

    /// A close frame with a code and a short reason (truncated to fit the 125-byte control limit).
    pub fn close(code: CloseCode, reason: &str) -> Frame {
        Frame::close_raw(code as u16, reason)
    }

    /// A close frame with any code, e.g. echoing the peer's.
    pub fn close_raw(code: u16, reason: &str) -> Frame {
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = Vec::with_capacity(2 + cut);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        Frame::new(OpCode::Close, &payload)
    }

    /// The complete wire bytes (header + payload).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The complete wire bytes as a slice.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Wire length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a frame with no bytes (never produced by the constructors).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The payload without the header.
    pub fn payload(&self) -> &[u8] {
        let b = &self.0;
        let off = match b.get(1).map(|l| l & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            Some(_) => 2,
            None => 0,
        };
        b.get(off..).unwrap_or_default()
    }

    /// Whether this is a text frame (a JSON message).
    pub fn is_text(&self) -> bool {
        self.0.first().map(|b| b & 0x0f) == Some(OpCode::Text as u8)
    }

    /// Whether this is a close frame.
    pub fn is_close(&self) -> bool {
        self.0.first().map(|b| b & 0x0f) == Some(OpCode::Close as u8)
    }
}

/// Serializes ticks into frames, reusing one scratch buffer; one per feed.
#[derive(Default)]
pub struct TickEncoder {
    scratch: Vec<u8>,
}

impl TickEncoder {
    /// A new encoder.
    pub fn new() -> Self {
        Self {
            scratch: Vec::with_capacity(256),
        }
    }

    /// Serializes `tick` once into a text frame, the bytes every subscriber will get.
    pub fn encode(&mut self, tick: &Tick) -> Frame {
        self.scratch.clear();
        write_tick_json(&mut self.scratch, tick);
        Frame::text(&self.scratch)
    }
}

/// Appends the protocol v1 JSON of `tick`.
pub fn write_tick_json(out: &mut Vec<u8>, tick: &Tick) {
    out.extend_from_slice(b"{\"type\":\"tick\",\"topic\":\"");
    // Topics are validated to ASCII letters, digits and ._:- so they need no escaping.
    out.extend_from_slice(tick.topic.as_str().as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    json::write_u64(out, tick.seq.0);
    out.extend_from_slice(b",\"ts\":");
    json::write_u64(out, tick.ts.0);
    out.extend_from_slice(b",\"bid\":");
    json::write_f64(out, tick.bid.0);
    out.extend_from_slice(b",\"ask\":");
    json::write_f64(out, tick.ask.0);
    out.extend_from_slice(b",\"last\":");
    json::write_f64(out, tick.last.0);
    out.extend_from_slice(b",\"size\":");
    json::write_f64(out, tick.size.0);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::{Price, Seq, Size, TsMicros};
    use crate::topic::Topic;

    #[test]
    fn header_for_small_payload() {
        let f = Frame::text(b"hello");
        assert_eq!(&f.as_slice()[..2], &[0x81, 5]);
        assert_eq!(f.payload(), b"hello");
        assert_eq!(f.len(), 7);
    }

    #[test]
    fn header_for_medium_payload() {
        for len in [126usize, 252, 253, 1000, 65535] {
            let p = vec![b'x'; len];
            let f = Frame::text(&p);
            assert_eq!(f.as_slice()[0], 0x81);
            assert_eq!(f.as_slice()[1], 126);
            assert_eq!(
                u16::from_be_bytes([f.as_slice()[2], f.as_slice()[3]]) as usize,
                len
            );
            assert_eq!(f.payload(), &p[..]);
        }
    }

    #[test]
    fn header_for_large_payload() {
        let p = vec![b'y'; 70_000];
        let f = Frame::text(&p);
        assert_eq!(&f.as_slice()[..2], &[0x81, 127]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&f.as_slice()[2..10]);
        assert_eq!(u64::from_be_bytes(len), 70_000);
        assert_eq!(f.payload().len(), 70_000);
    }

    #[test]
    fn control_frames() {
        let c = Frame::close(CloseCode::Policy, "slow consumer");
        assert!(c.is_close());
        assert_eq!(c.as_slice()[0], 0x88);
        assert_eq!(&c.payload()[..2], &1008u16.to_be_bytes());
        assert_eq!(&c.payload()[2..], b"slow consumer");
        let long = Frame::close(CloseCode::GoingAway, &"é".repeat(100));
        assert!(long.payload().len() <= 125);
        assert_eq!(Frame::pong(b"p").as_slice(), &[0x8A, 1, b'p']);
    }

    #[test]
    fn tick_json_matches_protocol() {
        let tick = Tick {
            topic: Topic::new("ticker.AAPL").unwrap(),
            seq: Seq(123),
            ts: TsMicros(1_763_700_000_000_000),
            bid: Price(189.12),
            ask: Price(189.14),
            last: Price(18913.0 / 100.0),
            size: Size(200.0),
        };
        let f = TickEncoder::new().encode(&tick);
        assert_eq!(
            std::str::from_utf8(f.payload()).unwrap(),
            r#"{"type":"tick","topic":"ticker.AAPL","seq":123,"ts":1763700000000000,"bid":189.12,"ask":189.14,"last":189.13,"size":200}"#
        );
        let v: serde_json::Value = serde_json::from_slice(f.payload()).unwrap();
        assert_eq!(v["seq"], 123);
    }
}
