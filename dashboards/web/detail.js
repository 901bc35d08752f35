// The symbol detail view: a live book ladder (`book.<SYM>`), a trade tape (`trade.<SYM>`) and 1-second candles
// (`bar.1s.<SYM>`) for the symbol selected on the board.
//
// Design notes
// - The book is the SDK's (`client.book()`): it applies snapshots and deltas and verifies the server's checksum on
//   every message. A mismatch, a seq jump or a malformed message means the copy is wrong: the SDK drops it and
//   resubscribes for a fresh snapshot, and the view shows it (badge and count) and fades the ladder until the book
//   is verified again. After a `gap` for the book the server sends a snapshot by itself, which the SDK waits for.
// - Book topics are never throttled: a throttle skips deltas without gap markers, and every skipped delta would
//   break the book. Trades and bars are not throttled either (the tape and the candles want every message).
// - Network handling never touches the DOM: messages update the models (the SDK's book, tape, candles) and mark
//   parts dirty; one animation-frame pass (at most every RENDER_MIN_MS; the chart at most every CHART_MIN_MS)
//   writes the changes. The ladder's 21 rows are built once and only their text and bar widths change.
// - Backfill: a plain subscribe brings only the latest trade and bar. The server keeps each topic's recent messages
//   for `since` recovery, so on the first trade (and bar) message, whose seq and epoch say where the stream is, the
//   view subscribes that topic again with `since` BACKFILL messages back: the tape and the chart start full instead
//   of empty. Messages before the unsubscribe's ack are ignored; the replay holds them. If the history is shorter,
//   the server says so and sends the latest message: nothing is lost but the backfill. After a reconnect the SDK
//   resumes every topic from its last seq, which fills what the outage missed.
// - Opening another symbol, or closing the view, unsubscribes the previous symbol's topics; messages of other
//   topics that are still in flight are ignored.

import { OrderBook, TickcastError } from './sdk/index.js';
import { TradeTape } from './tape.js';
import { CandleSeries } from './candles.js';
import { drawChart } from './chart.js';
import { spreadOf, sideTotals, isCrossed } from './ladder.js';

const LADDER_LEVELS = 10; // per side
const TAPE_MAX = 60;
const CANDLES_MAX = 300;
const RENDER_MIN_MS = 50;
const CHART_MIN_MS = 250;
const BACKFILL = 90; // trade and bar messages asked back from the server's history (it keeps 100 by default)
const EMPTY_BOOK = new OrderBook(); // what the ladder shows before the SDK's book exists

/** Topics of a symbol's detail view. */
export function detailTopics(sym) {
  return { book: `book.${sym}`, trade: `trade.${sym}`, bar: `bar.1s.${sym}` };
}

