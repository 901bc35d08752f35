// Numbers the book ladder shows besides the levels themselves. Pure logic, no DOM.

import { parseDecimal, formatScaled } from './decimal.js';

/** parseFloat for drawing only (bar widths); 0 for anything unparsable. */
export function parseFloatSafe(s) {
  const x = parseFloat(s);
  return Number.isFinite(x) ? x : 0;
}

/**
 * Best ask minus best bid, exact, written with the finer of the two prices' scales ("189.14" - "189.12" = "0.02"),
 * and in basis points of the mid (a float: it is only read, never compared). null when a side is empty.
 */
export function spreadOf(bestBid, bestAsk) {
  if (!bestBid || !bestAsk) return null;
  const b = parseDecimal(bestBid.px);
  const a = parseDecimal(bestAsk.px);
  const text = formatScaled(a.v - b.v, Math.max(a.scale, b.scale));
  const bf = parseFloatSafe(bestBid.px);
  const af = parseFloatSafe(bestAsk.px);
  const mid = (af + bf) / 2;
  return { text, bps: mid > 0 ? ((af - bf) / mid) * 1e4 : NaN };
}

/** Cumulative size from the best level outwards (floats, for the depth bars). */
export function sideTotals(levels) {
  const out = [];
  let sum = 0;
  for (const l of levels) {
    sum += parseFloatSafe(l.sz);
    out.push(sum);
  }
  return out;
}
