// Candlestick chart (OHLC candles over volume bars) drawn as inline SVG, vanilla, no library.
//
// Why SVG: a few hundred elements redrawn a few times a second is cheap, text stays crisp, colours come from CSS
// classes (theme-aware, and nothing inline under the page's CSP), and the test can count candles in the DOM.
// The viewBox is set to the element's pixel size on every draw, so one unit is one CSS pixel and nothing stretches.

const SVG_NS = 'http://www.w3.org/2000/svg';
const AXIS_W = 64; // right-hand price axis
const TIME_H = 18; // bottom time axis
const VOL_FRAC = 0.22; // share of the plot height for the volume bars
const STEP = 9; // px per candle (body + gap) when the plot is full
const STEP_MAX = 16; // a young series (few candles) is drawn wider, up to this
const TAG_CLEAR = 12; // px: axis labels this close to the last-price tag are left out (the tag covers them)

function node(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}

/** Fractional digits to print prices with: the finest the candles were written with (they are exact strings). */
function priceScale(candles) {
  let s = 0;
  for (const c of candles) {
    for (const p of [c.open, c.high, c.low, c.close]) {
      const dot = p.indexOf('.');
      if (dot >= 0) s = Math.max(s, p.length - dot - 1);
    }
  }
  return Math.min(s, 8);
}

/** Up to `n` "nice" axis values (1, 2, 5 × 10^k steps) within [lo, hi]. */
function ticks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function clock(us) {
  return new Date(us / 1000).toLocaleTimeString([], { hour12: false });
}

/**
 * Draws `candles` (oldest first; the newest last, maybe live) into `svg`, replacing what was there.
 * @param {SVGSVGElement} svg
 * @param {import('./candles.js').Candle[]} candles
 * @param {number} w width in px
 * @param {number} h height in px
 * @returns {number} candles drawn
 */
export function drawChart(svg, candles, w, h) {
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const plotW = Math.max(0, w - AXIS_W);
  const step = Math.max(STEP, Math.min(STEP_MAX, plotW / Math.max(1, candles.length)));
  const body = Math.round(step * 0.65);
  const n = Math.max(0, Math.min(candles.length, Math.floor(plotW / step)));
  const shown = candles.slice(candles.length - n);
  const frag = document.createDocumentFragment();
  if (n === 0) {
    frag.appendChild(node('text', { x: plotW / 2, y: h / 2, class: 'empty', 'text-anchor': 'middle' }, 'waiting for bars…'));
    svg.replaceChildren(frag);
    return 0;
  }
  let lo = Infinity;
  let hi = -Infinity;
  let vmax = 0;
  for (const c of shown) {
    lo = Math.min(lo, c.l);
    hi = Math.max(hi, c.h);
    vmax = Math.max(vmax, c.v);
  }
  if (hi === lo) { hi += Math.abs(hi) * 1e-4 || 1; lo -= Math.abs(lo) * 1e-4 || 1; }
  const pad = (hi - lo) * 0.06;
  lo -= pad;
  hi += pad;
  const plotH = h - TIME_H;
  const volH = plotH * VOL_FRAC;
  const priceH = plotH - volH - 6;
  const y = (p) => 4 + (1 - (p - lo) / (hi - lo)) * (priceH - 4);
  const scale = priceScale(shown);
  const last = shown[n - 1];
  const ly = Math.round(y(last.c)) + 0.5;

  // grid and price axis
  const grid = node('g', { class: 'grid' });
  for (const v of ticks(lo, hi, 5)) {
    const yy = Math.round(y(v)) + 0.5;
    grid.appendChild(node('line', { x1: 0, x2: plotW, y1: yy, y2: yy }));
    if (Math.abs(yy - ly) > TAG_CLEAR) grid.appendChild(node('text', { x: plotW + 6, y: yy + 4, class: 'axis' }, v.toFixed(scale)));
  }
  grid.appendChild(node('line', { x1: 0, x2: plotW, y1: plotH - volH, y2: plotH - volH, class: 'sep' }));
  frag.appendChild(grid);

  // candles right-aligned: the newest at the right edge
  const x0 = plotW - n * step;
  const g = node('g', { class: 'candles' });
  shown.forEach((c, i) => {
    const cx = Math.round(x0 + i * step + step / 2) + 0.5;
    const dir = c.c > c.o ? 'up' : c.c < c.o ? 'down' : 'flat';
    const cls = `candle ${dir}${c.closed ? '' : ' live'}`;
    const cg = node('g', { class: cls, 'data-start': c.start });
    const top = y(Math.max(c.o, c.c));
    const bot = y(Math.min(c.o, c.c));
    cg.appendChild(node('line', { class: 'wick', x1: cx, x2: cx, y1: y(c.h), y2: y(c.l) }));
    cg.appendChild(node('rect', { class: 'body', x: cx - body / 2, y: top, width: body, height: Math.max(1, bot - top) }));
    const vh = vmax > 0 ? (c.v / vmax) * (volH - 2) : 0;
    cg.appendChild(node('rect', { class: 'vol', x: cx - body / 2, y: plotH - vh, width: body, height: Math.max(0, vh) }));
    const t = node('title', {}, `${clock(c.start)}${c.closed ? '' : ' (live)'}  O ${c.open} H ${c.high} L ${c.low} C ${c.close}  vol ${c.volume}  vwap ${c.vwap ?? '–'}  trades ${c.trades}`);
    cg.appendChild(t);
    g.appendChild(cg);
    if (i % 10 === n % 10 && i < n - 3 && cx > 26) { // (a label centred closer to the left edge would be clipped)
      frag.appendChild(node('text', { x: cx, y: h - 4, class: 'axis', 'text-anchor': 'middle' }, clock(c.start)));
    }
  });
  frag.appendChild(g);

  // last price: a dashed line and a tag on the axis
  const tagCls = last.c >= last.o ? 'last up' : 'last down';
  frag.appendChild(node('line', { class: tagCls, x1: 0, x2: plotW, y1: ly, y2: ly }));
  frag.appendChild(node('rect', { class: tagCls + ' tag', x: plotW + 2, y: ly - 8, width: AXIS_W - 4, height: 16, rx: 3 }));
  frag.appendChild(node('text', { class: 'tag-text', x: plotW + 6, y: ly + 4 }, last.close));
  svg.replaceChildren(frag);
  return n;
}
