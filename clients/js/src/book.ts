/**
 * An L2 order book kept from the server's `book` messages (docs/protocol.md, "Market data: books, trades, bars"),
 * with the Kraken v2 checksum verified after every message. Pure logic, no socket: {@link TickcastClient.book} feeds
 * it and resubscribes when it says so; it can also be fed by hand with {@link OrderBook.apply}.
 *
 * Prices and sizes stay the exact decimal strings the server sent. Levels are keyed by numeric value ("1.50" and
 * "1.5" are one level), as a BigInt scaled to 18 fractional digits: no binary float decides identity or order.
 * @packageDocumentation
 */

/** One `book` message as the server sends it. */
export interface BookMessage {
  /** Always `"book"`. */
  type: "book";
  /** The topic, `<channel>.<symbol>` (e.g. `book.BTC-USD`). */
  topic: string;
  /** Per-topic sequence number; deltas are +1 each, a jump without a `gap` marker drops the book. */
  seq: number;
  /** Ingest time, unix microseconds. */
  ts: number;
  /** true: the whole book (replaces it); false: only the changed levels (size "0" removes one). */
  snapshot: boolean;
  /** Levels each side the book keeps (on snapshots). */
  depth?: number;
  /** `[price, size]`, best (highest) first. */
  bids: [string, string][];
  /** `[price, size]`, best (lowest) first. */
  asks: [string, string][];
  /** CRC-32 of the top 10 levels each side after this message (Kraken v2). */
  checksum: number;
}

/** One price level: the price and size exactly as the server last wrote them. */
export interface BookLevel {
  /** The level's price, an exact decimal string. */
  readonly price: string;
  /** The quantity at that price, an exact decimal string (never "0": that removes the level). */
  readonly size: string;
}

/**
 * What {@link OrderBook.apply} did with a message:
 * - `ok`: applied, checksum verified; the book is valid;
 * - `mismatch`: applied, but the checksum differs: the copy is wrong and was dropped (resubscribe for a snapshot);
 * - `jump`: a delta's seq skipped ahead with no gap marker: deltas were lost; dropped (resubscribe);
 * - `malformed`: a message that cannot be applied; dropped (resubscribe);
 * - `ignored`: a delta while no valid book is held (waiting for a snapshot), or one already applied.
 */
export type BookOutcome = "ok" | "mismatch" | "jump" | "malformed" | "ignored";

/** Levels each side the checksum covers (Kraken: 10, whatever the depth). */
export const CHECKSUM_LEVELS = 10;
/** Most fractional digits a price or size may have (as the server). */
export const MAX_SCALE = 18;
const DEC_RE = /^(-?)(\d+)(?:\.(\d+))?$/;
const POW10: bigint[] = [];
for (let i = 0, p = BigInt(1); i <= MAX_SCALE; i++, p *= BigInt(10)) POW10.push(p);
const ZERO = BigInt(0);

/** A decimal string as an exact BigInt scaled by 10^18, or null when it is not `-?digits(.digits)?`. */
export function parseDecimal(s: unknown): bigint | null {
  if (typeof s !== "string") return null;
  const m = DEC_RE.exec(s);
  if (!m) return null;
  const frac = m[3] ?? "";
  if (frac.length > MAX_SCALE) return null;
  const v = BigInt(m[2] + frac) * POW10[MAX_SCALE - frac.length];
  return m[1] ? -v : v;
}

