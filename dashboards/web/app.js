// tickcast market board: a browser client of the WebSocket protocol (v2: recovery, gap markers, heartbeats;
// docs/protocol.md) built on the JS SDK (`clients/js`, compiled into ./sdk/ by `npm run dashboard-sdk`), so the
// repository has one client implementation: the SDK owns the socket, reconnects with backoff, resubscribes with
// `since`, detects unannounced seq jumps, keeps the detail view's order book, and pings to estimate the clock offset.
//
// Design notes
// - Network handling never touches the DOM: each SDK event only updates a plain per-row state object and marks the
//   row dirty. One requestAnimationFrame pass (at most ~30 per second) then writes the changed rows (text nodes, flash
//   classes; sparklines at most twice a second). Rows are fixed-size containment roots, so a change re-lays out and repaints one row only.
//   Rows scrolled out of view are not painted until they come back (IntersectionObserver).
// - Memory is bounded: sparklines are fixed-size ring buffers (one point per time bucket), latency samples live in a
//   fixed ring, the event log and the toasts keep a fixed number of entries.
// - Reconnects: the SDK resubscribes every topic, naming its last seq and epoch in `since`, so after a network blip
//   the server replays exactly the missed ticks (`recovered:true`) and the row carries on. When it cannot
//   (`recovered:false`: too_old, epoch_changed, no_history) the snapshot that follows is a fresh baseline, as is the
//   snapshot of any plain subscribe: never counted as a gap. A `reset` (the topic's seq space restarted upstream)
//   makes the next tick a fresh baseline too. The board logs how many rows each reconnect recovered.
// - Gaps: the server announces every seq it skips with a `gap` marker (conflated, dropped, lost upstream) right before
//   the next tick; a row counts them by reason. A seq jump without a marker (the SDK reports it as a gap with reason
//   `unannounced`) would be a server bug: it is counted apart, shown with its own badge and logged as a warning.
// - Heartbeats: every subscribe asks for them (HEARTBEAT_MS), so a quiet row says since when it has had no data, and
//   a row whose feed went away (`feed_up:false`) is marked "feed down" until a tick or a feed_up:true heartbeat comes.
//   A busy topic gets none; a quiet one's DOM changes only when its state does.
// - Latency: ingest `ts` (server clock) → receipt here, with receipt moved onto the server's clock by the SDK's
//   ping-based offset estimate (latency.js says exactly what the figure is and how far to trust it).
// - Authentication: a token from the page's `#token=` fragment (then removed from the address bar) or typed into the
//   form the board shows when the server is up but refuses the WebSocket is sent by the SDK as the subprotocol pair
//   `tickcast.v1, bearer.<token>` (browsers cannot set headers) and kept in this tab's sessionStorage only.
// - Symbol detail: selecting a symbol opens detail.js's view (book ladder with checksums verified in the page, trade
//   tape, 1 s candles) on its own topics; this file routes those topics' gap, reset and recovery events to it, and
//   tells it when the socket opens and drops.
// - Works under `default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'`: no inline
//   script or style, classes only.

import { TickcastClient, TickcastError, correctedLatency, localNowUs } from './sdk/index.js';
import { createDetail, detailTopics } from './detail.js';
import { latencyStats, latencyReadout, fmtMs } from './latency.js';

const TOPIC_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const LS_KEY = 'tickcast.watchlist.v1';
const TOKEN_KEY = 'tickcast.token.v1'; // sessionStorage: gone when the tab closes
// What a browser may send in Sec-WebSocket-Protocol (an RFC 7230 token); JWTs and hex/base64url keys fit.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,4000}$/;
const DEFAULT_COUNT = 8;
const PREFERRED = ['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'JPM', 'V', 'XOM'].map((s) => 'ticker.' + s);

const SPARK_POINTS = 120; // ring size per row
const SPARK_BUCKET_MS = 500; // one point per bucket: 120 x 500 ms = a 60 s window
const SPARK_REDRAW_MS = 500; // sparkline redraws per row at most twice a second
const RENDER_MIN_MS = 30; // DOM commits at most ~30 times a second (see queueFrame())
const SPARK_W = 96;
const SPARK_H = 24;
const FLASH_MIN_MS = 800; // flash a row's price at most this often (busy symbols would otherwise stay lit)
const FLASH_ON_MS = 350; // how long a flash stays on

const RECONNECT_MIN_MS = 250; // SDK backoff: full jitter up to min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2^attempt)
const RECONNECT_MAX_MS = 15000;
// Pings: every CLOCK_SYNC_MS for the clock offset estimate; one unanswered for REQUEST_TIMEOUT_MS means a dead link,
// which the SDK drops and reconnects (close code 4000).
const CLOCK_SYNC_MS = 5000;
const REQUEST_TIMEOUT_MS = 10000;
// A connect attempt that neither opens nor fails (a black-holed network, a hung proxy) is given up after this long
// and retried with the backoff above; the failed attempt is logged with the SDK's reason ("connect timed out ...").
const CONNECT_TIMEOUT_MS = 10000;
const SUB_CHUNK = 100; // topics per subscribe request
// heartbeat_ms of every subscribe: a topic with no tick for this long gets a heartbeat saying whether its feed is up.
// It bounds how late the board notices a dead feed (a human glancing at a board tolerates a few seconds), while a
// board of many quiet symbols gets at most one small message per quiet symbol per interval. Must lie within the
// server's [heartbeats] bounds (100 ms .. 1 h by default); if a server refuses it, the board subscribes without.
const HEARTBEAT_MS = 3000;
// gap marker reasons (docs/protocol.md, "Gap markers") as the row's tooltip words them
const GAP_WORDS = { conflated: 'conflated', dropped: 'dropped', upstream: 'lost upstream', other: 'skipped (unknown reason)' };

const LOG_MAX = 100;
const TOAST_MAX = 4;
const TOAST_MS = 7000;
const LAT_RING = 8192;

const CLOSE_TEXT = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'connection lost',
  1007: 'invalid payload',
  1008: 'policy violation (slow consumer)',
  1009: 'message too big',
  1011: 'server error',
  1012: 'service restart',
  1013: 'try again later',
  1015: 'TLS failure',
  4000: 'dropped by this page (no pong in time, or tickcast.drop())',
};

