// The symbol detail view: a live book ladder (`book.<SYM>`), a trade tape (`trade.<SYM>`) and 1-second candles
// (`bar.1s.<SYM>`) for the symbol selected on the board.
//
// Design notes
// - The page keeps its own copy of the book and verifies the server's checksum on every snapshot and delta
//   (bookfeed.js). A mismatch, a seq jump or a malformed message means the copy is wrong: the view shows it
//   (badge and count), stops showing that book as live and resubscribes the book topic, whose first message is a
//   fresh snapshot. After a `gap` for the book the server sends a snapshot by itself; the view waits for it
//   (SNAPSHOT_WAIT_MS) before resubscribing.
// - Book topics are never throttled: a throttle skips deltas without gap markers, and every skipped delta would
//   break the book. Trades and bars are not throttled either (the tape and the candles want every message).
// - Network handling never touches the DOM: messages update the pure models (bookfeed, tape, candles) and mark
//   parts dirty; one animation-frame pass (at most every RENDER_MIN_MS; the chart at most every CHART_MIN_MS)
//   writes the changes. The ladder's 21 rows are built once and only their text and bar widths change.
// - Backfill: a plain subscribe brings only the latest trade and bar. The server keeps each topic's recent messages
//   for `since` recovery, so on the first trade (and bar) message, whose seq and the ack's epoch say where the
//   stream is, the view subscribes that topic again with `since` BACKFILL messages back: the tape and the chart
//   start full instead of empty. Messages in between (before the server took the unsubscribe) are ignored; the
//   replay holds them. If the history is shorter, the server says so and sends the latest message: nothing is lost
//   but the backfill. The same happens after a reconnect, which also fills what the outage missed.
// - Opening another symbol, or closing the view, unsubscribes the previous symbol's topics; messages of other
//   topics that are still in flight are ignored.

import { BookFeed, Outcome } from './bookfeed.js';
import { TradeTape } from './tape.js';
import { CandleSeries } from './candles.js';
import { drawChart } from './chart.js';
import { spreadOf, sideTotals } from './ladder.js';

const LADDER_LEVELS = 10; // per side
const TAPE_MAX = 60;
const CANDLES_MAX = 300;
const RENDER_MIN_MS = 50;
const CHART_MIN_MS = 250;
const SNAPSHOT_WAIT_MS = 2000; // after a book gap, how long the server's snapshot may take before we resubscribe
const RESYNC_MIN_MS = 1000; // resubscribes of the book at most this often (a server that keeps disagreeing must
// not make the page hammer it)
const BACKFILL = 90; // trade and bar messages asked back from the server's history (it keeps 100 by default)
const BACKFILL_WAIT_MS = 3000; // a backfill whose ack does not come by then is given up (messages flow again)

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
 * @param {{send: (req: object) => number, log: (level: string, text: string) => void, isOpen: () => boolean,
 *          onSelect: (sym: string) => void}} io  send: a request to the server (0 when offline); isOpen: the
 *          socket is open; onSelect: the symbol shown changed ('' when closed), for the board's highlight
 */
