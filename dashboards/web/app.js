// tickcast market board: the reference browser client of the WebSocket protocol (v2: recovery, gap markers,
// heartbeats; docs/protocol.md).
//
// Design notes
// - Network handling never touches the DOM: each tick only updates a plain per-row state object and marks the row
//   dirty. One requestAnimationFrame pass (at most ~30 per second) then writes the changed rows (text nodes, flash
//   classes; sparklines at most twice a second). Rows are fixed-size containment roots, so a change re-lays out and repaints one row only.
//   Rows scrolled out of view are not painted until they come back (IntersectionObserver).
// - Memory is bounded: sparklines are fixed-size ring buffers (one point per time bucket), latency samples live in a
//   fixed ring, the event log and the toasts keep a fixed number of entries.
// - Reconnects use exponential backoff with jitter and resubscribe the whole watchlist. Each row keeps the last seq it
//   processed and the epoch (seq space) that seq belongs to; the resubscribe names them in `since`, so after a
//   network blip the server replays exactly the missed ticks (`recovered:true`) and the row carries on. When it
//   cannot (`recovered:false`: too_old, epoch_changed, no_history) the snapshot that follows is a fresh baseline, as
//   is the snapshot of any plain subscribe: never counted as a gap.
// - Gaps: the server announces every seq it skips with a `gap` marker (conflated, dropped, lost upstream) right before
//   the next tick; a row counts them by reason and moves its baseline past them. A seq jump without a marker would be
//   a server bug: it is counted apart, shown with its own badge and logged as a warning.
// - Heartbeats: every subscribe asks for them (HEARTBEAT_MS), so a quiet row says since when it has had no data, and
//   a row whose feed went away (`feed_up:false`) is marked "feed down" until a tick or a feed_up:true heartbeat comes.
//   A busy topic gets none; a quiet one's DOM changes only when its state does.
// - Authentication: a token from the page's `#token=` fragment (then removed from the address bar) or typed into the
//   form the board shows when the server is up but refuses the WebSocket is sent as the subprotocol pair
//   `tickcast.v1, bearer.<token>` (browsers cannot set headers) and kept in this tab's sessionStorage only.
// - Symbol detail: selecting a symbol opens detail.js's view (book ladder with checksums verified in the page, trade
//   tape, 1 s candles) on its own topics; this file routes those topics' messages (book, trade, bar, and their gap
//   and reset markers) to it, and tells it when the socket opens and drops.
// - Works under `default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'`: no inline
//   script or style, classes only.

import { createDetail, detailTopics } from './detail.js';

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

const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 15000;
const STABLE_MS = 5000; // a connection open this long resets the backoff
const PING_EVERY_MS = 15000;
const PING_TIMEOUT_MS = 10000;
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
const SKEW_SECONDS = 60; // window of the browser-behind-server clock offset estimate (one minimum per second)

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
  4000: 'no pong from server (client timeout)',
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
/** outstanding requests: id -> {op, topics} */
const pending = new Map();

let ws = null;
let nextId = 1;
let attempt = 0;
let reconnectTimer = 0;
let stableTimer = 0;
let pingTimer = 0;
let pongTimer = 0;
let connectTimer = 0;
let connects = 0;
let connState = 'connecting';

let msgCount = 0; // messages since the last stats tick
let totalMsgs = 0;
let totalGaps = 0; // gap markers plus unannounced seq jumps
let totalMissed = 0; // ticks they skipped
let totalJumps = 0; // seq jumps without a gap marker (server bug)
let heartbeatMs = HEARTBEAT_MS; // 0 once a server refused it
/** the recovery outcomes of the current (re)connect's resubscribe: {ids, asked, ok, lost: {reason: n}} */
let recovery = null;
const latRing = new Float64Array(LAT_RING);
let latN = 0; // samples since the last stats tick (capped at LAT_RING)
let latHead = 0;
// Latency is this browser's receive time minus the tick's `ts` (unix µs, stamped by the server at ingest), so it
// compares two clocks. When the browser's runs behind the server's the difference goes negative: the smallest
// difference seen over the last SKEW_SECONDS (one minimum per second, fixed ring) is then taken as the offset and
// removed, so figures are never negative (they then read the delay above the fastest recent tick). A browser clock
// ahead of the server's cannot be told apart from delay and inflates the figures.
const skewMin = new Float64Array(SKEW_SECONDS).fill(Infinity);
let skewHead = 0;
let skewUs = 0; // removed from every sample: 0, or the most negative raw difference in the window
let skewNote = '';