// ---------------------------------------------------------------- DOM handles
const $ = (id) => document.getElementById(id);
const el = {
  root: document.documentElement,
  conn: $('conn'),
  rate: $('st-rate'),
  lat: $('st-lat'),
  gaps: $('st-gaps'),
  syms: $('st-syms'),
  form: $('add-form'),
  input: $('add-input'),
  datalist: $('topic-list'),
  rows: $('rows'),
  empty: $('empty'),
  log: $('log'),
  logCount: $('log-count'),
  toasts: $('toasts'),
  tpl: $('row-tpl'),
  authForm: $('auth-form'),
  authInput: $('auth-input'),
  authMsg: $('auth-msg'),
  authForget: $('auth-forget'),
};


// ---------------------------------------------------------------- state
/** @type {Map<string, Row>} watchlist in display order */
const rows = new Map();
const rowByEl = new WeakMap();
/** ticks received per topic (diagnostics and test hook) */
const received = new Map();

let connects = 0;
let attempt = 0; // connection attempts since the last open
let opened = false; // the current attempt got as far as open (a close then is a drop, not a refusal)
let connState = 'connecting';

let msgCount = 0; // messages since the last stats tick
let totalMsgs = 0;
let totalGaps = 0; // gap markers plus unannounced seq jumps
let totalMissed = 0; // ticks they skipped
let totalJumps = 0; // seq jumps without a gap marker (server bug)
let heartbeatMs = HEARTBEAT_MS; // 0 once a server refused it
/** the recovery outcomes of the current reconnect's resubscribe: {asked, ok, lost: {reason: n}} */
let recovery = null;
const latRing = new Float64Array(LAT_RING);
let latN = 0; // samples since the last stats tick (capped at LAT_RING)
let latHead = 0;

// ---------------------------------------------------------------- authentication state
/** The credential sent with every connection attempt ('' = none); the SDK reads it before each (re)connect. */
let token = [tokenFromFragment(), sessionStorage.getItem(TOKEN_KEY)].find((t) => t && TOKEN_RE.test(t)) ?? '';

/** Takes `#token=...` from the address (a fragment never reaches the server or its logs) and removes it. */
function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return null;
  let t = '';
  try { t = decodeURIComponent(m[1]).trim(); } catch { /* malformed escape: ignore */ }
  history.replaceState(null, '', location.pathname + location.search);
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  return t || null;
}

function wsUrl() {
  const u = new URL('ws', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  u.search = '';
  u.hash = '';
  return u.href;
}

const client = new TickcastClient(wsUrl(), {
  token: () => token,
  reconnectMinMs: RECONNECT_MIN_MS,
  reconnectMaxMs: RECONNECT_MAX_MS,
  requestTimeoutMs: REQUEST_TIMEOUT_MS,
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  clockSyncMs: CLOCK_SYNC_MS,
});

// The symbol detail view; `log` is a hoisted declaration below.
const detail = createDetail({
  client,
  log: (level, text) => log(level, text),
  onSelect: (sym) => {
    for (const r of rows.values()) r.row.classList.toggle('sel', !!sym && symbolOf(r.topic) === sym);
  },
});

/** The symbol a board topic is about: `ticker.AAPL` -> `AAPL` (other channels: what follows the first dot). */
function symbolOf(topic) {
  return topic.slice(topic.indexOf('.') + 1);
}

/** Opens the detail view of a board row's symbol, if its detail topics are valid topic names. */
function openDetail(topic) {
  const sym = symbolOf(topic);
  if (!sym || !Object.values(detailTopics(sym)).every((t) => TOPIC_RE.test(t))) {
    toast('warn', 'no detail view', `${topic}: ${sym || 'no symbol'} makes no valid book/trade/bar topic`);
    return;
  }
  detail.open(sym);
}

const dirty = new Set();
let frameQueued = false;
let lastRenderAt = -Infinity;
const logQueue = [];
let logTotal = 0;


// ---------------------------------------------------------------- rows
class Row {
  constructor(topic) {
    this.topic = topic;
    this.seq = -1; // last seq processed (-1: none yet)
    this.seqEpoch = ''; // the epoch `seq` belongs to (the SDK's, as of the baseline tick)
    this.fresh = true; // next tick is a (re)subscribe baseline: no gap check, no latency sample
    this.bid = NaN;
    this.ask = NaN;
    this.last = NaN;
    this.size = NaN;
    this.first = NaN; // first price seen this session (for change %)
    this.latUs = NaN;
    this.gaps = 0; // gap markers received
    this.lost = { conflated: 0, dropped: 0, upstream: 0, other: 0 }; // ticks they announced, by reason
    this.jumps = 0; // seq jumps without a marker (a server bug)
    this.jumpMissed = 0;
    this.quietTs = -1; // from heartbeats: ts of the last tick (0: none ever) while quiet; -1 when not quiet
    this.feedDown = false; // the latest heartbeat said feed_up:false (and no tick since)
    this.dir = 0; // direction of the last price change not yet flashed
    this.flashAt = 0;
    this.lit = false;
    this.errCode = '';
    this.visible = true;
    this.shown = {}; // last strings written, to skip no-op DOM writes

    this.ring = new Float64Array(SPARK_POINTS);
    this.ringHead = -1;
    this.ringLen = 0;
    this.bucket = -1;
    this.sparkDirty = false;
    this.sparkAt = 0;

    const row = el.tpl.content.firstElementChild.cloneNode(true);
    row.dataset.topic = topic;
    row.dataset.seq = '-1';
    const c = row.children;
    this.row = row;
    this.symEl = c[0].querySelector('.sym');
    this.gapEl = c[0].querySelector('.gap-badge');
    this.jumpEl = c[0].querySelector('.jump-badge');
    this.downEl = c[0].querySelector('.down-badge');
    this.errEl = c[0].querySelector('.err-badge');
    this.lastEl = c[1];
    this.t = {
      last: c[1].firstChild,
      chg: c[2].firstChild,
      bid: c[4].firstChild,
      ask: c[5].firstChild,
      size: c[6].firstChild,
      seq: c[7].firstChild,
      lat: c[8].firstChild,
    };
    this.chgEl = c[2];
    this.path = c[3].querySelector('path');
    this.pathCls = '';
    this.symEl.textContent = topic.startsWith('ticker.') ? topic.slice(7) : topic;
    this.symEl.title = topic;
    const rm = c[9].firstElementChild;
    rm.setAttribute('aria-label', 'Remove ' + topic);
    rm.title = 'Remove ' + topic;
    rowByEl.set(row, this);
  }

  pushSpark(price, nowMs) {
    const b = Math.floor(nowMs / SPARK_BUCKET_MS);
    if (this.ringLen === 0) {
      this.ringHead = 0;
      this.ring[0] = price;
      this.ringLen = 1;
    } else if (b === this.bucket) {
      this.ring[this.ringHead] = price;
    } else {
      // carry the previous value across idle buckets so the x axis stays time-linear
      const prev = this.ring[this.ringHead];
      const steps = Math.min(SPARK_POINTS, Math.max(1, b - this.bucket));
      for (let i = 1; i <= steps; i++) {
        this.ringHead = (this.ringHead + 1) % SPARK_POINTS;
        this.ring[this.ringHead] = i === steps ? price : prev;
      }
      this.ringLen = Math.min(SPARK_POINTS, this.ringLen + steps);
    }
    this.bucket = b;
    this.sparkDirty = true;
  }
}

function markDirty(r) {
  dirty.add(r);
  queueFrame();
}

/** Schedules one render pass: on the next animation frame, but no sooner than RENDER_MIN_MS after the last one. */
function queueFrame() {
  if (frameQueued) return;
  frameQueued = true;
  const wait = lastRenderAt + RENDER_MIN_MS - performance.now();
  // Waiting with a timer (not by skipping frames) leaves the renderer idle in between.
  if (wait > 4) setTimeout(() => requestAnimationFrame(frame), wait - 4);
  else requestAnimationFrame(frame);
}

const io = 'IntersectionObserver' in window
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const r = rowByEl.get(e.target);
      if (!r) continue;
      r.visible = e.isIntersecting;
      if (r.visible) markDirty(r);
    }
  }, { rootMargin: '200px 0px' })
  : null;

