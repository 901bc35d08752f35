//! Following frame boundaries in a client's byte stream, on bytes alone: which bytes make up the
//! next frame, and the two RFC 6455 rules the WebSocket library the gateway uses does not enforce
//! (client frames are masked, close 1002; a reassembled message fits the limit, close 1009).
//!
//! I/O-free, so the gateway's read path, the fuzz targets and the corpus replay all drive the same
//! code.

/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
const MAX_HEADER: usize = 14;

/// A violation found by the tracker (the gateway carries it inside an `io::Error` through
/// fastwebsockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireViolation {
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
pub struct FrameTracker {
    state: Track,
    message_bytes: u64,
    max_message: u64,
    /// A fragmented message has started and not finished.
    in_message: bool,
}

impl FrameTracker {
    /// A tracker for messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            state: FRAME_START,
            message_bytes: 0,
            max_message: max_message as u64,
            in_message: false,
        }
    }

    /// True between frames, outside any fragmented message.
    pub fn at_rest(&self) -> bool {
        matches!(self.state, Track::Header { have: 0, .. }) && !self.in_message
    }

    /// How many of `staged` bytes belong to the current frame (at least 1 when `staged` is not empty).
    pub fn deliverable(&self, staged: &[u8]) -> usize {
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
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WireViolation> {
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
