//! Per-topic shared state: identity, epoch, sequence counter, last-value cache, history, and which
//! shards listen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tickcast_core::market::encode::encode_book_snapshot;
use tickcast_core::market::{Book, BookError, Level};
use tickcast_core::stream::gap_frame;
use tickcast_core::{Epoch, Frame, GapReason, NotRecovered, Seq, Topic, TopicClass, TsMicros};

use crate::history::{History, HistoryLimits, Replayed, Stored};

/// Dense numeric id of a topic, used to index per-shard tables without hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub u32);

/// The latest tick of a topic, as the exact bytes subscribers receive.
#[derive(Debug, Clone)]
pub struct LastTick {
    /// Its sequence number.
    pub seq: Seq,
    /// Its ingest time.
    pub ts: TsMicros,
    /// Its encoded frame.
    pub frame: Frame,
}

/// What a topic's publish path guards with one lock: the latest tick, the history, and whether a
/// feed serves the topic. One lock, so a subscriber that reads the latest seq and the history
/// together sees them agree (the recovery race depends on it).
#[derive(Debug)]
struct Log {
    /// The seq space `last` and the history belong to; changes only by [`TopicState::reset`].
    epoch: Epoch,
    last: Option<LastTick>,
    history: History,
    feed_up: bool,
    /// A `book` topic's order book, built once here from the deltas the feed publishes; `None`
    /// for other topics and before the first book update.
    book: Option<BookLog>,
}

/// The order book behind a `book` topic, at the version of the topic's latest seq.
#[derive(Debug)]
struct BookLog {
    book: Book,
    /// False after a refused update, until the next snapshot: the book may differ from the
    /// feed's, so deltas are refused and the gap is announced when a snapshot resumes it.
    trusted: bool,
    /// The snapshot message of the current version, encoded on first demand and shared by every
    /// subscriber that opens or resyncs at this version; cleared by the next update.
    snapshot: Option<Frame>,
    /// Snapshots encoded on demand so far (a feed's own snapshots are not counted).
    encodings: u64,
}

impl BookLog {
    fn new(depth: usize) -> BookLog {
        BookLog {
            book: Book::new(depth),
            trusted: true,
            snapshot: None,
            encodings: 0,
        }
    }

    /// Applies `update` to the book; a refused one leaves it unchanged. Trusted again after it.
    fn apply(&mut self, update: &BookUpdate<'_>) -> Result<(), BookError> {
        if update.snapshot {
            self.book.apply_snapshot(update.bids, update.asks)?;
        } else {
            self.book.apply_delta(update.bids, update.asks)?;
        }
        self.trusted = true;
        Ok(())
    }

    /// The book may differ from its source's: not served until the next snapshot.
    fn distrust(&mut self) {
        self.trusted = false;
        self.snapshot = None;
    }

    /// The message `update` (just applied) makes at `seq`: a snapshot of the whole book, which is
    /// then this version's snapshot (no second encoding), or the changed levels with the checksum
    /// of the book after them.
    fn encode(
        &mut self,
        topic: &Topic,
        update: &BookUpdate<'_>,
        seq: Seq,
        ts: TsMicros,
        out: &mut Vec<u8>,
    ) -> Frame {
        use tickcast_core::market::encode::encode_book_delta;
        out.clear();
        if update.snapshot {
            encode_book_snapshot(out, topic, seq, ts, &self.book);
            let frame = Frame::text(out);
            self.snapshot = Some(frame.clone());
            frame
        } else {
            let checksum = self.book.checksum();
            encode_book_delta(out, topic, seq, ts, update.bids, update.asks, checksum);
            self.snapshot = None;
            Frame::text(out)
        }
    }
}

/// What [`TopicState::store_book_at`] did with an update.
#[derive(Debug)]
pub(crate) enum BookAt {
    /// Applied and stored: the message it made, and what storing it did (its gap marker).
    Stored(Frame, Store),
    /// Not newer than the latest seq: dropped.
    Stale,
    /// A resync for a book already in sync: not needed.
    InSync,
}