function addRow(topic) {
  const r = new Row(topic);
  rows.set(topic, r);
  if (detail.symbol && symbolOf(topic) === detail.symbol) r.row.classList.add('sel');
  el.rows.appendChild(r.row);
  if (io) io.observe(r.row);
  updateCounts();
  return r;
}

function removeRow(topic) {
  const r = rows.get(topic);
  if (!r) return;
  rows.delete(topic);
  dirty.delete(r);
  if (io) io.unobserve(r.row);
  r.row.remove();
  updateCounts();
}

function updateCounts() {
  el.syms.textContent = String(rows.size);
  el.empty.hidden = rows.size !== 0;
}

// ---------------------------------------------------------------- formatting
function fmtPx(v) {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  return v.toFixed(a >= 1 || a === 0 ? 2 : 4);
}

function fmtChg(last, first) {
  if (!Number.isFinite(last) || !Number.isFinite(first) || first === 0) return '–';
  const p = ((last - first) / first) * 100;
  const s = p.toFixed(2);
  if (s === '0.00' || s === '-0.00') return '0.00';
  return p > 0 ? '+' + s : s;
}

/** HH:MM:SS of a unix-µs time, in this browser's time zone */
function fmtClock(tsUs) {
  return new Date(tsUs / 1000).toLocaleTimeString([], { hour12: false });
}

function setText(r, key, s) {
  if (r.shown[key] !== s) {
    r.shown[key] = s;
    r.t[key].nodeValue = s;
  }
}

// ---------------------------------------------------------------- render (one pass per animation frame)
// Commits happen at most every RENDER_MIN_MS (see queueFrame): each frame that touches the DOM pays a fixed
// style/layerize/commit cost, and ~30 updates per second is as fast as anyone reads prices. Flashes and scrolling
// run on the compositor at full frame rate regardless.
function frame(now) {
  frameQueued = false;
  lastRenderAt = now;
  let deferred = false;
  for (const r of dirty) {
    if (!r.visible) continue; // painted when it scrolls back into view
    if (renderRow(r, now)) deferred = true;
    else dirty.delete(r);
  }
  if (logQueue.length) flushLog();
  if (deferred) queueFrame();
}

