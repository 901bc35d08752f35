//! The SSE event id: where a stream is in every topic it named, so that any cut, at any byte,
//! resumes exactly. The browser sends the id of the last event it received whole back in
//! `Last-Event-ID` when it reconnects to the same URL, so the id lists one seq per topic in the
//! order of the URL's `topics`, after the epoch they belong to: `k3f9.1234.0.88`.

use tickcast_core::protocol::Since;
use tickcast_core::{Epoch, Seq, Topic};

/// Most bytes of a `last_event_id` read back (the epoch plus a seq per topic, far below this
/// within the topic limit of one stream).
pub(crate) const MAX_ID_BYTES: usize = 64 * 1024;

/// One stream's position: the epoch and, per named topic, the last seq it delivered (0 = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    epoch: Epoch,
    seqs: Vec<Seq>,
    /// Topics whose seq space restarted in another epoch (a `reset`): the id cannot name two
    /// epochs, so their seq stays 0 (a resume starts them from their snapshot) until every topic
    /// has moved to the same epoch, which then becomes the id's.
    moved: Vec<Option<Epoch>>,
}

impl Cursor {
    /// A stream of `topics` topics that delivered nothing yet.
    pub(crate) fn new(epoch: Epoch, topics: usize) -> Self {
        Self {
            epoch,
            seqs: vec![Seq(0); topics],
            moved: vec![None; topics],
        }
    }

    /// Topic `i` delivered up to `seq` (a tick, or the end of a gap marker).
    pub(crate) fn advance(&mut self, i: usize, seq: Seq) {
        if self.moved.get(i).is_some_and(Option::is_none) {
            self.seqs[i] = self.seqs[i].max(seq);
        }
    }

    /// Topic `i` restarted its seq space in `epoch` (a `reset`).
    pub(crate) fn reset(&mut self, i: usize, epoch: Epoch) {
        if i >= self.seqs.len() {
            return;
        }
        self.seqs[i] = Seq(0);
        self.moved[i] = (epoch != self.epoch).then_some(epoch);
        let first = self.moved[0].clone();
        if first.is_some() && self.moved.iter().all(|m| *m == first) {
            // Every topic is in the new epoch, from seq 0: the id can name it again.
            self.epoch = first.unwrap_or_else(|| self.epoch.clone());
            self.moved.iter_mut().for_each(|m| *m = None);
        }
    }

    /// Appends the id (`<epoch>.<seq>.<seq>...`).
    pub(crate) fn render(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.epoch.as_str().as_bytes());
        let mut buf = itoa::Buffer::new();
        for s in &self.seqs {
            out.push(b'.');
            out.extend_from_slice(buf.format(s.0).as_bytes());
        }
    }

    /// Reads an id back for a stream of `topics.len()` topics.
    pub(crate) fn parse(id: &str, topics: usize) -> Result<Cursor, String> {
        if id.len() > MAX_ID_BYTES {
            return Err(format!("is longer than {MAX_ID_BYTES} bytes"));
        }
        let mut parts = id.split('.');
        let epoch = parts.next().unwrap_or_default();
        let epoch = Epoch::new(epoch).map_err(|e| format!("has a bad epoch: {e}"))?;
        let seqs: Vec<Seq> = parts
            .map(|p| p.parse::<u64>().map(Seq))
            .collect::<Result<_, _>>()
            .map_err(|_| "must be <epoch>.<seq>... with decimal seqs".to_string())?;
        if seqs.len() != topics {
            return Err(format!(
                "names {} seqs for a stream of {topics} topics",
                seqs.len()
            ));
        }
        let moved = vec![None; seqs.len()];
        Ok(Cursor { epoch, seqs, moved })
    }

    /// The `since` of each topic (0 = the topic delivered nothing: it starts from its snapshot).
    pub(crate) fn since(&self, topics: &[Topic]) -> Vec<Since> {
        topics
            .iter()
            .zip(&self.seqs)
            .filter(|(_, s)| s.0 > 0)
            .map(|(t, s)| Since {
                topic: t.clone(),
                seq: *s,
                epoch: self.epoch.clone(),
            })
            .collect()
    }

    /// The epoch.
    pub(crate) fn epoch(&self) -> &Epoch {
        &self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let mut c = Cursor::new(Epoch::new("k3f9").unwrap(), 3);
        c.advance(0, Seq(1234));
        c.advance(2, Seq(88));
        c.advance(2, Seq(80)); // never back
        c.advance(7, Seq(1)); // not a topic of the stream
        let mut out = Vec::new();
        c.render(&mut out);
        assert_eq!(out, b"k3f9.1234.0.88");
        let back = Cursor::parse("k3f9.1234.0.88", 3).unwrap();
        assert_eq!(back, c);
        let t = |s: &str| Topic::new(s).unwrap();
        let since = back.since(&[t("a.A"), t("a.B"), t("a.C")]);
        assert_eq!(
            since.len(),
            2,
            "a topic that delivered nothing starts from its snapshot"
        );
        assert_eq!((since[1].topic.as_str(), since[1].seq), ("a.C", Seq(88)));
    }

    #[test]
    fn a_reset_starts_its_topic_over_and_the_last_one_moves_the_epoch() {
        let e = |s: &str| Epoch::new(s).unwrap();
        let id = |c: &Cursor| {
            let mut out = Vec::new();
            c.render(&mut out);
            String::from_utf8(out).unwrap()
        };
        let mut c = Cursor::new(e("old"), 2);
        c.advance(0, Seq(10));
        c.advance(1, Seq(20));
        c.reset(0, e("new"));
        c.advance(0, Seq(1)); // a new-epoch seq cannot be named with the old epoch
        c.advance(1, Seq(21));
        assert_eq!(id(&c), "old.0.21");
        c.reset(1, e("new"));
        assert_eq!(id(&c), "new.0.0");
        c.advance(0, Seq(2));
        c.advance(1, Seq(1));
        assert_eq!(id(&c), "new.2.1");
        // A reset to the id's own epoch just starts the topic over.
        c.reset(0, e("new"));
        assert_eq!(id(&c), "new.0.1");
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        assert!(Cursor::parse("k3f9.1.2", 3).unwrap_err().contains("2 seqs"));
        assert!(Cursor::parse("k3f9.1.x", 2)
            .unwrap_err()
            .contains("decimal"));
        assert!(Cursor::parse("bad epoch!.1", 1)
            .unwrap_err()
            .contains("epoch"));
        assert!(Cursor::parse("", 0).is_err());
        assert!(Cursor::parse(&"1".repeat(MAX_ID_BYTES + 1), 0)
            .unwrap_err()
            .contains("longer"));
    }
}
