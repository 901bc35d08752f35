// The candles of one `bar.<interval>.<SYM>` stream. Pure logic, no DOM.
//
// A bar message is the whole bar so far, identified by its `start`: `closed:false` is the live candle, re-sent as
// trades come (replace it in place), `closed:true` finalizes it, and a late trade may re-send the bar that just
// closed, revised, with the same start. So the series is keyed by `start`, never appended to blindly.

/**
 * @typedef {object} Candle
 * @property {number} start interval start, unix µs
 * @property {string} open, high, low, close, volume, vwap  as received (exact digits, for display)
 * @property {number} o, h, l, c, v  parseFloat of the same, for drawing only
 * @property {number} trades
 * @property {boolean} closed
 */

const NUM_FIELDS = ['open', 'high', 'low', 'close', 'volume'];

/** A bar message as a Candle, or null when a field is missing or not a number. */
export function toCandle(m) {
  const start = Number(m.start);
  if (!Number.isSafeInteger(start)) return null;
  const c = {
    start,
    open: m.open, high: m.high, low: m.low, close: m.close, volume: m.volume, vwap: m.vwap,
    o: NaN, h: NaN, l: NaN, c: NaN, v: NaN,
    trades: Number(m.trades) || 0,
    closed: m.closed === true,
  };
  for (const f of NUM_FIELDS) {
    if (typeof m[f] !== 'string') return null;
    const x = parseFloat(m[f]);
    if (!Number.isFinite(x)) return null;
    c[f[0]] = x;
  }
  return c;
}

export class CandleSeries {
  /** @param {number} max candles kept (oldest dropped) */
  constructor(max = 300) {
    this.max = max;
    /** @type {Candle[]} oldest first, starts strictly increasing */
    this.candles = [];
    this.updates = 0; // bar messages applied
    this.revisions = 0; // updates of a candle other than the newest (late trades)
  }

  /**
   * Applies one bar message. Returns 'new' (a candle was added), 'update' (an existing one replaced in place),
   * 'old' (older than everything kept: dropped) or 'bad'.
   */
  apply(m) {
    const c = toCandle(m);
    if (!c) return 'bad';
    const a = this.candles;
    const last = a[a.length - 1];
    this.updates++;
    if (!last || c.start > last.start) {
      a.push(c);
      if (a.length > this.max) a.splice(0, a.length - this.max);
      return 'new';
    }
    if (c.start === last.start) {
      a[a.length - 1] = c;
      return 'update';
    }
    // Older than the live candle: a revision of a closed bar (late trade), or one we have not seen.
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid].start === c.start) {
        a[mid] = c;
        this.revisions++;
        return 'update';
      }
      if (a[mid].start < c.start) lo = mid + 1;
      else hi = mid - 1;
    }
    if (lo === 0 && a.length >= this.max) {
      this.updates--;
      return 'old';
    }
    a.splice(lo, 0, c);
    return 'new';
  }

  clear() {
    this.candles = [];
  }

  /** The newest `n` candles, oldest first. */
  last(n) {
    return this.candles.slice(Math.max(0, this.candles.length - n));
  }
}