/** @returns {boolean} true when the row still needs a later frame (throttled sparkline or flash) */
function renderRow(r, now) {
  const row = r.row;
  if (r.seq >= 0 && row.classList.contains('stale')) row.classList.remove('stale');
  setText(r, 'last', fmtPx(r.last));
  setText(r, 'bid', fmtPx(r.bid));
  setText(r, 'ask', fmtPx(r.ask));
  setText(r, 'size', Number.isFinite(r.size) ? String(r.size) : '–');
  setText(r, 'seq', r.seq >= 0 ? String(r.seq) : '–');
  setText(r, 'lat', fmtMs(r.latUs));
  const chg = fmtChg(r.last, r.first);
  if (r.shown.chg !== chg) {
    setText(r, 'chg', chg);
    const cls = chg.startsWith('+') ? 'num c-chg pos' : chg.startsWith('-') ? 'num c-chg neg' : 'num c-chg';
    if (r.chgEl.className !== cls) r.chgEl.className = cls;
  }
  const seqStr = String(r.seq);
  if (row.dataset.seq !== seqStr) row.dataset.seq = seqStr;

  let later = false;
  if (r.dir !== 0) {
    // Flash (and colour) the price by the direction of its latest move, at most once per FLASH_MIN_MS per row (a
    // busy symbol would otherwise stay lit); a move inside that window shows when the window ends. The flash is a
    // plain on/off class held for FLASH_ON_MS: no per-frame animation work for the renderer.
    if (now - r.flashAt >= FLASH_MIN_MS) {
      r.flashAt = now;
      r.lit = true;
      r.lastEl.className = r.dir > 0 ? 'num c-last up lit' : 'num c-last down lit';
      r.dir = 0;
    } else {
      later = true;
    }
  }
  if (r.lit) {
    if (now - r.flashAt >= FLASH_ON_MS) {
      r.lit = false;
      r.lastEl.className = r.lastEl.className.replace(' lit', '');
    } else {
      later = true;
    }
  }

  if (r.gaps && r.shown.gaps !== r.gaps) {
    r.shown.gaps = r.gaps;
    r.gapEl.hidden = false;
    r.gapEl.textContent = 'gap ×' + r.gaps;
    const parts = Object.keys(GAP_WORDS).filter((k) => r.lost[k]).map((k) => `${r.lost[k]} ${GAP_WORDS[k]}`);
    r.gapEl.title = `${r.gaps} gap(s) announced by the server; ticks skipped: ${parts.join(', ')}`;
  }
  if (r.jumps && r.shown.jumps !== r.jumps) {
    r.shown.jumps = r.jumps;
    r.jumpEl.hidden = false;
    r.jumpEl.textContent = 'seq jump ×' + r.jumps;
    r.jumpEl.title = `${r.jumps} seq jump(s) without a gap marker, ${r.jumpMissed} tick(s) missing unannounced: `
      + 'the server should announce every skipped seq (see the event log)';
  }
  const hb = r.quietTs < 0 ? '' : (r.feedDown ? 'down ' : 'quiet ') + r.quietTs;
  if (r.shown.hb !== hb) {
    r.shown.hb = hb;
    const since = r.quietTs > 0 ? 'no data since ' + fmtClock(r.quietTs) : 'no data yet';
    const title = !hb ? '' : r.feedDown ? `${r.topic}: feed down, ${since}` : `${r.topic}: quiet since `
      + (r.quietTs > 0 ? fmtClock(r.quietTs) : 'subscribed (no data yet)') + ', feed up';
    row.classList.toggle('down', r.feedDown);
    r.downEl.hidden = !r.feedDown;
    if (r.feedDown) r.downEl.textContent = r.quietTs > 0 ? 'feed down' : 'no feed';
    r.downEl.title = title;
    if (title) row.title = title;
    else row.removeAttribute('title');
  }
  if (r.shown.err !== r.errCode) {
    r.shown.err = r.errCode;
    r.errEl.hidden = !r.errCode;
    r.errEl.textContent = r.errCode;
    row.classList.toggle('err', !!r.errCode);
  }

  if (r.sparkDirty) {
    if (now - r.sparkAt < SPARK_REDRAW_MS) return true;
    r.sparkAt = now;
    r.sparkDirty = false;
    drawSpark(r);
  }
  return later;
}

// Sparklines are inline SVG paths painted with their row: no per-row canvas backing store, no device-pixel-ratio
// handling, and the colours come from CSS (so they follow the light/dark theme).
function drawSpark(r) {
  const n = r.ringLen;
  if (n < 2) {
    r.path.setAttribute('d', '');
    return;
  }
  const start = (r.ringHead - n + 1 + SPARK_POINTS) % SPARK_POINTS;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = r.ring[(start + i) % SPARK_POINTS];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const pad = 2;
  const range = max - min;
  // Until the ring is full the points are spread over the whole width; then it is a sliding 60 s window.
  const dx = SPARK_W / (n - 1);
  let d = '';
  for (let i = 0; i < n; i++) {
    const v = r.ring[(start + i) % SPARK_POINTS];
    const y = range === 0 ? SPARK_H / 2 : pad + (1 - (v - min) / range) * (SPARK_H - 2 * pad);
    d += (i === 0 ? 'M' : 'L') + (i * dx).toFixed(1) + ' ' + y.toFixed(1);
  }
  r.path.setAttribute('d', d);
  const first = r.ring[start];
  const last = r.ring[r.ringHead];
  const cls = last > first ? 'up' : last < first ? 'down' : '';
  if (cls !== r.pathCls) {
    r.pathCls = cls;
    r.path.setAttribute('class', cls);
  }
}

// ---------------------------------------------------------------- event log and toasts
function log(level, text) {
  logTotal++;
  logQueue.push({ level, text, at: new Date() });
  if (logQueue.length > LOG_MAX) logQueue.splice(0, logQueue.length - LOG_MAX);
  queueFrame();
}

function flushLog() {
  const frag = document.createDocumentFragment();
  for (let i = logQueue.length - 1; i >= 0; i--) {
    const e = logQueue[i];
    const li = document.createElement('li');
    li.className = 'lv-' + e.level;
    const t = document.createElement('time');
    t.textContent = e.at.toLocaleTimeString([], { hour12: false });
    li.append(t, ' ', e.text);
    frag.appendChild(li);
  }
  logQueue.length = 0;
  el.log.prepend(frag);
  while (el.log.childElementCount > LOG_MAX) el.log.lastElementChild.remove();
  el.logCount.textContent = String(logTotal);
}

