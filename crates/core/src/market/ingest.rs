//! One book topic as the ingester keeps it: the book is built once, every accepted update takes the
//! topic's next seq and leaves as one encoded message carrying the checksum of the book after it.

use super::book::{Book, BookError, Level};
use super::encode::{encode_book_delta, encode_book_snapshot};
use crate::tick::{Seq, TsMicros};
use crate::topic::Topic;

/// The state of one `book.*` topic at ingest.
#[derive(Debug, Clone)]
pub struct BookTopic {
    topic: Topic,
    book: Book,
    seq: Seq,
    ts: TsMicros,
}

/// What an accepted update produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The seq the update took.
    pub seq: Seq,
    /// Checksum of the book after the update.
    pub checksum: u32,
}

impl BookTopic {
    /// An empty book for `topic` keeping `depth` levels a side; its first update takes seq 1.
    pub fn new(topic: Topic, depth: usize) -> BookTopic {
        BookTopic {
            topic,
            book: Book::new(depth),
            seq: Seq(0),
            ts: TsMicros(0),
        }
    }

    /// The current book.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The last seq taken (0 before the first update).
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Applies a snapshot or delta; on success appends its message to `out` (a snapshot as the whole
    /// book, a delta as the changed levels) and takes the next seq. A refused update takes no seq and
    /// leaves `out` and the book unchanged.
    pub fn apply(
        &mut self,
        snapshot: bool,
        bids: &[Level],
        asks: &[Level],
        ts: TsMicros,
        out: &mut Vec<u8>,
    ) -> Result<Applied, BookError> {
        if snapshot {
            self.book.apply_snapshot(bids, asks)?;
        } else {
            self.book.apply_delta(bids, asks)?;
        }
        self.seq = self.seq.next();
        self.ts = ts;
        let checksum = self.book.checksum();
        if snapshot {
            encode_book_snapshot(out, &self.topic, self.seq, ts, &self.book);
        } else {
            encode_book_delta(out, &self.topic, self.seq, ts, bids, asks, checksum);
        }
        Ok(Applied {
            seq: self.seq,
            checksum,
        })
    }

    /// The current book as a snapshot message at the last seq, for a new or resynced subscriber.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        encode_book_snapshot(out, &self.topic, self.seq, self.ts, &self.book);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Decimal;

    fn lv(p: &str, s: &str) -> Level {
        (Decimal::parse(p).unwrap(), Decimal::parse(s).unwrap())
    }

    #[test]
    fn updates_take_consecutive_seqs_and_refusals_take_none() {
        let mut t = BookTopic::new(Topic::new("book.X").unwrap(), 10);
        let mut out = Vec::new();
        let a = t
            .apply(
                true,
                &[lv("10", "1")],
                &[lv("11", "1")],
                TsMicros(1),
                &mut out,
            )
            .unwrap();
        assert_eq!(a.seq, Seq(1));
        out.clear();
        assert_eq!(
            t.apply(false, &[lv("12", "1")], &[], TsMicros(2), &mut out),
            Err(BookError::Crossed)
        );
        assert!(out.is_empty());
        let b = t
            .apply(false, &[lv("10.5", "2")], &[], TsMicros(3), &mut out)
            .unwrap();
        assert_eq!(b.seq, Seq(2));
        assert_eq!(b.checksum, t.book().checksum());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["seq"].as_u64(), v["snapshot"].as_bool()),
            (Some(2), Some(false))
        );
        assert_eq!(v["checksum"], u64::from(b.checksum));

        out.clear();
        t.encode_snapshot(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["seq"], 2);
        assert_eq!(v["bids"][0][0], "10.5");
        assert_eq!(v["checksum"], u64::from(b.checksum));
    }
}
