// Exact decimal strings, as the market-data messages carry prices and sizes ("189.10", "0.00500").
//
// Why not numbers: book levels are identified by their price, and parseFloat("0.1") + parseFloat("0.2") style
// rounding would merge or split levels the server keeps apart. A value here is a BigInt scaled to MAX_SCALE
// fractional digits: exact, comparable with < and ===, usable as a Map key, and "1.50" and "1.5" become the same
// value (the server keys levels by numeric value too: crates/core/src/market/decimal.rs). Floats are only for
// drawing (bar widths, candle heights), never for identity.
//
// Works in the page (an ES module served next to app.js) and in node (the unit tests).

/** Most fractional digits a value may have (the server's Decimal refuses more). */
export const MAX_SCALE = 18;
const DEC_RE = /^(-?)(\d+)(?:\.(\d+))?$/;
const POW10 = Array.from({ length: MAX_SCALE + 1 }, (_, i) => 10n ** BigInt(i));

/**
 * Parses a decimal string exactly.
 * @param {string} s e.g. "189.10"
 * @returns {{v: bigint, scale: number}|null} v = value * 10^MAX_SCALE, scale = fractional digits as written;
 *   null for anything that is not `-?digits(.digits)?` with at most MAX_SCALE fractional digits
 */
export function parseDecimal(s) {
  if (typeof s !== 'string') return null;
  const m = DEC_RE.exec(s);
  if (!m) return null;
  const frac = m[3] || '';
  if (frac.length > MAX_SCALE) return null;
  const v = BigInt(m[2] + frac) * POW10[MAX_SCALE - frac.length];
  return { v: m[1] ? -v : v, scale: frac.length };
}

/** Prints v (scaled by 10^MAX_SCALE) with exactly `scale` fractional digits (truncating any finer digits). */
export function formatScaled(v, scale) {
  const neg = v < 0n;
  let a = neg ? -v : v;
  a /= POW10[MAX_SCALE - scale];
  let digits = a.toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, -scale) + '.' + digits.slice(-scale);
  }
  return (neg && a !== 0n ? '-' : '') + digits;
}

/**
 * The checksum form of a decimal string (Kraken v2): the digits as written with the "." removed and leading zeros
 * removed ("0.00500" -> "500", "64000.5" -> "640005"). The server prints the digits it was fed, so the string as
 * received is what it checksummed (a level's latest spelling: "1.50" then "1.5" checksums as "15").
 */
export function checksumDigits(s) {
  return s.replace('.', '').replace(/^0+/, '');
}
