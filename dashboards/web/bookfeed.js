// The page's copy of one `book.<SYM>` stream: applies snapshots and deltas in seq order and verifies the checksum
// of every message, so the ladder only ever shows a book the server vouched for. Pure logic (no DOM, no socket):
// it says what happened and the view decides what to do (resubscribe, wait).
//
// States:
//   'waiting'  no trustworthy book: after (re)subscribing, a gap marker, a checksum mismatch, a seq jump or a
//              malformed message. Deltas are ignored until the next `snapshot:true`, which the server sends after
//              a resync gap and on every subscribe.
//   'live'     the book matches the server's as of `seq`; each delta must be seq + 1.

import { OrderBook, BookError } from './book.js';

/** What `onBook` did with a message. */
export const Outcome = Object.freeze({
  /** applied, checksum verified */
  OK: 'ok',
  /** applied, but the checksum differs: the copy is wrong, a fresh snapshot is needed (resubscribe) */
  MISMATCH: 'mismatch',
  /** a delta's seq skipped ahead with no gap marker: deltas were lost unannounced; resubscribe */
  JUMP: 'jump',
  /** a message that cannot be applied; resubscribe */
  MALFORMED: 'malformed',
  /** a delta while waiting for a snapshot, or one already applied (seq not ahead): ignored */
  IGNORED: 'ignored',
});

export class BookFeed {
  constructor(topic) {
    this.topic = topic;
    this.book = new OrderBook();
    this.state = 'waiting';
    this.seq = -1; // seq of the last message applied
    this.verified = 0; // messages whose checksum matched
    this.mismatches = 0;
    this.snapshots = 0;
    this.gaps = 0; // gap markers for this topic
    this.jumps = 0; // seq jumps without a marker
    this.malformed = 0;
    this.ignored = 0;
    this.lastProblem = ''; // words for the badge's tooltip
  }

  /** (Re)subscribed or disconnected: nothing is trusted until the snapshot that follows a subscribe. */
  restart() {
    this.state = 'waiting';
  }

  /** A `gap` marker for this topic: the deltas it names will not come; the server follows up with a snapshot. */
  onGap(m) {
    this.gaps++;
    this.state = 'waiting';
    this.lastProblem = `gap ${m.from}–${m.to} (${m.reason || 'unknown'}): waiting for a snapshot`;
  }

  /** One `book` message; returns an Outcome. */
  onBook(m) {
    const seq = Number(m.seq);
    if (m.snapshot === true) {
      try {
        this.book.applySnapshot(m.bids, m.asks, Number(m.depth));
      } catch (e) {
        return this.bad(e);
      }
      this.snapshots++;
      this.seq = seq;
      return this.verify(m);
    }
    if (this.state !== 'live' || seq <= this.seq) {
      this.ignored++;
      return Outcome.IGNORED;
    }
    if (seq !== this.seq + 1) {
      this.jumps++;
      this.state = 'waiting';
      this.lastProblem = `seq ${this.seq} → ${seq} without a gap marker`;
      return Outcome.JUMP;
    }
    try {
      this.book.applyDelta(m.bids, m.asks);
    } catch (e) {
      return this.bad(e);
    }
    this.seq = seq;
    return this.verify(m);
  }

  verify(m) {
    const want = Number(m.checksum);
    const got = this.book.checksum();
    if (got === want) {
      this.verified++;
      this.state = 'live';
      return Outcome.OK;
    }
    this.mismatches++;
    this.state = 'waiting';
    this.lastProblem = `checksum mismatch at seq ${m.seq}: server ${want}, page ${got}`;
    return Outcome.MISMATCH;
  }

  bad(e) {
    if (!(e instanceof BookError)) throw e;
    this.malformed++;
    this.state = 'waiting';
    this.lastProblem = `malformed book message: ${e.message}`;
    return Outcome.MALFORMED;
  }
}