function fmtTime(us) {
  if (!Number.isFinite(us) || us <= 0) return '–';
  const d = new Date(us / 1000);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

/**
 * @param {{client: import('./sdk/index.js').TickcastClient, log: (level: string, text: string) => void,
 *          onSelect: (sym: string) => void}} io  client: the board's SDK client; onSelect: the symbol shown changed
 *          ('' when closed), for the board's highlight
 */
export function createDetail(io) {
  const { client } = io;
  const $ = (id) => document.getElementById(id);
  const el = {
    root: $('detail'),
    sym: $('detail-sym'),
    status: $('d-status'),
    verified: $('d-verified'),
    mismatch: $('d-mismatch'),
    gaps: $('d-gaps'),
    close: $('d-close'),
    spread: $('d-spread'),
    ladderAsks: $('ladder-asks'),
    ladderBids: $('ladder-bids'),
    spreadRow: $('ladder-spread'),
    chart: $('chart'),
    ohlc: $('d-ohlc'),
    tape: $('tape'),
    tapeInfo: $('d-tape-info'),
  };

  let sym = '';
  let topics = null;
  /** the SDK's BookSubscription of the shown symbol (null until its subscribe is acked) */
  let sub = null;
  let subscribed = false; // this symbol's subscribes were sent (else they go out once connected)
  let bookGaps = 0; // gap markers of the book (each followed by the server's snapshot)
  let tape = null;
  let series = null;
  let chartDrawn = 0;
  /** per topic kind ('trade', 'bar'): 'first' (backfill on the next message), 'asked' (waiting for the unsubscribe
   *  that starts it; messages ignored) or 'done' */
  let backfill = {};
  let chartAt = -Infinity;
  const dirty = { ladder: false, tape: false, chart: false, head: false };
  let frameQueued = false;
  let lastRenderAt = -Infinity;

  // ------------------------------------------------------------ ladder rows, built once
  function makeRow(side) {
    const row = document.createElement('div');
    row.className = 'lvl empty ' + side;
    row.setAttribute('role', 'row');
    const bar = document.createElement('span');
    bar.className = 'bar';
    row.appendChild(bar);
    const cell = (cls) => {
      const c = document.createElement('span');
      c.className = cls;
      c.setAttribute('role', 'cell');
      row.appendChild(c);
      return c.appendChild(document.createTextNode(''));
    };
    return { row, bar, px: cell('px'), sz: cell('sz'), cum: cell('cum'), shown: { px: '', sz: '', cum: '', w: -1 } };
  }
  // asks are drawn worst (highest) at the top down to the best just above the spread; bids best first below it
  const askRows = [];
  const bidRows = [];
  for (let i = 0; i < LADDER_LEVELS; i++) {
    const a = makeRow('ask');
    askRows.push(a);
    el.ladderAsks.appendChild(a.row);
    const b = makeRow('bid');
    bidRows.push(b);
    el.ladderBids.appendChild(b.row);
  }

  function setRow(r, level, total, maxTotal) {
    const px = level ? level.price : '';
    const sz = level ? level.size : '';
    const cum = level ? fmtQty(total) : '';
    if (r.shown.px !== px) { r.shown.px = px; r.px.nodeValue = px; }
    if (r.shown.sz !== sz) { r.shown.sz = sz; r.sz.nodeValue = sz; }
    if (r.shown.cum !== cum) { r.shown.cum = cum; r.cum.nodeValue = cum; }
    // Depth bar: cumulative size relative to the deeper side's total. A transform (CSSOM, allowed by the CSP) is
    // composited, so resizing a bar repaints nothing else.
    const w = level && maxTotal > 0 ? Math.round((total / maxTotal) * 1000) / 1000 : 0;
    if (r.shown.w !== w) { r.shown.w = w; r.bar.style.transform = `scaleX(${w})`; }
    r.row.classList.toggle('empty', !level);
  }

  function fmtQty(x) {
    if (!Number.isFinite(x)) return '';
    return Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) >= 100 ? 2 : 4).replace(/0+$/, '').replace(/\.$/, '');
  }

  // ------------------------------------------------------------ render
  function queueFrame() {
    if (frameQueued) return;
    frameQueued = true;
    const wait = lastRenderAt + RENDER_MIN_MS - performance.now();
    if (wait > 4) setTimeout(() => requestAnimationFrame(frame), wait - 4);
    else requestAnimationFrame(frame);
  }

  function mark(part) {
    dirty[part] = true;
    queueFrame();
  }

  function frame(now) {
    frameQueued = false;
    lastRenderAt = now;
    if (!sym) return;
    if (dirty.head) { dirty.head = false; renderHead(); }
    if (dirty.ladder) { dirty.ladder = false; renderLadder(); }
    if (dirty.tape) { dirty.tape = false; renderTape(); }
    if (dirty.chart) {
      if (now - chartAt >= CHART_MIN_MS) {
        dirty.chart = false;
        chartAt = now;
        renderChart();
      } else {
        queueFrame();
      }
    }
  }

  /** offline, live (the book's last checksum matched), resync (dropped, a snapshot is on its way) or waiting. */
  function bookState() {
    const f = sub && sub.book;
    return client.state !== 'connected' ? 'offline' : !f ? 'waiting' : f.valid ? 'live' : f.snapshots ? 'resync' : 'waiting';
  }

  function renderHead() {
    const f = sub ? sub.book : EMPTY_BOOK;
    const state = bookState();
    const resyncs = sub ? sub.resubscribes : 0;
    const words = {
      offline: 'offline',
      live: `book live · seq ${f.seq}`,
      resync: 'book out of sync: waiting for a snapshot…',
      waiting: 'waiting for the book…',
    }[state];
    if (el.status.dataset.state !== state) el.status.dataset.state = state;
    if (el.status.textContent !== words) el.status.textContent = words;
    el.root.dataset.state = state;
    el.root.dataset.verified = String(f.verified);
    el.root.dataset.mismatches = String(f.mismatches);
    el.verified.textContent = `✓ ${f.verified} checksum${f.verified === 1 ? '' : 's'}`;
    el.verified.title = `Book messages whose CRC-32 checksum (Kraken v2) this page verified against its own copy of the book: ${f.verified} (${f.snapshots} snapshot(s))`;
    el.mismatch.hidden = f.mismatches === 0 && f.jumps === 0 && f.malformed === 0;
    if (!el.mismatch.hidden) {
      const parts = [];
      if (f.mismatches) parts.push(`checksum mismatch ×${f.mismatches}`);
      if (f.jumps) parts.push(`seq jump ×${f.jumps}`);
      if (f.malformed) parts.push(`malformed ×${f.malformed}`);
      el.mismatch.textContent = parts.join(' · ');
      el.mismatch.title = `Last: ${f.lastProblem}. Each one made the page drop its copy and resubscribe for a fresh snapshot (${resyncs} resubscribe(s)).`;
    }
    const g = bookGaps + tape.gaps;
    el.gaps.hidden = g === 0;
    if (g) {
      el.gaps.textContent = `gap ×${g}`;
      el.gaps.title = `book: ${bookGaps} gap marker(s) (each followed by a fresh snapshot); trades: ${tape.gaps} gap marker(s), ${tape.missed} trade(s) missed`;
    }
  }

  function renderLadder() {
    const b = sub ? sub.book : EMPTY_BOOK;
    el.root.classList.toggle('book-stale', !b.valid);
    const asks = b.asks(LADDER_LEVELS);
    const bids = b.bids(LADDER_LEVELS);
    const at = sideTotals(asks);
    const bt = sideTotals(bids);
    const maxTotal = Math.max(at[at.length - 1] || 0, bt[bt.length - 1] || 0);
    for (let i = 0; i < LADDER_LEVELS; i++) {
      // askRows[LADDER_LEVELS - 1] sits next to the spread: the best ask
      setRow(askRows[LADDER_LEVELS - 1 - i], asks[i], at[i], maxTotal);
      setRow(bidRows[i], bids[i], bt[i], maxTotal);
    }
    el.root.dataset.levels = String(asks.length + bids.length);
    const sp = spreadOf(bids[0], asks[0]);
    const text = sp ? `spread ${sp.text}` + (Number.isFinite(sp.bps) ? ` · ${sp.bps.toFixed(1)} bps` : '') : 'spread –';
    if (el.spreadRow.textContent !== text) el.spreadRow.textContent = text;
    const head = bids[0] && asks[0] ? `${bids[0].price} / ${asks[0].price}` : '';
    if (el.spread.textContent !== head) el.spread.textContent = head;
    el.spreadRow.classList.toggle('crossed', isCrossed(bids[0], asks[0]));
  }

  function tapeItem(e) {
    const li = document.createElement('li');
    if (e.kind === 'gap') {
      li.className = 'gap';
      const n = e.to - e.from + 1;
      li.textContent = `${n} trade${n === 1 ? '' : 's'} ${e.reason === 'unannounced' ? 'missing (no gap marker!)' : e.reason} · seq ${e.from}–${e.to}`;
      return li;
    }
    li.className = e.side;
    const t = document.createElement('time');
    t.textContent = fmtTime(e.ts);
    const px = document.createElement('span');
    px.className = 'px';
    px.textContent = e.price;
    const sz = document.createElement('span');
    sz.className = 'sz';
    sz.textContent = e.size;
    const sd = document.createElement('span');
    sd.className = 'side';
    sd.textContent = e.side || '?';
    li.append(t, px, sz, sd);
    li.title = `seq ${e.seq}${e.id ? ' · ' + e.id : ''}`;
    return li;
  }

  function renderTape() {
    const n = tape.takeAdded();
    if (n) {
      const frag = document.createDocumentFragment();
      for (let i = 0; i < n; i++) frag.appendChild(tapeItem(tape.entries[i]));
      el.tape.prepend(frag);
      while (el.tape.childElementCount > TAPE_MAX) el.tape.lastElementChild.remove();
    }
    el.root.dataset.trades = String(tape.total);
    el.tapeInfo.textContent = tape.total ? `${tape.total} received` : 'waiting for trades…';
  }

  function renderChart() {
    const w = Math.floor(el.chart.clientWidth);
    const h = Math.floor(el.chart.clientHeight);
    if (w <= 0 || h <= 0) return;
    chartDrawn = drawChart(el.chart, series.candles, w, h);
    el.root.dataset.candles = String(chartDrawn);
    const c = series.candles[series.candles.length - 1];
    el.ohlc.textContent = c ? `O ${c.open} H ${c.high} L ${c.low} C ${c.close} · vol ${c.volume}${c.closed ? '' : ' · live'}` : '';
  }

  // Redraw the chart at its new size (the layout changes with the window, or the view opening).
  if ('ResizeObserver' in window) new ResizeObserver(() => { if (sym) mark('chart'); }).observe(el.chart);

  // ------------------------------------------------------------ subscriptions
  /** Subscribes the shown symbol's topics: the book through the SDK (kept and verified there), trades and bars. */
  function subscribeAll() {
    if (!sym || subscribed || client.state !== 'connected') return;
    subscribed = true;
    const mine = sym;
    const t = topics;
    client.book(t.book, {
      onUpdate: () => { if (sym === mine) { mark('ladder'); mark('head'); } },
      onInvalid: (ev) => { if (sym === mine) bookInvalid(ev); },
    }).then((s) => {
      if (sym !== mine) return; // switched meanwhile: its unsubscribe already dropped this book
      sub = s;
      mark('head');
    }).catch((e) => failed(e, t.book, mine));
    client.subscribe([t.trade, t.bar]).catch((e) => failed(e, `${t.trade}, ${t.bar}`, mine));
  }

  function failed(e, what, mine) {
    if (sym !== mine) return;
    if (e instanceof TickcastError) io.log('error', `${what}: ${e.message}`);
    else subscribed = false; // the connection went away first: subscribe again once connected
  }

  /** The SDK dropped the book: say why; it resubscribes (or waits for the server's snapshot) by itself. */
  function bookInvalid(ev) {
    if (ev.reason === 'gap') {
      bookGaps++;
      io.log('info', `${ev.topic}: ${ev.detail}`);
    } else if (ev.reason === 'reset') {
      io.log('info', `${ev.topic}: ${ev.detail}; resubscribing for a fresh snapshot`);
    } else {
      io.log(ev.reason === 'stalled' ? 'warn' : 'error', `${ev.topic}: ${ev.detail}${ev.resubscribe ? '; resubscribing for a fresh snapshot' : ''}`);
    }
    mark('ladder'); // faded: not a book the server vouched for
    mark('head');
  }

  function open(s) {
    if (s === sym) return;
    if (sym) close(false);
    sym = s;
    topics = detailTopics(s);
    sub = null;
    subscribed = false;
    bookGaps = 0;
    tape = new TradeTape(TAPE_MAX);
    series = new CandleSeries(CANDLES_MAX);
    backfill = { trade: 'first', bar: 'first' };
    el.sym.textContent = s;
    el.tape.replaceChildren();
    el.chart.replaceChildren();
    el.ohlc.textContent = '';
    el.root.dataset.sym = s;
    el.root.hidden = false;
    subscribeAll();
    io.log('info', `detail view: ${s} (${topics.book}, ${topics.trade}, ${topics.bar})`);
    io.onSelect(s);
    for (const k of Object.keys(dirty)) dirty[k] = true;
    queueFrame();
  }

  function close(notify = true) {
    if (!sym) return;
    const list = [topics.book, topics.trade, topics.bar];
    // One unsubscribe for the three: the SDK stops keeping the book when the server acks it.
    if (subscribed) {
      client.unsubscribe(list)
        .then((ack) => io.log('debug', `unsubscribed ${(ack.topics || []).length} topic(s)`))
        .catch((e) => { if (e instanceof TickcastError) io.log('error', `unsubscribe ${list.join(', ')}: ${e.message}`); });
    }
    sym = '';
    topics = null;
    sub = null;
    subscribed = false;
    el.root.hidden = true;
    delete el.root.dataset.sym;
    if (notify) io.onSelect('');
  }

  el.close.addEventListener('click', () => close());
  el.root.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });

  // ------------------------------------------------------------ SDK events of the shown topics (app.js routes them)
  function owns(topic) {
    return !!topics && (topic === topics.book || topic === topics.trade || topic === topics.bar);
  }

  function onTrade(m) {
    if (!topics || m.topic !== topics.trade || holdForBackfill('trade', m)) return;
    if (tape.onTrade(m)) mark('tape');
  }

  function onBar(m) {
    if (!topics || m.topic !== topics.bar || holdForBackfill('bar', m)) return;
    if (series.apply(m) !== 'bad') mark('chart');
  }

  /** A gap of a shown topic (the book's are the SDK's business: see bookInvalid). */
  function onGap(g) {
    if (g.topic === topics.trade && backfill.trade !== 'asked') { // (held back like the trades)
      tape.onGap(g);
      mark('tape');
      mark('head');
    }
  }

  /** A new seq space: the tape's next trade is a fresh baseline (the SDK restarts the book by itself). */
  function onReset(ev) {
    if (ev.topic === topics.trade) tape.restart();
    mark('head');
  }

  /** After a reconnect a topic that could not be resumed starts over from its latest message. */
  function onRecovery(ev) {
    if (!ev.recovered && ev.topic === topics.trade) tape.restart();
  }

  /** True when a trade or bar message must not be applied because of the backfill (see the notes at the top): the
   *  first message starts it (its seq says how far back to ask), and messages are held until the old stream ends. */
  function holdForBackfill(kind, m) {
    const st = backfill[kind];
    if (st === 'done') return false;
    if (st === 'asked') return true;
    const topic = topics[kind];
    const seq = Number(m.seq);
    const epoch = client.position(topic)?.epoch;
    if (!epoch || !Number.isSafeInteger(seq) || seq <= 1 || client.state !== 'connected') {
      backfill[kind] = 'done'; // nothing to ask for (or no way to): apply it as it is
      return false;
    }
    backfill[kind] = 'asked';
    const mine = sym;
    const since = { [topic]: { seq: Math.max(0, seq - BACKFILL), epoch } };
    client.unsubscribe([topic]).then(() => {
      if (sym !== mine) return undefined;
      // No message of the old stream follows the ack: from here on they are the replay, which replaces what was
      // shown (it includes it).
      backfill[kind] = 'done';
      if (kind === 'trade') { tape = new TradeTape(TAPE_MAX); el.tape.replaceChildren(); mark('tape'); }
      else { series = new CandleSeries(CANDLES_MAX); mark('chart'); }
      return client.subscribe([topic], { since });
    }).then((ack) => {
      const r = ack && ack.recovery && ack.recovery[topic];
      if (r && r.recovered === false) io.log('debug', `${topic}: no backfill (${r.reason}); the latest message follows`);
    }).catch((e) => {
      if (sym === mine) backfill[kind] = 'done';
      if (e instanceof TickcastError) io.log('error', `${topic}: backfill refused: ${e.message}`);
    });
    return true;
  }

  /** The socket (re)opened: the SDK resumes the shown topics itself; subscribe them if they never were. */
  function onConnected() {
    if (!sym) return;
    subscribeAll();
    mark('head');
  }

  function onDisconnected() {
    if (!sym) return;
    mark('head');
    mark('ladder');
  }

  /** Test and devtools hook: what the view holds. */
  function state() {
    if (!sym) return null;
    const f = sub ? sub.book : EMPTY_BOOK;
    return {
      sym, topics: { ...topics }, resyncs: sub ? sub.resubscribes : 0, backfill: { ...backfill },
      book: {
        state: f.valid ? 'live' : 'waiting', seq: f.seq, verified: f.verified, mismatches: f.mismatches,
        snapshots: f.snapshots, gaps: bookGaps, jumps: f.jumps, malformed: f.malformed, depth: f.depth,
        bids: f.bids(LADDER_LEVELS).length, asks: f.asks(LADDER_LEVELS).length, lastProblem: f.lastProblem,
      },
      tape: { total: tape.total, shown: el.tape.childElementCount, gaps: tape.gaps, missed: tape.missed, jumps: tape.jumps },
      candles: { kept: series.candles.length, drawn: chartDrawn, updates: series.updates, revisions: series.revisions },
    };
  }

  /** Test hook: corrupts the SDK's copy of the book (the best bid's size, through its internals), as a bug in
   *  applying deltas would, so a test can watch the next checksum fail, the badge appear and the resync bring a
   *  fresh snapshot. */
  function tamper() {
    const l = sub && sub.book.valid && sub.book.bidSide.levels[0];
    if (!l) return false;
    l.size = l.size === '1' ? '2' : '1';
    return true;
  }

  return {
    open, close, owns, onTrade, onBar, onGap, onReset, onRecovery, onConnected, onDisconnected, state, tamper,
    get symbol() { return sym; },
  };
}
