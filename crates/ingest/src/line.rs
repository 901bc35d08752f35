//! Cuts a byte stream (a TCP connection, a file) into runs of complete lines, numbering them and
//! enforcing the line cap, with memory bounded by the cap plus one read.
//!
//! A line over the cap is reported as soon as its buffered part exceeds the cap, and the rest of it
//! is discarded as it arrives, so one endless line cannot grow the buffer.

use bytes::BytesMut;

/// What the framer produced.
#[derive(Debug, PartialEq)]
pub enum Framed {
    /// Complete lines (each within the cap, with their `\n`), the first numbered `first_line`.
    Lines {
        /// Number of the first line in `data`, from 1.
        first_line: u64,
        /// The lines.
        data: BytesMut,
    },
    /// Line `line` exceeded the cap and is skipped.
    TooLong {
        /// Its number.
        line: u64,
    },
}

/// The stateful line splitter of one stream.
#[derive(Debug)]
pub struct LineFramer {
    buf: BytesMut,
    max_line: usize,
    /// Number of the next line not yet returned.
    next_line: u64,
    /// Inside an over-long line already reported: drop bytes up to its `\n`.
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (without the newline).
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_line,
            next_line: 1,
            discarding: false,
        }
    }

    /// The buffer to read into (`AsyncReadExt::read_buf`), with at least `additional` spare bytes.
    pub fn read_buf(&mut self, additional: usize) -> &mut BytesMut {
        self.buf.reserve(additional);
        &mut self.buf
    }

    /// Restarts numbering at line 1 with an empty buffer (a replay loops to the file's start).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.next_line = 1;
        self.discarding = false;
    }

    /// The next run of complete lines or over-long line in what was read so far, if any.
    pub fn next_framed(&mut self) -> Option<Framed> {
        if self.discarding {
            match memchr(&self.buf, 0) {
                Some(nl) => {
                    let _ = self.buf.split_to(nl + 1);
                    self.discarding = false;
                }
                None => {
                    self.buf.clear();
                    return None;
                }
            }
        }
        let mut pos = 0;
        let mut lines = 0;
        loop {
            match memchr(&self.buf, pos) {
                Some(nl) if nl - pos > self.max_line + 1 => {
                    // `+ 1`: a trailing `\r` does not count against the cap.
                    if pos > 0 {
                        break;
                    }
                    let _ = self.buf.split_to(nl + 1);
                    return Some(self.too_long());
                }
                Some(nl) => {
                    pos = nl + 1;
                    lines += 1;
                }
                None => {
                    if pos == 0 && self.buf.len() > self.max_line + 1 {
                        self.buf.clear();
                        self.discarding = true;
                        return Some(self.too_long());
                    }
                    break;
                }
            }
        }
        if lines == 0 {
            return None;
        }
        let first_line = self.next_line;
        self.next_line += lines;
        Some(Framed::Lines {
            first_line,
            data: self.buf.split_to(pos),
        })
    }

    /// At end of stream: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Framed> {
        if self.discarding || self.buf.is_empty() {
            self.buf.clear();
            return None;
        }
        let first_line = self.next_line;
        self.next_line += 1;
        Some(Framed::Lines {
            first_line,
            data: self.buf.split(),
        })
    }

    fn too_long(&mut self) -> Framed {
        let line = self.next_line;
        self.next_line += 1;
        Framed::TooLong { line }
    }
}

fn memchr(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut LineFramer, bytes: &[u8]) -> Vec<Framed> {
        f.read_buf(bytes.len()).extend_from_slice(bytes);
        std::iter::from_fn(|| f.next_framed()).collect()
    }

    fn lines(first_line: u64, s: &str) -> Framed {
        Framed::Lines {
            first_line,
            data: BytesMut::from(s),
        }
    }

    #[test]
    fn splits_across_reads_and_numbers_lines() {
        let mut f = LineFramer::new(8);
        assert_eq!(feed(&mut f, b"ab\ncd"), vec![lines(1, "ab\n")]);
        assert_eq!(feed(&mut f, b"e\nf\n"), vec![lines(2, "cde\nf\n")]);
        assert_eq!(feed(&mut f, b"tail"), vec![]);
        assert_eq!(f.finish(), Some(lines(4, "tail")));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        let mut f = LineFramer::new(4);
        // A complete long line between good ones: good run, the long one, the next good run.
        assert_eq!(
            feed(&mut f, b"ok\n0123456789\nok2\n"),
            vec![
                lines(1, "ok\n"),
                Framed::TooLong { line: 2 },
                lines(3, "ok2\n")
            ]
        );
        // A long line arriving in pieces is reported before its end arrives, then discarded.
        assert_eq!(feed(&mut f, b"abcdefgh"), vec![Framed::TooLong { line: 4 }]);
        assert_eq!(feed(&mut f, b"ijklmnop"), vec![]);
        assert_eq!(feed(&mut f, b"qr\nfine\n"), vec![lines(5, "fine\n")]);
        // A CRLF line exactly at the cap is fine.
        assert_eq!(feed(&mut f, b"1234\r\n"), vec![lines(6, "1234\r\n")]);
    }
}