function toast(level, title, detail) {
  log(level, detail ? `${title}: ${detail}` : title);
  const div = document.createElement('div');
  div.className = 'toast lv-' + level;
  div.setAttribute('role', level === 'error' ? 'alert' : 'status');
  const b = document.createElement('strong');
  b.textContent = title;
  div.appendChild(b);
  if (detail) {
    const s = document.createElement('span');
    s.textContent = detail;
    div.appendChild(s);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-x';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => div.remove());
  div.appendChild(close);
  el.toasts.appendChild(div);
  while (el.toasts.childElementCount > TOAST_MAX) el.toasts.firstElementChild.remove();
  setTimeout(() => div.remove(), TOAST_MS);
}


// ---------------------------------------------------------------- connection (the SDK's state events)
function setConn(state, text) {
  connState = state;
  el.conn.dataset.state = state;
  el.conn.textContent = text;
  el.root.dataset.conn = state;
}

function onState(ev) {
  if (ev.state === 'connecting') {
    attempt++;
    opened = false;
    // While refused, the pill keeps saying so: each retry would otherwise hide it for a moment.
    if (connState !== 'refused') setConn('connecting', attempt > 1 ? `reconnecting… (attempt ${attempt})` : 'connecting…');
  } else if (ev.state === 'connected') {
    opened = true;
    attempt = 0;
    connects++;
    el.root.dataset.connects = String(connects);
    setConn('open', 'live');
    hideAuth();
    log('info', connects > 1 ? `reconnected (#${connects})` : 'connected');
    // The SDK resubscribes every topic now: until a row's ack says it recovered, its next tick is a baseline.
    recovery = null;
    let asked = 0;
    for (const r of rows.values()) {
      r.fresh = true;
      const p = client.position(r.topic);
      if (p && p.seq !== undefined && p.epoch !== undefined) asked++; // the SDK names these in `since`
    }
    if (connects > 1 && asked) recovery = { asked, ok: 0, lost: {} };
    detail.onConnected();
    const gone = [...unsubscribeOnConnect].filter((t) => !rows.has(t));
    unsubscribeOnConnect.clear();
    unsubscribe(gone);
  } else {
    recovery = null;
    for (const r of rows.values()) r.fresh = true;
    detail.onDisconnected();
    const what = CLOSE_TEXT[ev.code] || 'closed';
    const reason = ev.reason ? ` — ${ev.reason}` : '';
    if (opened) {
      const level = ev.code === 1000 ? 'info' : ev.code === 1006 ? 'warn' : 'error';
      toast(level, `closed ${ev.code}`, what + reason);
    } else {
      // failed attempts while the server is away: the status pill says so; one toast per outage is enough
      log('warn', `connect attempt ${attempt} failed (${ev.code ?? ''} ${what}${reason})`);
      checkRefusal();
    }
    opened = false;
    if (connState !== 'refused') showRetry(ev.nextAttemptAt);
  }
}

let retryTimer = 0;
/** "offline — retry in N s", counting down to the attempt the SDK scheduled (its `disconnected` event says when);
 *  stops once the next attempt starts or the server refused us (the pill then says that). */
function showRetry(at) {
  clearInterval(retryTimer);
  if (at === undefined) return setConn('reconnecting', 'offline');
  const update = () => {
    if (connState === 'refused' || client.state !== 'disconnected') return clearInterval(retryTimer);
    setConn('reconnecting', `offline — retry in ${Math.max(0, Math.ceil((at - Date.now()) / 1000))} s`);
  };
  update();
  retryTimer = setInterval(update, 250);
}

// ---------------------------------------------------------------- authentication
/** A connection attempt failed before opening: if the server itself is up, it refused us (401/403 at the upgrade,
 *  or a connection limit), which a browser cannot see directly; offer the credential form. */
async function checkRefusal() {
  let up = false;
  try {
    up = (await fetch('healthz', { cache: 'no-store' })).ok;
  } catch { /* server away: the SDK keeps reconnecting */ }
  if (!up || client.state === 'connected') return;
  setConn('refused', token ? 'refused — check the token' : 'refused — sign in?');
  showAuth(token
    ? 'The server refused the connection with this token (expired, unknown, or not allowed from this page?).'
    : 'The server is up but refused the connection: it may require an API key or token.');
}

function showAuth(message) {
  el.authMsg.textContent = message;
  if (el.authForm.hidden) {
    el.authForm.hidden = false;
    el.authInput.value = '';
    el.authInput.focus();
    log('warn', message);
  }
}

function hideAuth() {
  el.authForm.hidden = true;
  el.authInput.value = '';
}

/** A new credential: drop the connection (if any) and connect again at once with it. */
function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  setConn('connecting', 'connecting…');
  client.dropConnection();
  client.reconnectNow();
  // A refused credential stops the SDK (it retries no further with the same provider): connect() starts it again.
  connect();
}

/** Starts the SDK (again); a refusal is shown from its `state` and `error` events, not from this promise. */
function connect() {
  client.connect().catch(() => {});
}

el.authForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = el.authInput.value.trim();
  if (!TOKEN_RE.test(t)) {
    el.authMsg.textContent = t
      ? 'That token has characters a browser cannot send in Sec-WebSocket-Protocol.'
      : 'Enter an API key or token.';
    return;
  }
  el.authForm.hidden = true;
  log('info', 'connecting with a new token');
  setToken(t);
});

el.authForget.addEventListener('click', () => {
  hideAuth();
  log('info', 'token forgotten');
  setToken('');
});

// ---------------------------------------------------------------- requests
/** Subscribes in chunks of SUB_CHUNK topics, asking for heartbeats. Offline, the SDK keeps the topics and subscribes
 *  them when it connects. */
function subscribe(topics) {
  for (let i = 0; i < topics.length; i += SUB_CHUNK) subscribeChunk(topics.slice(i, i + SUB_CHUNK));
}

async function subscribeChunk(chunk) {
  for (const t of chunk) {
    const r = rows.get(t);
    if (r) r.fresh = true; // the snapshot that follows a plain subscribe is a baseline
  }
  try {
    onAck(await client.subscribe(chunk, heartbeatMs ? { heartbeatMs } : {}));
  } catch (e) {
    if (!(e instanceof TickcastError)) return; // not connected (or dropped): the SDK subscribes them on connect
    // A server whose [heartbeats] bounds refuse HEARTBEAT_MS subscribed nothing: subscribe again without.
    if (e.code === 'invalid_field' && e.field === 'heartbeat_ms' && heartbeatMs) {
      toast('warn', 'heartbeats off', `the server refused heartbeat_ms ${heartbeatMs} (${errorText(e)}); `
        + 'quiet and feed-down rows will not be shown');
      heartbeatMs = 0;
      subscribeChunk(chunk);
      return;
    }
    requestFailed(e, 'subscribe', chunk);
  }
}

/** Topics removed while offline: the SDK still holds them (it forgets a topic on the server's ack) and resubscribes
 *  them on connect, so they are unsubscribed then. */