/// What an upstream node says of a book update it numbered (see [`TopicState::store_book_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    /// The update's seq in the upstream node's seq space.
    pub seq: Seq,
    /// The upstream book's checksum after the update, when it sent one.
    pub checksum: Option<u32>,
    /// The depth the upstream node keeps (from its snapshots), so both books trim alike.
    pub depth: Option<usize>,
    /// A copy of the upstream book sent beside the stream (not a message of it): taken only
    /// by a book that lost sync.
    pub resync: bool,
}

/// A book snapshot for one subscriber: the book at `seq`, as one shared message.
#[derive(Debug, Clone)]
pub struct BookSnapshot {
    /// The seq of the last update the snapshot includes.
    pub seq: Seq,
    /// The encoded `book` message with `snapshot:true`; empty while the book is untrusted (no
    /// book can be sent until the feed's next snapshot).
    pub frame: Frame,
}

/// A snapshot or delta for a `book` topic, as a feed publishes it.
#[derive(Debug, Clone, Copy)]
pub struct BookUpdate<'a> {
    /// Replaces the whole book (true) or changes the listed levels (false; size 0 removes).
    pub snapshot: bool,
    /// Bid levels.
    pub bids: &'a [Level],
    /// Ask levels.
    pub asks: &'a [Level],
}

impl Log {
    /// The snapshot of the current book version (see [`BookLog::snapshot`]).
    fn book_snapshot(&mut self, topic: &Topic) -> Option<BookSnapshot> {
        let last = self.last.as_ref()?;
        let (seq, ts) = (last.seq, last.ts);
        let book = self.book.as_mut()?;
        if !book.trusted {
            // Nothing to send but where the stream stands: the feed's next snapshot resumes it.
            return Some(BookSnapshot {
                seq,
                frame: Frame::empty(),
            });
        }
        let frame = book.snapshot.get_or_insert_with(|| {
            book.encodings += 1;
            let mut out = Vec::with_capacity(128 + 48 * 2 * book.book.depth());
            encode_book_snapshot(&mut out, topic, seq, ts, &book.book);
            Frame::text(&out)
        });
        Some(BookSnapshot {
            seq,
            frame: frame.clone(),
        })
    }
}

/// How a new subscriber's stream of a topic starts ([`TopicState::open`]).
#[derive(Debug)]
pub struct Opening {
    /// Ticks at or below this seq reached the subscriber through this opening; the live stream
    /// goes on after it.
    pub after: Seq,
    /// The ingest time of tick `after` (0 before the first tick).
    pub after_ts: TsMicros,
    /// What to queue first, oldest first: the missed ticks (and upstream `gap` markers) when
    /// recovered, else the latest tick as the snapshot, if any.
    pub frames: Vec<Replayed>,
    /// The recovery's outcome, when one was asked for.
    pub recovery: Option<Result<(), NotRecovered>>,
}

/// What [`TopicState::store`] did with a tick.
#[derive(Debug)]
pub(crate) enum Store {
    /// Not newer than the latest tick: dropped.
    Stale,
    /// Stored; `gap` is the `upstream` marker (and the first seq it covers) when the tick's seq
    /// skipped past the latest + 1.
    Stored {
        gap: Option<(Seq, Frame)>,
        history: Stored,
    },
}

/// Everything the bus knows about one topic; shared by publishers and shards.
#[derive(Debug)]
pub struct TopicState {
    id: TopicId,
    topic: Topic,
    /// From the channel: how a lagging subscriber may lose this topic's messages.
    class: TopicClass,
    /// Next seq handed out by [`TopicState::next_seq`]; per topic, so several feeds agree.
    seq: AtomicU64,
    /// Last-value cache and history. A mutex rather than an atomic pointer so storing a frame
    /// allocates nothing; it is held for a refcount bump and a ring push, by one publisher and the
    /// rare subscribe.
    log: Mutex<Log>,
    /// Bit i set = shard i has at least one subscriber; publishers skip the others.
    pub(crate) shard_mask: AtomicU64,
    /// Whether a feed has claimed this topic. A topic only subscribers asked for is "requested": it
    /// counts against the requested-topic limit, never a feed's, and is reaped once unused.
    fed: AtomicBool,
    /// When the reaper first saw this requested topic unused; cleared when it is used again.
    pub(crate) idle_since: Mutex<Option<Instant>>,
    /// A `book` topic whose book refused an update and awaits a snapshot (see `BookLog::trusted`).
    untrusted: AtomicBool,
}