export function createDetail(io) {
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
  let feed = null;
  let tape = null;
  let series = null;
  let snapshotTimer = 0;
  let resyncTimer = 0;
  let lastResyncAt = -Infinity;
  let resyncs = 0;
  let chartDrawn = 0;
  /** per topic kind ('trade', 'bar'): 'first' (backfill on the next message), 'asked' (waiting for the ack of the
   *  `since` subscribe; messages ignored) or 'done' */
  let backfill = {};
  let epochs = {};
  let backfillTimer = 0;
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
    const px = level ? level.px : '';
    const sz = level ? level.sz : '';
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

  function renderHead() {
    const f = feed;
    const state = !io.isOpen() ? 'offline' : f.state === 'live' ? 'live' : f.snapshots ? 'resync' : 'waiting';
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
    const g = f.gaps + tape.gaps;
    el.gaps.hidden = g === 0;
    if (g) {
      el.gaps.textContent = `gap ×${g}`;
      el.gaps.title = `book: ${f.gaps} gap marker(s) (each followed by a fresh snapshot); trades: ${tape.gaps} gap marker(s), ${tape.missed} trade(s) missed`;
    }
  }

  function renderLadder() {
    const b = feed.book;
    const live = feed.state === 'live';
    el.root.classList.toggle('book-stale', !live);
    const asks = b.topAsks(LADDER_LEVELS);
    const bids = b.topBids(LADDER_LEVELS);
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
    const head = bids[0] && asks[0] ? `${bids[0].px} / ${asks[0].px}` : '';
    if (el.spread.textContent !== head) el.spread.textContent = head;
    el.spreadRow.classList.toggle('crossed', b.isCrossed());
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
  function subscribe(list) {
    if (list.length && io.isOpen()) io.send({ op: 'subscribe', topics: list });
  }

  function unsubscribe(list) {
    if (list.length && io.isOpen()) io.send({ op: 'unsubscribe', topics: list });
  }

  /** Drops the page's copy of the book and asks for a fresh snapshot: unsubscribe, then subscribe again (a second
   *  subscribe to a topic already held sends no snapshot). Rate-limited by RESYNC_MIN_MS. */
  function resubscribeBook(why) {
    clearTimeout(snapshotTimer);
    snapshotTimer = 0;
    if (resyncTimer) return;
    const wait = lastResyncAt + RESYNC_MIN_MS - performance.now();
    if (wait > 0) {
      resyncTimer = setTimeout(() => { resyncTimer = 0; resubscribeBook(why); }, wait);
      return;
    }
    if (!sym || feed.state === 'live' || !io.isOpen()) return;
    lastResyncAt = performance.now();
    resyncs++;
    io.log('warn', `${topics.book}: ${why}; resubscribing for a fresh snapshot`);
    unsubscribe([topics.book]);
    subscribe([topics.book]);
  }

  function open(s) {
    if (s === sym) return;
    if (sym) close(false);
    sym = s;
    topics = detailTopics(s);
    feed = new BookFeed(topics.book);
    tape = new TradeTape(TAPE_MAX);
    series = new CandleSeries(CANDLES_MAX);
    resyncs = 0;
    backfill = { trade: 'first', bar: 'first' };
    epochs = {};
    el.sym.textContent = s;
    el.tape.replaceChildren();
    el.chart.replaceChildren();
    el.ohlc.textContent = '';
    el.root.dataset.sym = s;
    el.root.hidden = false;
    subscribe([topics.book, topics.trade, topics.bar]);
    io.log('info', `detail view: ${s} (${topics.book}, ${topics.trade}, ${topics.bar})`);
    io.onSelect(s);
    for (const k of Object.keys(dirty)) dirty[k] = true;
    queueFrame();
  }

  function close(notify = true) {
    if (!sym) return;
    unsubscribe([topics.book, topics.trade, topics.bar]);
    clearTimeout(snapshotTimer);
    clearTimeout(resyncTimer);
    clearTimeout(backfillTimer);
    snapshotTimer = resyncTimer = backfillTimer = 0;
    sym = '';
    topics = null;
    el.root.hidden = true;
    delete el.root.dataset.sym;
    if (notify) io.onSelect('');
  }

  el.close.addEventListener('click', () => close());
  el.root.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });

  // ------------------------------------------------------------ messages (app.js routes the detail topics here)
  function owns(topic) {
    return !!topics && (topic === topics.book || topic === topics.trade || topic === topics.bar);
  }

  function onMessage(m) {
    if (!owns(m.topic)) return; // late message of a symbol no longer shown
    switch (m.type) {
      case 'book': {
        const out = feed.onBook(m);
        if (out === Outcome.OK) {
          clearTimeout(snapshotTimer);
          snapshotTimer = 0;
          mark('ladder');
        } else if (out === Outcome.MISMATCH || out === Outcome.JUMP || out === Outcome.MALFORMED) {
          io.log('error', `${m.topic}: ${feed.lastProblem}`);
          mark('ladder'); // faded: not a book the server vouched for
          resubscribeBook(out === Outcome.MISMATCH ? 'checksum mismatch' : out === Outcome.JUMP ? 'seq jump' : 'malformed message');
        }
        mark('head'); // the verified count (written once per frame, however many messages came)
        return;
      }
      case 'trade':
        if (m.topic !== topics.trade || holdForBackfill('trade', m)) return;
        if (tape.onTrade(m)) mark('tape');
        return;
      case 'bar':
        if (m.topic !== topics.bar || holdForBackfill('bar', m)) return;
        if (series.apply(m) !== 'bad') mark('chart');
        return;
      case 'gap':
        if (m.topic === topics.book) {
          feed.onGap(m);
          io.log('info', `${m.topic}: ${feed.lastProblem}`);
          clearTimeout(snapshotTimer);
          snapshotTimer = setTimeout(() => {
            snapshotTimer = 0;
            if (feed.state !== 'live') resubscribeBook(`no snapshot within ${SNAPSHOT_WAIT_MS} ms of a gap`);
          }, SNAPSHOT_WAIT_MS);
          mark('ladder');
        } else if (m.topic === topics.trade && backfill.trade !== 'asked') { // (held back like the trades)
          tape.onGap(m);
          mark('tape');
        }
        mark('head');
        return;
      case 'reset':
        // A new seq space: the book's next message may be a delta of a book we never saw; start over.
        if (m.topic === topics.book) { feed.restart(); resubscribeBook('seq space restarted'); }
        if (m.topic === topics.trade) tape.restart();
        mark('head');
        return;
      default:
    }
  }

  /** True when a trade or bar message must not be applied because of the backfill (see the notes at the top): the
   *  first message starts it (its seq says how far back to ask), and messages are held until its ack. */
  function holdForBackfill(kind, m) {
    const st = backfill[kind];
    if (st === 'done') return false;
    if (st === 'asked') return true;
    const topic = topics[kind];
    const seq = Number(m.seq);
    const epoch = epochs[topic];
    if (!epoch || !Number.isSafeInteger(seq) || seq <= 1 || !io.isOpen()) {
      backfill[kind] = 'done'; // nothing to ask for (or no way to): apply it as it is
      return false;
    }
    backfill[kind] = 'asked';
    unsubscribe([topic]);
    io.send({ op: 'subscribe', topics: [topic], since: { [topic]: { seq: Math.max(0, seq - BACKFILL), epoch } } });
    // The replay starts over: what was shown is replaced by what the history holds (which includes it).
    if (kind === 'trade') { tape = new TradeTape(TAPE_MAX); el.tape.replaceChildren(); mark('tape'); }
    else { series = new CandleSeries(CANDLES_MAX); mark('chart'); }
    clearTimeout(backfillTimer);
    backfillTimer = setTimeout(() => {
      backfillTimer = 0;
      for (const k of Object.keys(backfill)) if (backfill[k] === 'asked') backfill[k] = 'done';
    }, BACKFILL_WAIT_MS);
    return true;
  }

  /** Every `subscribed` ack (app.js passes them all): the epochs of our topics, and the end of a backfill (its
   *  replay, or the latest message when the history is too short, follows the ack). */
  function onAck(m) {
    if (!sym) return;
    if (m.epochs && typeof m.epochs === 'object') {
      for (const t of [topics.trade, topics.bar]) if (typeof m.epochs[t] === 'string') epochs[t] = m.epochs[t];
    }
    for (const kind of ['trade', 'bar']) {
      const t = topics[kind];
      if (backfill[kind] !== 'asked' || !Array.isArray(m.topics) || !m.topics.includes(t)) continue;
      backfill[kind] = 'done';
      const r = m.recovery && m.recovery[t];
      if (r && r.recovered === false) io.log('debug', `${t}: no backfill (${r.reason}); the latest message follows`);
    }
  }

  /** The socket (re)opened: subscribe the shown symbol again; the book waits for the snapshot that follows. */
  function onConnected() {
    if (!sym) return;
    feed.restart();
    tape.restart();
    backfill = { trade: 'first', bar: 'first' };
    subscribe([topics.book, topics.trade, topics.bar]);
    mark('head');
  }

  function onDisconnected() {
    if (!sym) return;
    feed.restart();
    clearTimeout(snapshotTimer);
    snapshotTimer = 0;
    mark('head');
    mark('ladder');
  }

  /** Test and devtools hook: what the view holds. */
  function state() {
    if (!sym) return null;
    return {
      sym, topics: { ...topics }, resyncs, backfill: { ...backfill },
      book: {
        state: feed.state, seq: feed.seq, verified: feed.verified, mismatches: feed.mismatches, snapshots: feed.snapshots,
        gaps: feed.gaps, jumps: feed.jumps, malformed: feed.malformed, ignored: feed.ignored, depth: feed.book.depth,
        bids: feed.book.topBids(LADDER_LEVELS).length, asks: feed.book.topAsks(LADDER_LEVELS).length, lastProblem: feed.lastProblem,
      },
      tape: { total: tape.total, shown: el.tape.childElementCount, gaps: tape.gaps, missed: tape.missed, jumps: tape.jumps },
      candles: { kept: series.candles.length, drawn: chartDrawn, updates: series.updates, revisions: series.revisions },
    };
  }

  /** Test hook: corrupts the page's copy of the book (the best bid's size), as a bug in applying deltas would, so a
   *  test can watch the next checksum fail, the badge appear and the resync bring a fresh snapshot. */
  function tamper() {
    const l = feed && feed.state === 'live' && feed.book.bids.levels[0];
    if (!l) return false;
    l.sz = l.sz === '1' ? '2' : '1';
    return true;
  }

  return { open, close, owns, onMessage, onAck, onConnected, onDisconnected, state, tamper, get symbol() { return sym; } };
}
