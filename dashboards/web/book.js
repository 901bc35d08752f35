// An L2 order book maintained from the server's `book` messages, and its Kraken v2 checksum
// (docs/protocol.md, "Market data"). Pure logic, no DOM: used by the page's detail view and by the node unit tests.
//
// Rules it follows (the server's, crates/core/src/market/book.rs):
// - levels are keyed by exact numeric value ("1.50" and "1.5" are one level); a level keeps the spelling of the
//   message that last set it, because the checksum is computed over the digits as written;
// - a snapshot replaces the book; a delta lists changed levels, size "0" removes one; after either, each side is
//   trimmed to `depth` (from the last snapshot);
// - the checksum covers the top 10 asks (lowest first) then the top 10 bids (highest first).

import { parseDecimal, checksumDigits } from './decimal.js';
import { crc32 } from './crc32.js';

/** Levels each side the checksum covers (Kraken: 10, whatever the depth). */
export const CHECKSUM_LEVELS = 10;

/** A message that cannot be applied (malformed level); the book is left unchanged. */
export class BookError extends Error {}

/**
 * @typedef {{key: bigint, px: string, sz: string}} Level  key: exact price; px, sz: the strings as received
 */

/** Parses `[[price, size], ...]` into levels; throws BookError on anything malformed or a negative size. */
function parseLevels(raw, side) {
  if (!Array.isArray(raw)) throw new BookError(`${side} is not an array`);
  const out = [];
  for (const l of raw) {
    if (!Array.isArray(l) || l.length < 2) throw new BookError(`malformed ${side} level ${JSON.stringify(l)}`);
    const px = parseDecimal(l[0]);
    const sz = parseDecimal(l[1]);
    if (!px || !sz) throw new BookError(`malformed ${side} level ${JSON.stringify(l)}`);
    if (sz.v < 0n) throw new BookError(`negative size in ${side} level ${JSON.stringify(l)}`);
    out.push({ key: px.v, px: l[0], sz: l[1], zero: sz.v === 0n });
  }
  return out;
}

/**
 * One side: levels sorted best first in a plain array. Books are shallow (tens of levels), so a binary search and a
 * splice beat any tree, and the top N for rendering and the checksum is a slice.
 */
class Side {
  /** @param {boolean} desc true for bids (highest price best) */
  constructor(desc) {
    this.desc = desc;
    /** @type {Level[]} */
    this.levels = [];
  }

  /** Index of `key`, or -(insertion point) - 1 when absent. */
  find(key) {
    const a = this.levels;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const k = a[mid].key;
      if (k === key) return mid;
      // "before" means better: higher for bids, lower for asks
      if (this.desc ? k > key : k < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  set(l) {
    const i = this.find(l.key);
    if (l.zero) {
      if (i >= 0) this.levels.splice(i, 1);
    } else if (i >= 0) {
      this.levels[i] = { key: l.key, px: l.px, sz: l.sz }; // the latest spelling wins (it is what is checksummed)
    } else {
      this.levels.splice(-i - 1, 0, { key: l.key, px: l.px, sz: l.sz });
    }
  }

  trim(depth) {
    if (this.levels.length > depth) this.levels.length = depth;
  }
}

export class OrderBook {
  constructor() {
    this.bids = new Side(true);
    this.asks = new Side(false);
    /** levels kept each side; Infinity until a snapshot names its depth */
    this.depth = Infinity;
  }

  clear() {
    this.bids.levels = [];
    this.asks.levels = [];
  }

  /**
   * Replaces the book. `depth` is the snapshot's `depth` field; a snapshot without one keeps the previous depth
   * (or none): without it the page cannot trim, and a level the server trimmed away could later surface here.
   * Throws BookError (book unchanged) on a malformed message.
   */
  applySnapshot(bids, asks, depth) {
    const b = parseLevels(bids, 'bids');
    const a = parseLevels(asks, 'asks');
    if (b.some((l) => l.zero) || a.some((l) => l.zero)) throw new BookError('zero size in a snapshot');
    if (Number.isSafeInteger(depth) && depth > 0) this.depth = depth;
    this.clear();
    for (const l of b) this.bids.set(l);
    for (const l of a) this.asks.set(l);
    this.bids.trim(this.depth);
    this.asks.trim(this.depth);
  }

  /** Applies changed levels (size "0" removes), then trims to depth. Throws BookError (book unchanged) when malformed. */
  applyDelta(bids, asks) {
    const b = parseLevels(bids, 'bids');
    const a = parseLevels(asks, 'asks');
    for (const l of b) this.bids.set(l);
    for (const l of a) this.asks.set(l);
    this.bids.trim(this.depth);
    this.asks.trim(this.depth);
  }

  /** Bids best (highest) first, at most n. */
  topBids(n) {
    return this.bids.levels.slice(0, n);
  }

  /** Asks best (lowest) first, at most n. */
  topAsks(n) {
    return this.asks.levels.slice(0, n);
  }

  /** Best bid at or above best ask: the server refuses such books, so seeing one here means the copy is wrong. */
  isCrossed() {
    const b = this.bids.levels[0];
    const a = this.asks.levels[0];
    return !!b && !!a && b.key >= a.key;
  }

  /** The string the checksum is taken of: top 10 asks then top 10 bids, price then size, digits only. */
  checksumInput() {
    let s = '';
    for (const l of this.topAsks(CHECKSUM_LEVELS)) s += checksumDigits(l.px) + checksumDigits(l.sz);
    for (const l of this.topBids(CHECKSUM_LEVELS)) s += checksumDigits(l.px) + checksumDigits(l.sz);
    return s;
  }

  /** Kraken v2 checksum of the book as it is now (unsigned 32-bit). */
  checksum() {
    return crc32(this.checksumInput());
  }
}
