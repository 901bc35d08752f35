// The trade tape of one `trade.<SYM>` stream: newest first, bounded. Pure logic, no DOM.
//
// Trades are never conflated: every missing seq is announced by a `gap` marker (reason `dropped`), which the tape
// shows as an entry of its own where the trades are missing. A seq jump without a marker comes from the SDK as a gap
// with reason `unannounced`: shown the same way and counted apart (it would be a server bug). Trades at or before
// the last seq (duplicates) are ignored; the first trade after a (re)subscribe is a baseline.

/**
 * @typedef {{kind: 'trade', seq: number, ts: number, price: string, size: string, side: string, id: string}
 *          | {kind: 'gap', from: number, to: number, reason: string}} TapeEntry
 */

export class TradeTape {
  /** @param {number} max entries kept */
  constructor(max = 50) {
    this.max = max;
    /** @type {TapeEntry[]} newest first */
    this.entries = [];
    this.seq = -1; // last trade seq seen
    this.fresh = true; // next trade is a baseline
    this.total = 0; // trades received
    this.gaps = 0;
    this.missed = 0; // trades the gap markers named
    this.jumps = 0; // unannounced gaps
    this.added = 0; // entries added since the view last took them (see takeAdded)
  }

  restart() {
    this.fresh = true;
  }

  push(e) {
    this.entries.unshift(e);
    if (this.entries.length > this.max) this.entries.length = this.max;
    this.added++;
  }

  /** A `trade` message; returns false when ignored (a duplicate or older seq, or malformed). */
  onTrade(m) {
    const seq = Number(m.seq);
    if (typeof m.price !== 'string' || typeof m.size !== 'string' || !Number.isSafeInteger(seq)) return false;
    if (!this.fresh && seq <= this.seq) return false;
    this.fresh = false;
    this.seq = seq;
    this.total++;
    this.push({
      kind: 'trade', seq, ts: Number(m.ts), price: m.price, size: m.size,
      side: m.side === 'sell' ? 'sell' : m.side === 'buy' ? 'buy' : '', id: String(m.trade_id ?? ''),
    });
    return true;
  }

  /** A gap of this topic (a server marker, or the SDK's `unannounced`): trades from..=to will not come. */
  onGap(m) {
    const from = Number(m.from);
    const to = Number(m.to);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) return;
    if (m.reason === 'unannounced') this.jumps++;
    else this.gaps++;
    this.missed += to - from + 1;
    this.push({ kind: 'gap', from, to, reason: String(m.reason || 'unknown') });
    if (!this.fresh && to > this.seq) this.seq = to;
  }

  /** How many entries were added since the last call (the view prepends only those). */
  takeAdded() {
    const n = Math.min(this.added, this.entries.length);
    this.added = 0;
    return n;
  }
}