// The symbol detail view; `send`, `log` are hoisted declarations below, `ws` is only read once the page runs.
const detail = createDetail({
  send: (req) => send(req),
  log: (level, text) => log(level, text),
  isOpen: () => !!ws && ws.readyState === 1,
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
    this.seqEpoch = ''; // the epoch `seq` belongs to: with it, `since` after a reconnect
    this.epoch = ''; // the topic's epoch as the latest subscribe ack named it
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

/** wall-clock time in µs with sub-millisecond resolution (Date.now() has whole milliseconds only) */
function nowUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** tick ingest → receipt here in µs, offset-corrected (never negative); NaN when the tick has no usable ts */
function tickAgeUs(ts) {
  const raw = nowUs() - ts;
  if (!Number.isFinite(raw)) return NaN;
  if (raw < skewMin[skewHead]) skewMin[skewHead] = raw;
  if (raw < skewUs) skewUs = raw;
  return raw - skewUs;
}

/** once a second: start a new second of offset evidence, forget the oldest, re-estimate */
function skewTick() {
  skewHead = (skewHead + 1) % SKEW_SECONDS;
  skewMin[skewHead] = Infinity;
  let m = 0;
  for (let i = 0; i < SKEW_SECONDS; i++) if (skewMin[i] < m) m = skewMin[i];
  skewUs = m;
}

/** HH:MM:SS of a unix-µs time, in this browser's time zone */
function fmtClock(tsUs) {
  return new Date(tsUs / 1000).toLocaleTimeString([], { hour12: false });
}

function fmtMs(us) {
  if (!Number.isFinite(us)) return '–';
  const ms = us / 1000;
  return Math.abs(ms) >= 100 ? ms.toFixed(0) : ms.toFixed(1);
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

// ---------------------------------------------------------------- connection
function wsUrl() {
  const u = new URL('ws', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  u.search = '';
  u.hash = '';
  return u.href;
}

function setConn(state, text) {
  connState = state;
  el.conn.dataset.state = state;
  el.conn.textContent = text;
  el.root.dataset.conn = state;
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = 0;
  if (ws) return;
  setConn('connecting', attempt ? `reconnecting… (attempt ${attempt + 1})` : 'connecting…');
  let sock;
  try {
    sock = new WebSocket(wsUrl(), token ? ['tickcast.v1', 'bearer.' + token] : []);
  } catch (e) {
    toast('error', 'cannot open WebSocket', String(e && e.message || e));
    scheduleReconnect();
    return;
  }
  sock.binaryType = 'arraybuffer';
  ws = sock;
  let opened = false;
  clearTimeout(connectTimer);
  connectTimer = setTimeout(() => {
    if (ws !== sock || opened) return;
    log('warn', `connect attempt ${attempt + 1} timed out after ${CONNECT_TIMEOUT_MS / 1000}s`);
    dropSocket();
    scheduleReconnect();
  }, CONNECT_TIMEOUT_MS);
  sock.onopen = () => {
    if (ws !== sock) return;
    opened = true;
    clearTimeout(connectTimer);
    connects++;
    el.root.dataset.connects = String(connects);
    setConn('open', 'live');
    hideAuth();
    log('info', connects > 1 ? `reconnected (#${connects})` : 'connected');
    clearTimeout(stableTimer);
    stableTimer = setTimeout(() => { attempt = 0; }, STABLE_MS);
    pending.clear();
    subscribe([...rows.keys()], connects > 1);
    detail.onConnected();
    startPing();
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    msgCount++;
    totalMsgs++;
    if (typeof ev.data !== 'string') {
      log('warn', `unexpected binary frame (${ev.data.byteLength} bytes) ignored`);
      return;
    }
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      log('warn', 'unparsable message from server: ' + ev.data.slice(0, 80));
      return;
    }
    onMessage(m);
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    dropSocket();
    const what = CLOSE_TEXT[ev.code] || 'closed';
    const reason = ev.reason ? ` — ${ev.reason}` : '';
    if (opened) {
      const level = ev.code === 1000 ? 'info' : ev.code === 1006 ? 'warn' : 'error';
      toast(level, `closed ${ev.code}`, what + reason);
    } else {
      // failed attempts while the server is away: the status pill says so; one toast per outage is enough
      log('warn', `connect attempt ${attempt + 1} failed (${ev.code} ${what}${reason})`);
      checkRefusal();
    }
    scheduleReconnect();
  };
  // onerror carries no detail in browsers; the close event that always follows reports it.
}

// ---------------------------------------------------------------- authentication
/** The credential sent with every connection attempt ('' = none). */
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

/** A connection attempt failed before opening: if the server itself is up, it refused us (401/403 at the upgrade,
 *  or a connection limit), which a browser cannot see directly; offer the credential form. */
async function checkRefusal() {
  let up = false;
  try {
    up = (await fetch('healthz', { cache: 'no-store' })).ok;
  } catch { /* server away: the reconnect loop handles it */ }
  if (!up || ws) return;
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

function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  attempt = 0;
  dropSocket();
  reconnectNow();
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

function dropSocket() {
  const s = ws;
  ws = null;
  clearTimeout(connectTimer);
  clearTimeout(stableTimer);
  stopPing();
  recovery = null;
  for (const r of rows.values()) r.fresh = true;
  detail.onDisconnected();
  if (s) {
    s.onopen = s.onmessage = s.onclose = null;
    if (s.readyState <= 1) {
      try { s.close(4000, 'client timeout'); } catch { /* ignore */ }
    }
  }
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
  const delay = Math.round(exp / 2 + Math.random() * (exp / 2)); // "equal jitter"
  attempt++;
  setConn('reconnecting', `offline — retry in ${(delay / 1000).toFixed(1)}s`);
  reconnectTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (ws) return;
  clearTimeout(reconnectTimer);
  reconnectTimer = 0;
  connect();
}

/** Keepalive: a ping every PING_EVERY_MS; no pong within PING_TIMEOUT_MS means a dead link: drop and reconnect. */
function startPing() {
  stopPing();
  pingTimer = setInterval(() => {
    if (!ws || ws.readyState !== 1 || pongTimer) return;
    send({ op: 'ping' });
    pongTimer = setTimeout(() => {
      pongTimer = 0;
      toast('error', 'closed 4000', CLOSE_TEXT[4000]);
      dropSocket();
      scheduleReconnect();
    }, PING_TIMEOUT_MS);
  }, PING_EVERY_MS);
}

function stopPing() {
  clearInterval(pingTimer);
  clearTimeout(pongTimer);
  pingTimer = 0;
  pongTimer = 0;
}

function send(obj) {
  if (!ws || ws.readyState !== 1) return 0;
  const id = nextId++;
  obj.id = id;
  if (obj.op === 'subscribe' || obj.op === 'unsubscribe' || obj.op === 'ping') {
    pending.set(id, { op: obj.op, topics: obj.topics || [], at: performance.now(), req: obj });
    if (pending.size > 1000) pending.delete(pending.keys().next().value);
  }
  ws.send(JSON.stringify(obj));
  return id;
}

/** Subscribes in chunks of SUB_CHUNK topics, asking for heartbeats. With `recover` (a resubscribe after a reconnect)
 *  each row that has processed a tick names its seq and epoch in `since`, in the request of its own chunk (the server
 *  accepts `since` only for topics of the same request); the ack says per topic whether the missed ticks follow. */
function subscribe(topics, recover = false) {
  const ids = new Set();
  let asked = 0;
  for (let i = 0; i < topics.length; i += SUB_CHUNK) {
    const chunk = topics.slice(i, i + SUB_CHUNK);
    const req = { op: 'subscribe', topics: chunk };
    if (heartbeatMs) req.heartbeat_ms = heartbeatMs;
    let since = null;
    for (const t of chunk) {
      const r = rows.get(t);
      if (!r) continue;
      r.fresh = true; // until the ack says the stream recovers, the next tick is a baseline
      if (recover && r.seq >= 0 && r.seqEpoch) {
        (since ??= {})[t] = { seq: r.seq, epoch: r.seqEpoch };
        asked++;
      }
    }
    if (since) req.since = since;
    const id = send(req);
    if (id && since) ids.add(id);
  }
  if (recover) recovery = ids.size ? { ids, asked, ok: 0, lost: {} } : null;
}

function unsubscribe(topics) {
  if (topics.length) send({ op: 'unsubscribe', topics });
}

// ---------------------------------------------------------------- protocol
function onMessage(m) {
  switch (m && m.type) {
    case 'tick':
      onTick(m);
      return;
    case 'book':
    case 'trade':
    case 'bar':
      detail.onMessage(m);
      return;
    case 'gap':
      if (detail.owns(m.topic)) detail.onMessage(m);
      else onGap(m);
      return;
    case 'heartbeat':
      onHeartbeat(m);
      return;
    case 'reset': {
      if (detail.owns(m.topic)) detail.onMessage(m);
      // The topic's seq space restarted upstream in a new epoch: its next tick is a fresh baseline.
      const r = rows.get(m.topic);
      if (r) {
        r.epoch = String(m.epoch || '');
        r.fresh = true;
        markDirty(r);
      }
      log('info', `${m.topic}: seq space restarted (epoch ${m.epoch})`);
      return;
    }
    case 'subscribed':
    case 'unsubscribed':
      pending.delete(m.id);
      if (m.type === 'subscribed') {
        onSubscribed(m);
        detail.onAck(m);
      }
      log('debug', `${m.type} ${(m.topics || []).length} topic(s)`);
      return;
    case 'pong': {
      const p = pending.get(m.id);
      pending.delete(m.id);
      clearTimeout(pongTimer);
      pongTimer = 0;
      if (p) log('debug', `pong in ${(performance.now() - p.at).toFixed(1)} ms`);
      return;
    }
    case 'error':
      onError(m);
      return;
    default:
      log('warn', 'unknown message type: ' + String(m && m.type).slice(0, 40));
  }
}

/** The ack: each topic's epoch, and the outcome of each `since` (recovered: the stream goes on from the row's seq;
 *  not: the snapshot that follows is a fresh baseline, as the row already expects). */
function onSubscribed(m) {
  for (const t of m.topics || []) {
    const r = rows.get(t);
    if (r && r.errCode) { r.errCode = ''; markDirty(r); }
  }
  if (m.epochs && typeof m.epochs === 'object') {
    for (const [t, e] of Object.entries(m.epochs)) {
      const r = rows.get(t);
      if (r) r.epoch = String(e);
    }
  }
  const tally = recovery && recovery.ids.has(m.id) ? recovery : null;
  if (m.recovery && typeof m.recovery === 'object') {
    for (const [t, o] of Object.entries(m.recovery)) {
      const r = rows.get(t);
      const ok = !!o && o.recovered === true;
      const reason = ok ? '' : String(o && o.reason || 'unknown');
      if (r && ok) r.fresh = false; // the missed ticks follow: seq r.seq + 1 comes next
      if (!ok) log('debug', `${t} not recovered (${reason}): the snapshot is a fresh baseline`);
      if (tally) {
        if (ok) tally.ok++;
        else tally.lost[reason] = (tally.lost[reason] || 0) + 1;
      }
    }
  }
  if (tally) recoveryDone(m.id);
}

/** One request of the reconnect's resubscribe answered (acked or refused): log the outcome once all are. */
function recoveryDone(id) {
  const t = recovery;
  if (!t || !t.ids.delete(id) || t.ids.size) return;
  recovery = null;
  const lost = Object.entries(t.lost).map(([k, n]) => `${n} ${k}`).join(', ');
  log('info', lost
    ? `reconnect #${connects}: recovered ${t.ok} of ${t.asked} topic(s); not recovered: ${lost} (fresh baseline)`
    : `reconnect #${connects}: recovered ${t.ok} of ${t.asked} topic(s), no tick lost`);
}

function onError(m) {
  const code = String(m.code || 'error');
  const p = m.id != null ? pending.get(m.id) : undefined;
  if (p) pending.delete(m.id);
  if (p && p.op === 'subscribe' && code === 'invalid_field' && retryWithout(p, String(m.field || ''), m)) return;
  // `forbidden` refuses part of a request and its ack follows; other errors refuse all of it
  if (p && p.op === 'subscribe' && code !== 'forbidden') recoveryDone(m.id);
  let detail = String(m.message || '');
  if (m.id != null) detail += ` (request ${m.id}${p ? ' ' + p.op : ''})`;
  toast('error', code, detail);
  if (p && p.op === 'subscribe') {
    for (const t of p.topics) {
      const r = rows.get(t);
      if (r && r.seq < 0) { r.errCode = code; markDirty(r); }
    }
  }
}

/** A subscribe refused for a v2 option this server does not take as sent (heartbeat_ms outside its [heartbeats]
 *  bounds, a `since` it finds malformed): nothing of it was subscribed, so send it again without that option. */
function retryWithout(p, field, m) {
  const req = { ...p.req };
  delete req.id;
  const why = m.message ? `${field}: ${m.message}` : field;
  if (field === 'heartbeat_ms' && req.heartbeat_ms) {
    if (heartbeatMs) {
      toast('warn', 'heartbeats off', `the server refused heartbeat_ms ${heartbeatMs} (${why}); `
        + 'quiet and feed-down rows will not be shown');
    }
    heartbeatMs = 0;
    delete req.heartbeat_ms;
  } else if (field.startsWith('since') && req.since) {
    log('warn', `the server refused since (${why}); subscribing without recovery`);
    if (recovery && recovery.ids.has(m.id)) {
      const n = Object.keys(req.since).length;
      recovery.lost.refused = (recovery.lost.refused || 0) + n;
    }
    delete req.since;
  } else {
    return false;
  }
  const id = send(req);
  if (recovery && recovery.ids.has(m.id)) {
    if (id && req.since) recovery.ids.add(id);
    recoveryDone(m.id);
  }
  return true;
}

/** `gap`: seqs from..=to of the topic will not come (conflated or dropped while this board was behind, or lost by
 *  the feed). Counted by reason; the row's baseline moves to `to`, so the tick after it is no gap of its own. */
function onGap(m) {
  const r = rows.get(m.topic);
  if (!r) return;
  const from = Number(m.from);
  const to = Number(m.to);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) {
    log('warn', `${m.topic}: malformed gap marker ignored: ${JSON.stringify(m).slice(0, 120)}`);
    return;
  }
  const reason = Object.hasOwn(r.lost, m.reason) ? m.reason : 'other';
  const n = to - from + 1;
  r.gaps++;
  r.lost[reason] += n;
  totalGaps++;
  totalMissed += n;
  if (!r.fresh && r.seq >= 0) {
    if (from !== r.seq + 1) log('warn', `${m.topic}: gap marker ${from}–${to} does not follow seq ${r.seq}`);
    if (to > r.seq) r.seq = to;
  }
  log(reason === 'conflated' || reason === 'dropped' ? 'info' : 'warn', `${m.topic}: ${n} tick(s) ${GAP_WORDS[reason]} (seq ${from}–${to})`);
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
    r.fresh = false; // baseline after (re)subscribe: the snapshot is old, so no gap or latency sample
  } else if (seq === r.seq) {
    return; // duplicate
  } else if (seq < r.seq) {
    log('warn', `${topic}: seq went back ${r.seq} → ${seq} (feed restarted?)`);
  } else {
    if (seq > r.seq + 1) {
      // Every skipped seq must have been announced by a gap marker (which moved r.seq): this one was not.
      const missed = seq - r.seq - 1;
      r.jumps++;
      r.jumpMissed += missed;
      totalGaps++;
      totalMissed += missed;
      totalJumps++;
      log('warn', `${topic}: seq ${r.seq} → ${seq} without a gap marker (${missed} tick(s) missing unannounced: server bug?)`);
    }
    // Ticks replayed after a reconnect count too: they were published while the link was down (anything older the
    // row already had) and really did arrive that late.
    const lat = tickAgeUs(Number(m.ts));
    if (Number.isFinite(lat)) {
      r.latUs = lat;
      latRing[latHead] = lat;
      latHead = (latHead + 1) % LAT_RING;
      if (latN < LAT_RING) latN++;
    }
  }
  r.seq = seq;
  r.seqEpoch = r.epoch;
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
function statsTick() {
  el.rate.textContent = String(msgCount);
  msgCount = 0;
  if (latN > 0) {
    if (latScratch.length < latN) latScratch = new Float64Array(LAT_RING);
    const a = latScratch.subarray(0, latN);
    for (let i = 0; i < latN; i++) a[i] = latRing[(latHead - 1 - i + LAT_RING) % LAT_RING];
    a.sort();
    el.lat.textContent = `${fmtMs(a[a.length >> 1])} / ${fmtMs(a[a.length - 1])} ms`;
    latN = 0;
  } else {
    el.lat.textContent = '–';
  }
  skewTick();
  const note = skewUs < 0 ? `this browser's clock is about ${fmtMs(-skewUs)} ms behind the server's: removed` : '';
  if (note !== skewNote) {
    skewNote = note;
    if (note) el.lat.title = note;
    else el.lat.removeAttribute('title');
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

window.addEventListener('online', reconnectNow);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    reconnectNow();
    for (const r of rows.values()) if (r.seq >= 0) markDirty(r);
  }
});

// Tiny debugging / test hook (also handy from the devtools console).
window.tickcast = Object.freeze({
  /** send a request object ({op, ...}); returns the id used, or 0 when offline */
  send: (obj) => send({ ...obj }),
  /** send raw text as-is, e.g. to see how the server answers malformed input */
  sendRaw: (text) => { if (ws && ws.readyState === 1) { ws.send(text); return true; } return false; },
  received: (topic) => received.get(topic) || 0,
  state: () => ({
    conn: connState, connects, attempt, topics: [...rows.keys()], totalMsgs, gaps: totalGaps, missed: totalMissed,
    jumps: totalJumps, heartbeatMs,
  }),
  /** one row's stream state: seq, epochs, gaps by reason, heartbeat state */
  row: (topic) => {
    const r = rows.get(topic);
    return r && {
      seq: r.seq, seqEpoch: r.seqEpoch, epoch: r.epoch, fresh: r.fresh, gaps: r.gaps, lost: { ...r.lost },
      jumps: r.jumps, jumpMissed: r.jumpMissed, quietTs: r.quietTs, feedDown: r.feedDown,
    };
  },
  /** drop the connection as a network blip would: the board reconnects (with backoff) and recovers */
  drop: () => {
    if (!ws) return false;
    log('warn', 'connection dropped (tickcast.drop())');
    dropSocket();
    scheduleReconnect();
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
  reconnect: reconnectNow,
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
  connect();
}

init();