const unsubscribeOnConnect = new Set();

function unsubscribe(topics) {
  if (!topics.length) return;
  client.unsubscribe(topics)
    .then((ack) => log('debug', `unsubscribed ${(ack.topics || []).length} topic(s)`))
    .catch((e) => {
      if (e instanceof TickcastError) requestFailed(e, 'unsubscribe', topics);
      else for (const t of topics) if (!rows.has(t)) unsubscribeOnConnect.add(t);
    });
}

/** The server's words of a TickcastError (its message without the code the SDK puts in front). */
function errorText(e) {
  const prefix = e.code + ': ';
  return e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
}

/** A request of ours the server refused: toast it, and mark the rows it was about that have no data. */
function requestFailed(e, op, topics) {
  toast('error', e.code, `${errorText(e)} (request ${e.id} ${op})`);
  if (e.ack) onAck(e.ack); // a partly refused subscribe: the server subscribed the rest
  for (const t of e.topics ?? topics) {
    const r = rows.get(t);
    if (r && r.seq < 0) { r.errCode = e.code; markDirty(r); }
  }
}

/** An ack of ours: clears the error mark of rows it subscribed. */
function onAck(m) {
  for (const t of m.topics || []) {
    const r = rows.get(t);
    if (r && r.errCode) { r.errCode = ''; markDirty(r); }
  }
  log('debug', `subscribed ${(m.topics || []).length} topic(s)`);
}

// ---------------------------------------------------------------- SDK events
const KNOWN_TYPES = new Set(['tick', 'gap', 'heartbeat', 'reset', 'subscribed', 'unsubscribed', 'pong', 'error', 'book', 'trade', 'bar']);

client.on('state', onState);
client.on('message', (m) => {
  msgCount++;
  totalMsgs++;
  if (!KNOWN_TYPES.has(m && m.type)) log('warn', 'unknown message type: ' + String(m && m.type).slice(0, 40));
});
client.on('tick', onTick);
// The server only sends JSON text: anything else (a proxy's, or a server bug) is worth a line in the log.
client.on('invalidFrame', (f) => log('warn', f.reason === 'binary'
  ? `unexpected binary frame (${f.size} bytes) ignored (#${f.total})`
  : `unparsable message from server ignored (#${f.total}): ${f.sample}`));
client.on('gap', (g) => (detail.owns(g.topic) ? detail.onGap(g) : onGap(g)));
client.on('heartbeat', onHeartbeat);
client.on('reset', onReset);
client.on('recovery', (ev) => (detail.owns(ev.topic) ? detail.onRecovery(ev) : onRecovery(ev)));
client.on('trade', (m) => detail.onTrade(m));
client.on('bar', (m) => detail.onBar(m));
// An error answering none of our requests: to input sent with tickcast.sendRaw(), or unsolicited (rate_limited);
// or the SDK stopping on a refused credential, which the sign-in form says better than a toast.
client.on('error', (e) => {
  if (e.code === 'unauthorized') return void checkRefusal();
  toast('error', e.code || 'error', String(e.message || '') + (e.id != null ? ` (request ${e.id})` : ''));
});

/** The seq space of the topic restarted upstream in a new epoch: its next tick is a fresh baseline, not a reorder. */
function onReset(ev) {
  if (detail.owns(ev.topic)) detail.onReset(ev);
  const r = rows.get(ev.topic);
  if (r) {
    r.fresh = true;
    markDirty(r);
  }
  log('info', `${ev.topic}: seq space restarted (epoch ${ev.epoch})`);
}

/** A row's `since` outcome after a reconnect: recovered (the missed ticks follow: no baseline needed) or not (the
 *  snapshot that follows is a fresh baseline). The reconnect's tally is logged once every row has answered. */
function onRecovery(ev) {
  const r = rows.get(ev.topic);
  if (!r) return;
  if (ev.recovered) r.fresh = false;
  else log('debug', `${ev.topic} not recovered (${ev.reason}): the snapshot is a fresh baseline`);
  const t = recovery;
  if (!t) return;
  if (ev.recovered) t.ok++;
  else t.lost[ev.reason] = (t.lost[ev.reason] || 0) + 1;
  const lost = Object.entries(t.lost);
  if (t.ok + lost.reduce((n, [, k]) => n + k, 0) < t.asked) return;
  recovery = null;
  const words = lost.map(([k, n]) => `${n} ${k}`).join(', ');
  log('info', words
    ? `reconnect #${connects}: recovered ${t.ok} of ${t.asked} topic(s); not recovered: ${words} (fresh baseline)`
    : `reconnect #${connects}: recovered ${t.ok} of ${t.asked} topic(s), no tick lost`);
}

/** `gap`: seqs from..=to of the topic will not come (conflated or dropped while this board was behind, or lost by
 *  the feed), or, with reason `unannounced`, a seq jump no marker named (the SDK's finding: a server bug). Counted
 *  by reason; the row's baseline moves to `to`, so the tick after it is no gap of its own. */
function onGap(g) {
  const r = rows.get(g.topic);
  if (!r) return;
  const { from, to } = g;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) {
    log('warn', `${g.topic}: malformed gap marker ignored: ${JSON.stringify(g).slice(0, 120)}`);
    return;
  }
  const n = to - from + 1;
  totalGaps++;
  totalMissed += n;
  if (g.reason === 'unannounced') {
    r.jumps++;
    r.jumpMissed += n;
    totalJumps++;
    log('warn', `${g.topic}: seq ${from - 1} → ${to + 1} without a gap marker (${n} tick(s) missing unannounced: server bug?)`);
  } else {
    const reason = Object.hasOwn(r.lost, g.reason) ? g.reason : 'other';
    r.gaps++;
    r.lost[reason] += n;
    if (!r.fresh && r.seq >= 0 && from !== r.seq + 1) log('warn', `${g.topic}: gap marker ${from}–${to} does not follow seq ${r.seq}`);
    log(reason === 'conflated' || reason === 'dropped' ? 'info' : 'warn', `${g.topic}: ${n} tick(s) ${GAP_WORDS[reason]} (seq ${from}–${to})`);
  }
  if (!r.fresh && r.seq >= 0 && to > r.seq) r.seq = to;
  markDirty(r);
}

