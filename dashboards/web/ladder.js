// Numbers the book ladder shows besides the levels themselves. Pure logic, no DOM; exact decimals are the SDK's.

import { decimalSub, parseDecimal } from './sdk/index.js';

/** parseFloat for drawing only (bar widths); 0 for anything unparsable. */
export function parseFloatSafe(s) {
  const x = parseFloat(s);
  return Number.isFinite(x) ? x : 0;
}

/**
 * Best ask minus best bid, exact, written with the finer of the two prices' scales ("189.14" - "189.12" = "0.02"),
 * and in basis points of the mid (a float: it is only read, never compared). null when a side is empty.
 * Levels are the SDK's `{price, size}`.
 */
export function spreadOf(bestBid, bestAsk) {
  if (!bestBid || !bestAsk) return null;
  const text = decimalSub(bestAsk.price, bestBid.price);
  if (text === null) return null;
  const bf = parseFloatSafe(bestBid.price);
  const af = parseFloatSafe(bestAsk.price);
  const mid = (af + bf) / 2;
  return { text, bps: mid > 0 ? ((af - bf) / mid) * 1e4 : NaN };
}

/** True when the best bid is at or above the best ask (a book the server should never send), compared exactly. */
export function isCrossed(bestBid, bestAsk) {
  if (!bestBid || !bestAsk) return false;
  const b = parseDecimal(bestBid.price);
  const a = parseDecimal(bestAsk.price);
  return b !== null && a !== null && b >= a;
}

/** Cumulative size from the best level outwards (floats, for the depth bars). */
export function sideTotals(levels) {
  const out = [];
  let sum = 0;
  for (const l of levels) {
    sum += parseFloatSafe(l.size);
    out.push(sum);
  }
  return out;
}