impl TopicState {
    pub(crate) fn new(
        id: TopicId,
        topic: Topic,
        fed: bool,
        epoch: Epoch,
        history: HistoryLimits,
    ) -> Self {
        Self {
            id,
            class: topic.class(),
            topic,
            seq: AtomicU64::new(0),
            log: Mutex::new(Log {
                epoch,
                last: None,
                history: History::new(history),
                feed_up: fed,
                book: None,
            }),
            shard_mask: AtomicU64::new(0),
            fed: AtomicBool::new(fed),
            idle_since: Mutex::new(None),
            untrusted: AtomicBool::new(false),
        }
    }

    /// Whether a feed has claimed this topic (it may still have published nothing).
    pub fn is_fed(&self) -> bool {
        self.fed.load(Ordering::Acquire)
    }

    /// Marks the topic as a feed's; true if it was only requested until now.
    pub(crate) fn claim_for_feed(&self) -> bool {
        !self.fed.swap(true, Ordering::AcqRel)
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a tick has been published (the last-value cache is filled).
    pub fn has_data(&self) -> bool {
        self.log().last.is_some()
    }

    /// The seq space of this topic.
    pub fn epoch(&self) -> Epoch {
        self.log().epoch.clone()
    }

    /// Moves the topic to the seq space `epoch` (its upstream started over): the latest tick, the
    /// history and the seq counter are dropped, so seq 1 of the new epoch is accepted. Returns what
    /// the history freed and whether the topic had a tick, or `None` when it was already in `epoch`.
    pub(crate) fn reset(&self, epoch: &Epoch) -> Option<(Stored, bool)> {
        let mut log = self.log();
        if log.epoch == *epoch {
            return None;
        }
        log.epoch = epoch.clone();
        let had_data = log.last.take().is_some();
        log.book = None;
        let freed = log.history.clear();
        self.seq.store(0, Ordering::Relaxed);
        Some((freed, had_data))
    }

    /// Whether a feed serves this topic: set by every publish, cleared by
    /// [`set_feed_down`](Self::set_feed_down) when the feed that published it goes away.
    pub fn feed_up(&self) -> bool {
        self.log().feed_up
    }

    /// Marks the topic as no longer served (its feed disconnected or stopped); the next publish
    /// marks it served again. Heartbeats carry it as `feed_up`.
    pub fn set_feed_down(&self) {
        self.log().feed_up = false;
    }

    /// Ticks and bytes the history holds now.
    pub fn history_usage(&self) -> (usize, usize) {
        let log = self.log();
        (log.history.len(), log.history.bytes())
    }

    /// The dense id.
    pub fn id(&self) -> TopicId {
        self.id
    }

    /// The topic name.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// How a lagging subscriber may lose this topic's messages.
    pub fn class(&self) -> TopicClass {
        self.class
    }

    /// A snapshot of the topic's book at its latest seq (`None` if it has no book): encoded once
    /// per book version, whoever asks.
    pub fn book_snapshot(&self) -> Option<BookSnapshot> {
        self.log().book_snapshot(&self.topic)
    }

    /// Snapshots of this book encoded for subscribers so far: one per version asked for, however
    /// many subscribers opened or resynced at it.
    pub fn book_snapshot_encodings(&self) -> u64 {
        self.log().book.as_ref().map_or(0, |b| b.encodings)
    }

    /// Withdraws the book: its feed lost sync with the venue's (a sequence gap, a checksum
    /// mismatch), so it is untrusted until the feed publishes a snapshot, as after a refused
    /// update. New subscribers get no snapshot meanwhile, deltas are refused, and one seq is left
    /// unused so every subscriber gets an `upstream` gap before that snapshot. False if the topic
    /// has no book.
    pub fn withdraw_book(&self) -> bool {
        let mut log = self.log();
        let published = log.last.is_some();
        let Some(book) = log.book.as_mut() else {
            return false;
        };
        if book.trusted && published {
            book.distrust();
            self.untrusted.store(true, Ordering::Relaxed);
            self.skip_seqs(1);
        }
        true
    }

    /// Whether this book refused an update and awaits a snapshot: not served until one comes.
    pub fn is_untrusted(&self) -> bool {
        self.untrusted.load(Ordering::Relaxed)
    }

    /// The book's levels at the latest seq (for `/readyz`-style inspection and tests).
    pub fn book(&self) -> Option<Book> {
        self.log().book.as_ref().map(|b| b.book.clone())
    }

    /// Assigns the next per-topic sequence number (1 for the first tick).
    pub fn next_seq(&self) -> Seq {
        Seq(self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Leaves the next `n` seqs unused, for ticks the feed lost: the next tick's seq jumps, and the
    /// jump reaches subscribers as an `upstream` gap marker.
    pub fn skip_seqs(&self, n: u64) {
        self.seq.fetch_add(n, Ordering::Relaxed);
    }

    /// Moves the counter forward to at least `seq`, for ticks whose seq was assigned upstream.
    pub fn observe_seq(&self, seq: Seq) {
        self.seq.fetch_max(seq.0, Ordering::Relaxed);
    }

    /// The cached latest tick, if any.
    pub fn last(&self) -> Option<LastTick> {
        self.log().last.clone()
    }

    /// Stores `frame` as the latest tick and in the history, unless a newer one is there. A seq
    /// past the latest + 1 means the feed lost ticks: the `upstream` gap marker is made here, once,
    /// and kept in the history too, so live subscribers and recovering ones are both told.
    pub(crate) fn store(&self, seq: Seq, ts: TsMicros, frame: &Frame, now: Instant) -> Store {
        self.store_locked(&mut self.log(), seq, ts, frame, now)
    }

    fn store_locked(
        &self,
        log: &mut Log,
        seq: Seq,
        ts: TsMicros,
        frame: &Frame,
        now: Instant,
    ) -> Store {
        let prev = log.last.as_ref().map(|l| l.seq);
        if prev.is_some_and(|p| p >= seq) {
            return Store::Stale;
        }
        let to = Seq(seq.0.saturating_sub(1));
        let gap = prev.filter(|p| p.next() < seq).map(|p| {
            let from = p.next();
            (from, gap_frame(&self.topic, from, to, GapReason::Upstream))
        });
        let mut history = Stored::default();
        if let Some((from, g)) = &gap {
            history += log.history.push_gap(*from, to, g, now);
        }
        history += log.history.push(seq, frame, now);
        log.last = Some(LastTick {
            seq,
            ts,
            frame: frame.clone(),
        });
        log.feed_up = true;
        Store::Stored { gap, history }
    }

    /// Applies a book update and stores the message it makes, under one lock so the book, the
    /// latest seq and the history always agree (a subscriber opening meanwhile gets a snapshot at
    /// exactly its `after`). The update takes the topic's next seq and leaves as a delta (the
    /// changed levels) or a snapshot, with the checksum of the book after it. A refused update
    /// (negative size, crossed result) takes no seq and changes nothing.
    pub(crate) fn store_book(
        &self,
        update: BookUpdate<'_>,
        depth: usize,
        ts: TsMicros,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(Seq, Frame, Store), BookError> {
        let mut log = self.log();
        match &log.book {
            None if !update.snapshot => return Err(BookError::NoSnapshot),
            Some(b) if !b.trusted && !update.snapshot => {
                // Its seq is left unused: subscribers see the gap when a snapshot resumes the book.
                self.skip_seqs(1);
                return Err(BookError::AwaitingSnapshot);
            }
            _ => {}
        }
        let published = log.last.is_some();
        let slot = log.book.get_or_insert_with(|| BookLog::new(depth));
        if let Err(e) = slot.apply(&update) {
            if published {
                slot.distrust();
                self.untrusted.store(true, Ordering::Relaxed);
                self.skip_seqs(1);
            } else {
                log.book = None; // a refused first snapshot leaves no book
            }
            return Err(e);
        }
        self.untrusted.store(false, Ordering::Relaxed);
        let seq = self.next_seq();
        let frame = slot.encode(&self.topic, &update, seq, ts, out);
        let stored = self.store_locked(&mut log, seq, ts, &frame, now);
        Ok((seq, frame, stored))
    }

    /// Applies a book update numbered upstream (a gateway behind an ingest node): `upstream.seq`
    /// is the ingest node's seq and `upstream.checksum` its book's checksum after the update. A
    /// delta applies only to a trusted book at exactly the previous seq and must reproduce that
    /// checksum; otherwise the book turns untrusted (no snapshot served, deltas refused) until a
    /// snapshot comes, and the seqs skipped meanwhile reach subscribers as an `upstream` gap before
    /// it. A `resync` snapshot (the ingest node's periodic copy of its book, outside the message
    /// stream) is taken only by an untrusted or missing book: a trusted one follows its deltas.
    pub(crate) fn store_book_at(
        &self,
        update: BookUpdate<'_>,
        upstream: Upstream,
        depth: usize,
        ts: TsMicros,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<BookAt, BookError> {
        let mut log = self.log();
        let seq = upstream.seq;
        if log.last.as_ref().is_some_and(|l| l.seq >= seq) {
            return Ok(BookAt::Stale);
        }
        let trusted = log.book.as_ref().is_some_and(|b| b.trusted);
        if upstream.resync && trusted {
            return Ok(BookAt::InSync);
        }
        if !update.snapshot {
            let follows = log.last.as_ref().is_some_and(|l| l.seq.next() == seq);
            if !(trusted && follows) {
                let e = match log.book.as_mut() {
                    None => BookError::NoSnapshot,
                    Some(b) => {
                        b.distrust();
                        BookError::AwaitingSnapshot
                    }
                };
                self.untrusted.store(log.book.is_some(), Ordering::Relaxed);
                return Err(e);
            }
        }
        // The upstream node's depth (bounded as a local one is), so that both books trim alike.
        let depth = upstream
            .depth
            .map_or(depth, |d| d.clamp(1, crate::bus::MAX_BOOK_DEPTH));
        if update.snapshot && log.book.as_ref().is_some_and(|b| b.book.depth() != depth) {
            log.book = None; // rebuilt at that depth
        }
        let slot = log.book.get_or_insert_with(|| BookLog::new(depth));
        let applied = slot.apply(&update).and_then(|()| match upstream.checksum {
            Some(c) if slot.book.checksum() != c => Err(BookError::ChecksumMismatch),
            _ => Ok(()),
        });
        if let Err(e) = applied {
            slot.distrust();
            self.untrusted.store(true, Ordering::Relaxed);
            return Err(e);
        }
        self.untrusted.store(false, Ordering::Relaxed);
        self.observe_seq(seq);
        let frame = slot.encode(&self.topic, &update, seq, ts, out);
        let stored = self.store_locked(&mut log, seq, ts, &frame, now);
        Ok(BookAt::Stored(frame, stored))
    }

    /// How a new subscriber's stream starts: from the history after `since` (when given, its
    /// epoch is this topic's, and the history still holds every seq after it), else from the
    /// latest tick. Read under the lock that publishing takes, so together with the subscriber's
    /// shard bit being set first, every tick is either in the returned frames or pushed live after
    /// `after`, never both and never neither.
    pub fn open(&self, since: Option<(Seq, &Epoch)>, now: Instant) -> Opening {
        let mut log = self.log();
        // A book's latest message is a delta, useless alone: its snapshot stands in for it.
        let book = log.book_snapshot(&self.topic);
        let last = log.last.as_ref();
        let after = last.map(|l| l.seq).unwrap_or_default();
        let after_ts = last.map(|l| l.ts).unwrap_or_default();
        let snapshot = || {
            last.map(|l| match &book {
                // An untrusted book has nothing to show yet.
                Some(b) if b.frame.is_empty() => Vec::new(),
                _ => vec![Replayed {
                    seq: l.seq,
                    gap_from: None,
                    frame: book
                        .as_ref()
                        .map_or_else(|| l.frame.clone(), |b| b.frame.clone()),
                }],
            })
            .unwrap_or_default()
        };
        let Some((from, epoch)) = since else {
            return Opening {
                after,
                after_ts,
                frames: snapshot(),
                recovery: None,
            };
        };
        let outcome = if *epoch != log.epoch {
            Err(NotRecovered::EpochChanged)
        } else if from == after {
            Ok(Vec::new())
        } else if from > after {
            // A seq this topic never issued in this epoch: nothing to recover it from.
            Err(NotRecovered::NoHistory)
        } else {
            log.history.after(from, now)
        };
        match outcome {
            Ok(frames) => Opening {
                after,
                after_ts,
                frames,
                recovery: Some(Ok(())),
            },
            Err(why) => Opening {
                after,
                after_ts,
                frames: snapshot(),
                recovery: Some(Err(why)),
            },
        }
    }

    /// Drops history entries older than the topic's `history_ttl`; returns what was freed.
    pub(crate) fn expire_history(&self, now: Instant) -> Stored {
        self.log().history.expire(now)
    }

    /// The history bounds this topic was created with.
    pub fn history_limits(&self) -> HistoryLimits {
        self.log().history.limits()
    }

    /// Whether any shard has a subscriber.
    pub fn has_subscribers(&self) -> bool {
        self.shard_mask.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, BusConfig};
    use tickcast_core::market::Decimal;

    /// A gateway's copy of a book numbered upstream: deltas chain only on a trusted book at the
    /// previous seq with the source's checksum; a jump or another checksum distrusts it until a
    /// snapshot, and the periodic resync snapshot is taken only then.
    #[test]
    fn a_book_numbered_upstream_follows_in_order_deltas_and_resyncs_only_when_out_of_sync() {
        let bus = Bus::new(&BusConfig::default());
        let t = bus
            .topic(&Topic::new("book.X").expect("topic"))
            .expect("state");
        let lv = |p: i128, s: i128| (Decimal::new(p, 0), Decimal::new(s, 0));
        let (now, ts, mut out) = (Instant::now(), TsMicros(1), Vec::new());
        let up = |seq: u64, checksum: Option<u32>, resync: bool| Upstream {
            seq: Seq(seq),
            checksum,
            depth: None,
            resync,
        };
        let snap = |bid| BookUpdate {
            snapshot: true,
            bids: std::slice::from_ref(bid),
            asks: &[],
        };
        let (b10, b11, a20) = ([lv(10, 1)], [lv(11, 2)], [lv(20, 1)]);
        let delta = BookUpdate {
            snapshot: false,
            bids: &b11,
            asks: &a20,
        };
        // The source's checksum after the delta, from a book of its own.
        let mut source = Book::new(10);
        source.apply_snapshot(&b10, &[]).expect("snapshot");
        source.apply_delta(&b11, &a20).expect("delta");
        let sum = source.checksum();

        let mut at =
            |u: BookUpdate<'_>, upstream| t.store_book_at(u, upstream, 10, ts, now, &mut out);
        // No book yet: a delta is refused, the stream's snapshot starts it.
        assert!(matches!(
            at(delta, up(4, Some(sum), false)),
            Err(BookError::NoSnapshot)
        ));
        assert!(matches!(
            at(snap(&b10[0]), up(5, None, false)),
            Ok(BookAt::Stored(..))
        ));
        assert!(matches!(
            at(snap(&b10[0]), up(5, None, true)),
            Ok(BookAt::Stale)
        ));
        assert!(matches!(
            at(snap(&b10[0]), up(6, None, true)),
            Ok(BookAt::InSync)
        ));
        // In order with the source's checksum: applied.
        assert!(matches!(
            at(delta, up(6, Some(sum), false)),
            Ok(BookAt::Stored(..))
        ));
        assert_eq!(t.book().map(|b| b.checksum()), Some(sum));
        // A delta after a missed one: the copy is distrusted, even in-order deltas after it wait.
        assert!(matches!(
            at(delta, up(8, Some(sum), false)),
            Err(BookError::AwaitingSnapshot)
        ));
        assert!(t.is_untrusted() && t.book_snapshot().is_some_and(|s| s.frame.is_empty()));
        assert!(matches!(
            at(delta, up(9, Some(sum), false)),
            Err(BookError::AwaitingSnapshot)
        ));
        // The resync snapshot is taken now; the seqs between reach subscribers as a gap.
        match at(snap(&b11[0]), up(9, None, true)) {
            Ok(BookAt::Stored(_, Store::Stored { gap, .. })) => {
                assert_eq!(gap.map(|(from, _)| from), Some(Seq(7)))
            }
            other => panic!("{other:?}"),
        }
        assert!(!t.is_untrusted());
        // A delta whose checksum the copy does not reproduce distrusts it too.
        assert!(matches!(
            at(delta, up(10, Some(sum.wrapping_add(1)), false)),
            Err(BookError::ChecksumMismatch)
        ));
        assert!(t.is_untrusted());
    }
}