/** `heartbeat`: the topic had no tick for HEARTBEAT_MS; says since when (`ts`) and whether its feed is up. */
function onHeartbeat(m) {
  const r = rows.get(m.topic);
  if (!r) return;
  // (Its seq may be ahead of the row's: ticks this board fell behind on are announced by a gap marker that comes
  // with the topic's next tick, not before.)
  const ts = Number(m.ts) || 0;
  const down = m.feed_up === false;
  if (down === r.feedDown && ts === r.quietTs) return; // nothing new to show
  if (down && !r.feedDown) log('warn', `${m.topic}: feed down, ${ts ? 'no data since ' + fmtClock(ts) : 'no data yet'}`);
  else if (!down && r.feedDown) log('info', `${m.topic}: feed up again`);
  r.feedDown = down;
  r.quietTs = ts;
  markDirty(r);
}

function onTick(m) {
  const topic = m.topic;
  received.set(topic, (received.get(topic) || 0) + 1);
  const r = rows.get(topic);
  if (!r) return; // late tick for a topic removed a moment ago
  const seq = Number(m.seq);
  const nowMs = Date.now();
  if (r.fresh || r.seq < 0 || m.snapshot === true) {
    r.fresh = false; // baseline after (re)subscribe: the snapshot is old, so no latency sample
    // Only a baseline can start another epoch (a reset or a lost recovery makes the row fresh first).
    r.seqEpoch = client.position(topic)?.epoch ?? '';
  } else if (seq === r.seq) {
    return; // duplicate
  } else if (seq < r.seq) {
    log('warn', `${topic}: seq went back ${r.seq} → ${seq} (feed restarted?)`);
  } else {
    // (A skip no gap marker announced came as an `unannounced` gap event just before this tick.)
    // Ticks replayed after a reconnect count too: they were published while the link was down (anything older the
    // row already had) and really did arrive that late.
    const clock = client.clockOffset();
    const lat = clock ? correctedLatency(Number(m.ts), localNowUs(), clock).latencyUs : NaN;
    if (Number.isFinite(lat)) {
      r.latUs = lat;
      latRing[latHead] = lat;
      latHead = (latHead + 1) % LAT_RING;
      if (latN < LAT_RING) latN++;
    }
  }
  r.seq = seq;
  // Data newer than the heartbeat knew of: not quiet, feed up. (A resubscribe's snapshot of the very tick the
  // heartbeat named says nothing new about the feed, and the row keeps its state.)
  if (r.quietTs >= 0 && Number(m.ts) !== r.quietTs) { r.quietTs = -1; r.feedDown = false; }
  const last = Number(m.last);
  if (Number.isFinite(last)) {
    if (Number.isFinite(r.last) && last !== r.last) r.dir = last > r.last ? 1 : -1;
    if (!Number.isFinite(r.first)) r.first = last;
    r.last = last;
    r.pushSpark(last, nowMs);
  }
  r.bid = Number(m.bid);
  r.ask = Number(m.ask);
  r.size = Number(m.size);
  markDirty(r);
}

// ---------------------------------------------------------------- stats, once per second
let latScratch = new Float64Array(0);
let latTitle = '';
function statsTick() {
  el.rate.textContent = String(msgCount);
  msgCount = 0;
  if (latScratch.length < latN) latScratch = new Float64Array(LAT_RING);
  for (let i = 0; i < latN; i++) latScratch[i] = latRing[(latHead - 1 - i + LAT_RING) % LAT_RING];
  const { text, title } = latencyReadout(latencyStats(latScratch, latN), client.clockOffset());
  latN = 0;
  el.lat.textContent = text;
  if (title !== latTitle) {
    latTitle = title;
    el.lat.title = title;
  }
  el.gaps.textContent = totalGaps ? `${totalGaps} (${totalMissed} missed)` : '0';
  el.gaps.classList.toggle('warn', totalGaps > 0);
  el.gaps.classList.toggle('bad', totalJumps > 0);
  if (totalJumps && !el.gaps.title) el.gaps.title = 'Includes seq jumps the server did not announce (see the event log)';
}

// ---------------------------------------------------------------- watchlist
function saveWatchlist() {
  try {
    localStorage.setItem(LS_KEY, JSON.stringify([...rows.keys()]));
  } catch { /* private mode or quota: not fatal */ }
}

function loadWatchlist() {
  try {
    const v = JSON.parse(localStorage.getItem(LS_KEY) || 'null');
    if (Array.isArray(v)) return v.filter((t) => typeof t === 'string' && TOPIC_RE.test(t));
  } catch { /* ignore */ }
  return null;
}

let knownTopics = [];
let topicsFetchedAt = 0;
let topicsInflight = null;

async function fetchTopics() {
  if (topicsInflight) return topicsInflight;
  topicsInflight = (async () => {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 4000);
    try {
      // With auth on, /topics needs the same credential as the WebSocket and lists only what it grants.
      const headers = token ? { Authorization: 'Bearer ' + token } : {};
      const res = await fetch(new URL('topics', location.href), { signal: ctl.signal, cache: 'no-store', headers });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      const list = Array.isArray(body) ? body : body.topics;
      knownTopics = (Array.isArray(list) ? list : [])
        .map((t) => (typeof t === 'string' ? { topic: t } : t))
        .filter((t) => t && typeof t.topic === 'string');
      topicsFetchedAt = performance.now();
      fillDatalist();
      return knownTopics;
    } finally {
      clearTimeout(timer);
      topicsInflight = null;
    }
  })();
  return topicsInflight;
}

function fillDatalist() {
  const frag = document.createDocumentFragment();
  for (const t of knownTopics.slice(0, 2000)) {
    const o = document.createElement('option');
    o.value = t.topic;
    if (Number.isFinite(t.last)) o.label = `${t.topic.replace(/^ticker\./, '')} ${fmtPx(t.last)}`;
    frag.appendChild(o);
  }
  el.datalist.replaceChildren(frag);
}