function scaleOf(s: string): number {
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** v (scaled by 10^18) printed with `scale` fractional digits. */
function formatScaled(v: bigint, scale: number): string {
  const neg = v < ZERO;
  const digits = ((neg ? -v : v) / POW10[MAX_SCALE - scale]).toString();
  let out = digits;
  if (scale > 0) {
    const padded = digits.padStart(scale + 1, "0");
    out = padded.slice(0, -scale) + "." + padded.slice(-scale);
  }
  return (neg ? "-" : "") + out;
}

/** The exact difference a - b of two decimal strings, with the finer of their scales; null if either is malformed. */
export function decimalSub(a: string, b: string): string | null {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (x === null || y === null) return null;
  return formatScaled(x - y, Math.max(scaleOf(a), scaleOf(b)));
}

/** The checksum form of a decimal string (Kraken v2): "." removed, then leading zeros ("0.00500" -> "500"). */
export function checksumDigits(s: string): string {
  return s.replace(".", "").replace(/^0+/, "");
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib's crc32) of a string of single-byte characters, as an unsigned 32-bit integer. */
export function crc32(s: string): number {
  let c = 0xffffffff;
  for (let i = 0; i < s.length; i++) c = CRC_TABLE[(c ^ s.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Level {
  key: bigint;
  price: string;
  size: string;
}

interface Change extends Level {
  remove: boolean;
}

class MalformedBook extends Error {}

function parseLevels(raw: unknown, side: string): Change[] {
  if (!Array.isArray(raw)) throw new MalformedBook(`${side} is not an array`);
  const out: Change[] = [];
  for (const l of raw) {
    const key = Array.isArray(l) ? parseDecimal(l[0]) : null;
    const size = Array.isArray(l) ? parseDecimal(l[1]) : null;
    if (key === null || size === null) throw new MalformedBook(`malformed ${side} level ${JSON.stringify(l)}`);
    if (size < ZERO) throw new MalformedBook(`negative size in ${side} level ${JSON.stringify(l)}`);
    out.push({ key, price: l[0], size: l[1], remove: size === ZERO });
  }
  return out;
}

/** One side, best first in a plain array (books are tens of levels: binary search and splice beat a tree). */
class Side {
  levels: Level[] = [];
  constructor(private readonly desc: boolean) {}

  /** Index of key, or -(insertion point) - 1. */
  private find(key: bigint): number {
    const a = this.levels;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const k = a[mid].key;
      if (k === key) return mid;
      if (this.desc ? k > key : k < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  set(c: Change): void {
    const i = this.find(c.key);
    if (c.remove) {
      if (i >= 0) this.levels.splice(i, 1);
      return;
    }
    const l = { key: c.key, price: c.price, size: c.size }; // the latest spelling wins: it is what is checksummed
    if (i >= 0) this.levels[i] = l;
    else this.levels.splice(-i - 1, 0, l);
  }

  trim(depth: number): void {
    if (this.levels.length > depth) this.levels.length = depth;
  }
}

const view = (l: Level): BookLevel => ({ price: l.price, size: l.size });

/** A local copy of one `book.<SYM>` topic; see the module docs. */
export class OrderBook {
  /** The book topic, `book.<SYM>`. */
  readonly topic: string;
  /** Seq of the last message applied (0 before the first snapshot). */
  seq = 0;
  /** Ingest time (unix µs) of the last message applied. */
  ts = 0;
  /** Levels kept each side, from the last snapshot (Infinity before one). */
  depth = Infinity;
  /** True while the book matches the server's as of `seq` (last checksum verified, nothing lost since). */
  valid = false;
  /** Messages whose checksum matched. */
  verified = 0;
  /** Messages whose checksum did not match (each dropped the book). */
  mismatches = 0;
  /** Snapshots applied. */
  snapshots = 0;
  /** Delta seq jumps without a gap marker (each dropped the book). */
  jumps = 0;
  /** Gap markers, resets and other invalidations (each dropped the book until the next snapshot). */
  invalidations = 0;
  /** Messages that could not be applied. */
  malformed = 0;
  /** Why the book was last dropped, in words ("" while never). */
  lastProblem = "";
  private readonly bidSide = new Side(true);
  private readonly askSide = new Side(false);

  constructor(topic = "") {
    this.topic = topic;
  }

  /** True when the last message's checksum matched and the book is held (same as `valid`). */
  get checksumOk(): boolean {
    return this.valid;
  }

  /** Bids best (highest) first, at most n (all without n). */
  bids(n?: number): BookLevel[] {
    return this.bidSide.levels.slice(0, n).map(view);
  }

  /** Asks best (lowest) first, at most n (all without n). */
  asks(n?: number): BookLevel[] {
    return this.askSide.levels.slice(0, n).map(view);
  }

  /** The highest bid, if any. */
  get bestBid(): BookLevel | undefined {
    const l = this.bidSide.levels[0];
    return l && view(l);
  }

  /** The lowest ask, if any. */
  get bestAsk(): BookLevel | undefined {
    const l = this.askSide.levels[0];
    return l && view(l);
  }

  /** Best ask minus best bid, exact (e.g. "0.02"); undefined while a side is empty. */
  get spread(): string | undefined {
    const b = this.bidSide.levels[0];
    const a = this.askSide.levels[0];
    return b && a ? decimalSub(a.price, b.price) ?? undefined : undefined;
  }

  /** Levels held on each side. */
  get size(): {
    /** Bid levels held. */
    bids: number;
    /** Ask levels held. */
    asks: number;
  } {
    return { bids: this.bidSide.levels.length, asks: this.askSide.levels.length };
  }

  /** The string the checksum is taken of: top 10 asks then top 10 bids, price then size, digits only. */
  checksumInput(): string {
    let s = "";
    for (const l of this.askSide.levels.slice(0, CHECKSUM_LEVELS)) s += checksumDigits(l.price) + checksumDigits(l.size);
    for (const l of this.bidSide.levels.slice(0, CHECKSUM_LEVELS)) s += checksumDigits(l.price) + checksumDigits(l.size);
    return s;
  }

  /** Kraken v2 checksum of the book as it is now (unsigned 32-bit). */
  checksum(): number {
    return crc32(this.checksumInput());
  }

  /** Drops the book (a gap marker, a reset, a lost connection): deltas are ignored until the next snapshot. */
  invalidate(why: string): void {
    if (this.valid) this.invalidations++;
    this.valid = false;
    this.lastProblem = why;
  }

  /** Applies one `book` message in stream order and verifies its checksum; see {@link BookOutcome}. */
  apply(m: BookMessage): BookOutcome {
    const seq = Number(m.seq);
    if (m.snapshot !== true && (!this.valid || seq <= this.seq)) return "ignored";
    if (m.snapshot !== true && seq !== this.seq + 1) {
      this.jumps++;
      this.valid = false;
      this.lastProblem = `seq ${this.seq} -> ${seq} without a gap marker`;
      return "jump";
    }
    let bids: Change[];
    let asks: Change[];
    try {
      bids = parseLevels(m.bids, "bids");
      asks = parseLevels(m.asks, "asks");
      if (m.snapshot === true && (bids.some((l) => l.remove) || asks.some((l) => l.remove)))
        throw new MalformedBook("zero size in a snapshot");
    } catch (e) {
      if (!(e instanceof MalformedBook)) throw e;
      this.malformed++;
      this.valid = false;
      this.lastProblem = `malformed book message at seq ${m.seq}: ${e.message}`;
      return "malformed";
    }
    if (m.snapshot === true) {
      const depth = Number(m.depth);
      if (Number.isSafeInteger(depth) && depth > 0) this.depth = depth;
      this.bidSide.levels = [];
      this.askSide.levels = [];
      this.snapshots++;
    }
    for (const c of bids) this.bidSide.set(c);
    for (const c of asks) this.askSide.set(c);
    this.bidSide.trim(this.depth);
    this.askSide.trim(this.depth);
    this.seq = seq;
    this.ts = Number(m.ts);
    const got = this.checksum();
    if (got === Number(m.checksum)) {
      this.verified++;
      this.valid = true;
      return "ok";
    }
    this.mismatches++;
    this.valid = false;
    this.lastProblem = `checksum mismatch at seq ${m.seq}: server ${m.checksum}, local ${got}`;
    return "mismatch";
  }
}