function defaultWatchlist(topics) {
  // Rows are quotes: books, trades and candles have their own views, not a row of the board.
  const names = topics.map((t) => t.topic).filter((n) => n.startsWith('ticker.'));
  const set = new Set(names);
  const out = PREFERRED.filter((t) => set.has(t));
  for (const t of [...names].sort()) {
    if (out.length >= DEFAULT_COUNT) break;
    if (!out.includes(t)) out.push(t);
  }
  return out.slice(0, DEFAULT_COUNT);
}

/** "aapl, msft ticker.X" -> normalized topics; invalid entries are reported */
function parseInput(text) {
  const out = [];
  for (const raw of text.split(/[\s,;]+/)) {
    if (!raw) continue;
    const t = raw.includes('.') ? raw : 'ticker.' + raw.toUpperCase();
    if (!TOPIC_RE.test(t)) {
      toast('error', 'invalid_topic', `"${raw.slice(0, 70)}" is not a valid topic (letters, digits and . _ : - up to 64 bytes); not sent`);
      continue;
    }
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

function addTopics(topics) {
  const added = [];
  for (const t of topics) {
    const existing = rows.get(t);
    if (existing) {
      existing.row.scrollIntoView({ block: 'nearest' });
      existing.row.classList.remove('hl');
      void existing.row.offsetWidth; // restart the highlight animation (user action, not per tick)
      existing.row.classList.add('hl');
      continue;
    }
    addRow(t);
    added.push(t);
  }
  if (added.length) {
    saveWatchlist();
    subscribe(added);
    log('info', 'added ' + added.join(', '));
  }
  return added;
}

function removeTopic(topic) {
  if (!rows.has(topic)) return;
  removeRow(topic);
  saveWatchlist();
  unsubscribe([topic]);
  log('info', 'removed ' + topic);
}

// ---------------------------------------------------------------- wiring
el.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const topics = parseInput(el.input.value);
  el.input.value = '';
  addTopics(topics);
});

el.input.addEventListener('focus', () => {
  if (performance.now() - topicsFetchedAt > 5000) fetchTopics().catch(() => {});
});

el.rows.addEventListener('click', (e) => {
  const row = e.target.closest('.row');
  const r = row && rowByEl.get(row);
  if (!r) return;
  // the remove button removes; a click anywhere else on the row (or its symbol button, for keyboards) selects it
  if (e.target.closest('button[data-act="remove"]')) removeTopic(r.topic);
  else openDetail(r.topic);
});

window.addEventListener('online', () => client.reconnectNow());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    client.reconnectNow();
    for (const r of rows.values()) if (r.seq >= 0) markDirty(r);
  }
});

// Tiny debugging / test hook (also handy from the devtools console).
window.tickcast = Object.freeze({
  /** subscribe ({op:'subscribe', topics}) or unsubscribe through the SDK, outside the watchlist; resolves with the
   *  request id (its ack's, or its error's, which is shown as a toast), or 0 when offline */
  send: async (obj) => {
    const topics = Array.isArray(obj.topics) ? obj.topics.map(String) : [];
    try {
      const ack = await (obj.op === 'unsubscribe' ? client.unsubscribe(topics) : client.subscribe(topics));
      return ack.id;
    } catch (e) {
      if (!(e instanceof TickcastError)) return 0;
      requestFailed(e, obj.op, topics);
      return e.id;
    }
  },
  /** send raw text as-is, e.g. to see how the server answers malformed input (its error is shown as a toast) */
  sendRaw: (text) => client.sendRaw(String(text)),
  received: (topic) => received.get(topic) || 0,
  state: () => ({
    conn: connState, connects, attempt, topics: [...rows.keys()], totalMsgs, gaps: totalGaps, missed: totalMissed,
    jumps: totalJumps, heartbeatMs, invalidFrames: client.invalidFrames,
  }),
  /** one row's stream state: seq, epochs, gaps by reason, heartbeat state */
  row: (topic) => {
    const r = rows.get(topic);
    return r && {
      seq: r.seq, seqEpoch: r.seqEpoch, epoch: client.position(topic)?.epoch ?? '', fresh: r.fresh, gaps: r.gaps, lost: { ...r.lost },
      jumps: r.jumps, jumpMissed: r.jumpMissed, quietTs: r.quietTs, feedDown: r.feedDown,
    };
  },
  /** drop the connection as a network blip would: the board reconnects (with backoff) and recovers */
  drop: () => {
    if (client.state !== 'connected') return false;
    log('warn', 'connection dropped (tickcast.drop())');
    client.dropConnection();
    return true;
  },
  add: (text) => addTopics(parseInput(String(text))),
  /** the detail view's state (book verification counts, tape, candles), or null when closed */
  detail: () => detail.state(),
  openDetail: (sym) => detail.open(String(sym)),
  closeDetail: () => detail.close(),
  /** tests only: corrupt the detail view's copy of the book, so the next checksum fails and the view resyncs */
  detailTamper: () => detail.tamper(),
  remove: removeTopic,
  reconnect: () => client.reconnectNow(),
  /** the clock offset estimate the latency readout uses ({offsetUs, rttUs, atUs}), or null before the first pong */
  clock: () => client.clockOffset(),
});

async function init() {
  setInterval(statsTick, 1000);
  let list = loadWatchlist();
  if (!list) {
    try {
      list = defaultWatchlist(await fetchTopics());
    } catch (e) {
      log('warn', 'GET /topics failed: ' + (e && e.message || e));
    }
    if (!list || !list.length) list = PREFERRED.slice(0, DEFAULT_COUNT);
  } else {
    fetchTopics().catch((e) => log('warn', 'GET /topics failed: ' + (e && e.message || e)));
  }
  for (const t of list) if (!rows.has(t)) addRow(t);
  updateCounts();
  subscribe([...rows.keys()]); // offline still: the SDK keeps them and subscribes them once connected
  connect();
}

init();