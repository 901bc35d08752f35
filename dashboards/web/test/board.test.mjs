// Real-browser test of the tickcast market board: headless Debian chromium driven by playwright-core.
//
//   node board.test.mjs http://127.0.0.1:PORT OUTDIR
//
// Normally run by crates/tickcast/tests/browser.rs, which owns the server. What the page cannot do itself is
// coordinated over stdio, a command line on stdout answered by one line on stdin:
//   RESTART_SERVER           -> SERVER_RESTARTED  (the server must come back on the same address)
//   PUBLISH <topic> <count>  -> PUBLISHED         (ticks through the server's `tcp` feed, one publisher connection)
//   FEED_DOWN                -> FEED_IS_DOWN      (that publisher disconnects: the feed is down)
// stdout carries only those protocol lines; all logging goes to stderr. Set BOARD_TEST_SKIP_RESTART=1 to skip the
// restart step, and BOARD_TEST_SKIP_FEED=1 the steps that need the tcp feed, when running by hand against a server
// you started.
//
// With BOARD_TEST_AUTH_KEY set, the server is expected to require authentication with that API key, and the script
// runs the sign-in scenario instead (the form shown on refusal, a wrong key, the right key, `#token=` links).
//
// Every wait is bounded, and a watchdog ends the whole run after WATCHDOG_MS.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WATCHDOG_MS = 150_000;
const STEP_MS = 15_000;

const [base, outDirArg] = process.argv.slice(2);
const authKey = process.env.BOARD_TEST_AUTH_KEY || '';
if (!base) {
  console.error('usage: node board.test.mjs http://127.0.0.1:PORT [OUTDIR]');
  process.exit(2);
}
const outDir = path.resolve(outDirArg || 'test-output');
fs.mkdirSync(outDir, { recursive: true });

const log = (...a) => console.error('[board.test]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const watchdog = setTimeout(() => {
  log(`FAIL: watchdog: the whole run took longer than ${WATCHDOG_MS} ms`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

// ---------------------------------------------------------------- stdin line protocol with the Rust driver
const stdinLines = [];
const stdinWaiters = [];
let stdinClosed = false;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const w = stdinWaiters.shift();
  if (w) w.resolve(line.trim());
  else stdinLines.push(line.trim());
});
rl.on('close', () => {
  stdinClosed = true;
  for (const w of stdinWaiters.splice(0)) w.reject(new Error('stdin closed'));
});
// The readline interface must not keep the process alive once the test is over.
process.stdin.unref?.();

/** Asks the driver for something (see the header) and checks its answer. */
async function driver(command, answer, timeoutMs = STEP_MS) {
  process.stdout.write(command + '\n');
  const reply = await nextStdinLine(timeoutMs);
  assert(reply === answer, `driver answered ${JSON.stringify(reply)} to ${command} (expected ${answer})`);
}

function nextStdinLine(timeoutMs) {
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  if (stdinClosed) return Promise.reject(new Error('stdin closed'));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no line on stdin within ${timeoutMs} ms`)), timeoutMs);
    stdinWaiters.push({
      resolve: (v) => { clearTimeout(t); resolve(v); },
      reject: (e) => { clearTimeout(t); reject(e); },
    });
  });
}

// ---------------------------------------------------------------- tiny runner
const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`ok   - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, err: e });
    log(`FAIL - ${name} (${Date.now() - t0} ms): ${e && e.stack || e}`);
    throw e;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

// ---------------------------------------------------------------- browser
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickcast-board-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
  ],
  timeout: 30_000,
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] || (await context.newPage());

// Everything the console says at error level, plus uncaught exceptions and failed HTTP responses, in every tab.
const problems = [];
let phase = 'load';
function watch(p, tab) {
  p.on('console', (m) => {
    if (m.type() === 'error') problems.push({ phase, tab, kind: 'console', text: m.text() });
  });
  p.on('pageerror', (e) => problems.push({ phase, tab, kind: 'pageerror', text: String(e && e.stack || e) }));
  p.on('response', (r) => {
    if (r.status() >= 400) problems.push({ phase, tab, kind: 'http', text: `${r.status()} ${r.url()}` });
  });
}
watch(page, 'main');

// The scripts the main page loads (paths), to check it runs the SDK's client and no other.
const scripts = new Set();
page.on('request', (r) => {
  if (r.resourceType() === 'script') scripts.add(new URL(r.url()).pathname);
});

// The subscribe requests the main page sends, as parsed JSON (to check `since` and `heartbeat_ms`).
const subscribes = [];
page.on('websocket', (ws) => ws.on('framesent', (f) => {
  if (typeof f.payload !== 'string' || !f.payload.includes('"subscribe"')) return;
  try { subscribes.push(JSON.parse(f.payload)); } catch { /* not ours to judge here */ }
}));

// Browsers log a console error for a WebSocket that cannot connect, and for a request refused at the TCP level (the
// page's /healthz check after a failed attempt, its /topics poll): expected only while the server is down.
const expectedWhileDown = (p) => p.kind === 'console'
  && (/WebSocket connection to .* failed/i.test(p.text) || /Failed to load resource: net::ERR_CONNECTION_REFUSED/.test(p.text));

// ---------------------------------------------------------------- page helpers
const seqs = () => page.$$eval('#rows [data-topic]', (els) =>
  Object.fromEntries(els.map((e) => [e.dataset.topic, Number(e.dataset.seq)])));

async function waitSeqsAdvance(topics, label, timeoutMs = STEP_MS) {
  // Every listed row must have data, then its seq must grow past the value seen once data was there.
  await page.waitForFunction((ts) => ts.every((t) => {
    const row = document.querySelector(`#rows [data-topic="${t}"]`);
    return row && Number(row.dataset.seq) >= 0;
  }), topics, { timeout: timeoutMs });
  const before = await seqs();
  await page.waitForFunction(([ts, b]) => ts.every((t) => {
    const row = document.querySelector(`#rows [data-topic="${t}"]`);
    return row && Number(row.dataset.seq) > b[t];
  }), [topics, before], { timeout: timeoutMs });
  const after = await seqs();
  log(`${label}: ` + topics.map((t) => `${t} ${before[t]}→${after[t]}`).join(', '));
  return after;
}

async function shot(name, opts = {}) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true, ...opts });
  log('screenshot', file);
}

/** The header's "p50 / max ms ±u" and every row's latency cell that has a value are numbers >= 0, and the readout's
 *  tooltip says what it measures and how far to trust it. */
async function assertLatencyNotNegative(p) {
  await p.waitForFunction(() => [...document.querySelectorAll('#rows .c-lat')].some((c) => c.textContent.trim() !== '–'));
  await p.waitForFunction(() => / ms ±/.test(document.getElementById('st-lat').textContent));
  const text = (await p.textContent('#st-lat')).trim();
  const m = /^(-?[\d.]+) \/ (-?[\d.]+) ms ±([\d.]+)$/.exec(text);
  assert(m, `latency readout is "p50 / max ms ±u" (got ${JSON.stringify(text)})`);
  const [p50, max, pm] = [Number(m[1]), Number(m[2]), Number(m[3])];
  assert(p50 >= 0 && max >= p50 && pm >= 0, `latency p50 / max are not negative (got ${text})`);
  const title = await p.getAttribute('#st-lat', 'title');
  assert(/^Tick ingest on the server → receipt in this browser, p50 \/ max over the last second, ± [\d.]+ ms\./.test(title)
    && /measured from pings/.test(title) && /Never negative/.test(title), `the readout says what it measures: ${title}`);
  const column = await p.getAttribute('[role="columnheader"].c-lat', 'title');
  assert(/ingest on the server → receipt in this browser/.test(column) && /offset measured from pings/.test(column),
    `the rows' latency column says what it measures: ${column}`);
  const clock = await p.evaluate(() => window.tickcast.clock());
  assert(clock && clock.rttUs >= 0, `the offset the readout uses comes from a measured round trip (${JSON.stringify(clock)})`);
  const cells = await p.$$eval('#rows .c-lat', (cs) => cs.map((c) => c.textContent.trim()).filter((t) => t !== '–'));
  assert(cells.every((t) => Number(t) >= 0), `row latencies are not negative (got ${cells.join(', ')})`);
  return { p50, max };
}

/** One sample of the server's /metrics, e.g. 'tickcast_recoveries_total{outcome="recovered"}' (0 when absent). */
async function metric(sample) {
  const text = await (await fetch(base + '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** Polls a /metrics sample until `ok(value)` (bounded); returns the last value. */
async function metricUntil(sample, ok, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  let v = await metric(sample);
  while (!ok(v) && Date.now() < end) {
    await sleep(100);
    v = await metric(sample);
  }
  return v;
}

const rowSel = (t) => `#rows [data-topic="${t}"]`;
/** Badges (gap, seq jump) showing on any row of `p`. */
const badgesShown = (p) => p.$$eval('#rows .gap-badge:not([hidden]), #rows .jump-badge:not([hidden])',
  (bs) => bs.map((b) => `${b.closest('[data-topic]').dataset.topic}: ${b.textContent} (${b.title})`));

const isAaplTick = (m) => typeof m === 'string' && m.includes('"type":"tick"') && m.includes('"topic":"ticker.AAPL"');

/** A new tab whose WebSocket goes through a relay here: what the page sends passes; what the server sends goes to
 *  `fromServer(message, toPage)`, which may drop, change or add messages. */
async function relayedTab(name, fromServer) {
  const tab = await context.newPage();
  watch(tab, name);
  await tab.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => fromServer(m, (x) => ws.send(x)));
  });
  return tab;
}

const toastTexts = () => page.$$eval('#toasts .toast', (ts) => ts.map((t) => t.textContent));
const logText = () => page.$eval('#log', (l) => l.textContent);

// ---------------------------------------------------------------- sign-in scenario (BOARD_TEST_AUTH_KEY)
const authShown = () => page.evaluate(() => !document.getElementById('auth-form').hidden);
const authMsg = () => page.textContent('#auth-msg');

async function authScenario(key) {
  let topics = [];
  phase = 'refused';
  await step('without a token the board says it was refused and offers the sign-in form', async () => {
    const res = await page.goto(base + '/', { waitUntil: 'load', timeout: STEP_MS });
    assert(res && res.ok(), `GET / answered ${res && res.status()}`);
    await page.waitForSelector('#auth-form:not([hidden])');
    await page.waitForSelector('html[data-conn="refused"]');
    assert(/API key or token/.test(await authMsg()), 'the form says what it wants: ' + (await authMsg()));
    assert((await page.evaluate(() => window.tickcast.state().connects)) === 0, 'never connected');
    await shot('05-sign-in.png');
  });

  await step('a wrong key is refused and the form says so', async () => {
    await page.fill('#auth-input', 'not-the-key');
    await page.click('#auth-form button[type="submit"]');
    await page.waitForFunction(() => !document.getElementById('auth-form').hidden
      && /with this token/.test(document.getElementById('auth-msg').textContent));
    assert((await page.evaluate(() => window.tickcast.state().connects)) === 0, 'still never connected');
  });

  await step('the right key connects, subscribes and data flows; the form goes away', async () => {
    await page.fill('#auth-input', key);
    await page.click('#auth-form button[type="submit"]');
    phase = 'signed-in';
    await page.waitForSelector('html[data-conn="open"]');
    assert(!(await authShown()), 'the sign-in form is hidden once connected');
    await page.waitForFunction(() => document.querySelectorAll('#rows [data-topic]').length > 0);
    topics = Object.keys(await seqs()).slice(0, 4);
    await waitSeqsAdvance(topics, 'signed in');
    assert(!(await page.evaluate(() => location.href)).includes(key), 'the key is not in the address');
    await shot('06-signed-in.png');
  });

  await step('a reload keeps the key for this tab', async () => {
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('html[data-conn="open"]');
    assert(!(await authShown()), 'no sign-in form after a reload');
    await waitSeqsAdvance(topics, 'after reload');
  });

  await step('a #token= link signs a new tab in and the token leaves the address bar', async () => {
    const tab = await context.newPage();
    try {
      await tab.goto(base + '/#token=' + encodeURIComponent(key), { waitUntil: 'load' });
      await tab.waitForSelector('html[data-conn="open"]');
      const href = await tab.evaluate(() => location.href);
      assert(!href.includes('token'), `the fragment was removed (${href})`);
    } finally {
      await tab.close();
    }
  });

  await step('"Forget" drops the key: the next connection is refused again', async () => {
    // The form is hidden while connected; reach it the way a user would after a refusal.
    await page.evaluate(() => document.getElementById('auth-forget').click());
    phase = 'forgotten';
    await page.waitForSelector('#auth-form:not([hidden])');
    await page.waitForSelector('html[data-conn="refused"]');
    assert(await page.evaluate(() => sessionStorage.getItem('tickcast.token.v1') === null), 'key removed from storage');
  });

  await step('no console error except the refused WebSocket attempts (and /topics before sign-in)', async () => {
    // With auth on, GET /topics needs the credential too: without one (before sign-in, and once forgotten) the
    // page's fetch is refused, and so is the SDK's, which asks /topics why a WebSocket was refused (browsers hide
    // the handshake's status).
    const topicsRefused = (p) => (p.phase === 'refused' || p.phase === 'forgotten')
      && (/^401 .*\/topics$/.test(p.text) || /status of 401 \(Unauthorized\)/.test(p.text));
    const unexpected = problems.filter((p) => !expectedWhileDown(p) && !topicsRefused(p));
    log(`${problems.length - unexpected.length} expected WebSocket connection error(s) while refused`);
    assert(unexpected.length === 0, JSON.stringify(unexpected, null, 1));
  });
}

let exitCode = 0;
try {
  if (authKey) {
    await authScenario(authKey);
  } else {
    let topics = [];

    await step('page loads, connects and shows the default watchlist with no console error', async () => {
      const res = await page.goto(base + '/', { waitUntil: 'load', timeout: STEP_MS });
      assert(res && res.ok(), `GET / answered ${res && res.status()}`);
      const csp = res.headers()['content-security-policy'];
      if (!csp) log('warning: GET / carries no Content-Security-Policy header');
      else log('CSP:', csp);
      await page.waitForSelector('html[data-conn="open"]', { timeout: STEP_MS });
      await page.waitForFunction(() => document.querySelectorAll('#rows [data-topic]').length > 0);
      topics = Object.keys(await seqs());
      log('rows:', topics.join(', '));
      for (const t of ['ticker.AAPL', 'ticker.MSFT', 'ticker.GOOGL', 'ticker.AMZN']) {
        assert(topics.includes(t), `default watchlist includes ${t} (has ${topics.join(',')})`);
      }
      await page.waitForFunction(() => document.querySelectorAll('#topic-list option').length >= 4);
    });

    await step('the page runs the JS SDK (dashboards/web/sdk/) and no client code of its own', async () => {
      const loaded = [...scripts].sort();
      log('scripts:', loaded.join(' '));
      for (const s of ['/app.js', '/sdk/index.js', '/sdk/book.js', '/sdk/clock.js']) assert(scripts.has(s), `${s} loaded: ${loaded}`);
      // The page's own modules are views and models (no socket, no book, no checksum); everything else is the SDK's.
      const own = new Set(['/app.js', '/detail.js', '/tape.js', '/candles.js', '/chart.js', '/ladder.js', '/latency.js']);
      const other = loaded.filter((s) => !own.has(s) && !s.startsWith('/sdk/'));
      assert(other.length === 0, `no script outside the page's views and the SDK: ${other}`);
      const sources = await Promise.all([...own].map(async (s) => (await fetch(base + s)).text()));
      assert(sources.every((src) => !/new WebSocket\(/.test(src)), 'only the SDK opens a WebSocket');
    });

    await step('rows show data and their seq increases', async () => {
      await waitSeqsAdvance(topics, 'initial');
      // bid/ask/last are rendered as numbers, and the header stats come alive (updated once a second)
      const last = (await page.textContent('#rows [data-topic="ticker.AAPL"] .c-last')).trim();
      assert(/^\d+\.\d+$/.test(last), `AAPL last is a price (got ${last})`);
      await page.waitForFunction(() => Number(document.getElementById('st-rate').textContent) > 0);
      await page.waitForFunction(() => / ms ±[\d.]+$/.test(document.getElementById('st-lat').textContent));
      const stats = await page.$eval('.stats', (s) => s.textContent.replace(/\s+/g, ' ').trim());
      log('stats:', stats);
      await assertLatencyNotNegative(page);
      assert(problems.length === 0, 'no console error so far: ' + JSON.stringify(problems));
      await sleep(1500); // let the sparklines fill a bit for the screenshot
      await shot('01-live.png');
    });

    await step('a browser clock behind the server\'s still shows non-negative, offset-corrected latency', async () => {
      const tab = await context.newPage();
      try {
        // This tab's clock runs 5 s behind the server's: raw tick ages are about -5 s.
        await tab.addInitScript(() => {
          const origin = performance.timeOrigin - 5000;
          Object.defineProperty(performance, 'timeOrigin', { get: () => origin });
        });
        await tab.goto(base + '/', { waitUntil: 'load', timeout: STEP_MS });
        await tab.waitForSelector('html[data-conn="open"]');
        await tab.waitForFunction(() => / ms ±/.test(document.getElementById('st-lat').textContent)
          && /behind the server/.test(document.getElementById('st-lat').title));
        await sleep(1100); // a second full of samples after the offset is known
        const { p50 } = await assertLatencyNotNegative(tab);
        assert(p50 < 1000, `the 5 s clock offset is removed (p50 ${p50} ms)`);
        const clock = await tab.evaluate(() => window.tickcast.clock());
        assert(Math.abs(clock.offsetUs - 5e6) < 1e5, `the SDK measured the 5 s offset from pings: ${JSON.stringify(clock)}`);
        const title = await tab.getAttribute('#st-lat', 'title');
        assert(/This browser's clock is (49\d\d|50\d\d) ms behind the server's/.test(title), `the tooltip says so: ${title}`);
        log('skewed clock:', await tab.textContent('#st-lat'), '|', await tab.getAttribute('#st-lat', 'title'));
      } finally {
        await tab.close();
      }
    });

    await step('removing a row unsubscribes: the row goes and its updates stop', async () => {
      const victim = 'ticker.MSFT';
      await page.click(`#rows [data-topic="${victim}"] button[data-act="remove"]`);
      await page.waitForSelector(`#rows [data-topic="${victim}"]`, { state: 'detached' });
      await page.waitForFunction(() => /unsubscribed 1 topic/.test(document.getElementById('log').textContent));
      await sleep(300); // ticks already in flight before the server processed the unsubscribe
      const n0 = await page.evaluate((t) => window.tickcast.received(t), victim);
      const others = topics.filter((t) => t !== victim);
      await waitSeqsAdvance(others, 'others keep flowing');
      await sleep(1000);
      const n1 = await page.evaluate((t) => window.tickcast.received(t), victim);
      assert(n1 === n0, `no ${victim} tick after unsubscribe (received ${n0} then ${n1})`);
      const wl = await page.evaluate(() => JSON.parse(localStorage.getItem('tickcast.watchlist.v1')));
      assert(Array.isArray(wl) && !wl.includes(victim), 'watchlist in localStorage no longer has ' + victim);
    });

    await step('subscribing through the symbol input adds a row whose seq increases', async () => {
      await page.fill('#add-input', 'msft');
      await page.press('#add-input', 'Enter');
      await page.waitForSelector('#rows [data-topic="ticker.MSFT"]');
      await waitSeqsAdvance(['ticker.MSFT'], 're-added');
      assert((await page.inputValue('#add-input')) === '', 'input cleared after adding');
    });

    await step('error replies from the server are shown', async () => {
      const id = await page.evaluate(() => window.tickcast.send({ op: 'subscribe', topics: ['bad topic!'] }));
      assert(id > 0, 'request sent');
      await page.waitForFunction((rid) => [...document.querySelectorAll('#toasts .toast')]
        .some((t) => t.textContent.includes('invalid_topic') && t.textContent.includes(`request ${rid}`)), id);
      await page.evaluate(() => window.tickcast.sendRaw('this is not json'));
      await page.waitForFunction(() => [...document.querySelectorAll('#toasts .toast')]
        .some((t) => t.textContent.includes('bad_json')));
      await page.evaluate(() => window.tickcast.sendRaw('{"op":"frobnicate","id":424242}'));
      await page.waitForFunction(() => [...document.querySelectorAll('#toasts .toast')]
        .some((t) => t.textContent.includes('unknown_op')));
      // a symbol the client itself rejects is reported too (and never sent)
      await page.fill('#add-input', 'B@D');
      await page.press('#add-input', 'Enter');
      await page.waitForFunction(() => /not a valid topic/.test(document.getElementById('toasts').textContent));
      log('toasts:', JSON.stringify(await toastTexts()));
      const lt = await logText();
      assert(lt.includes('invalid_topic') && lt.includes('bad_json') && lt.includes('unknown_op'), 'errors are in the event log too');
      // the connection survives error replies
      assert(await page.$('html[data-conn="open"]'), 'still connected after error replies');
      await page.click('#log-box summary');
      await shot('02-errors.png');
      await page.click('#log-box summary');
    });

    await step('every subscribe asks for heartbeats; nothing on the board is a gap yet', async () => {
      // (leaving out the one window.tickcast.send() made above for an invalid topic)
      const board = subscribes.filter((r) => r.op === 'subscribe' && !r.topics.includes('bad topic!'));
      assert(board.length >= 2, 'the page subscribed (and re-added a row)');
      assert(board.every((r) => r.heartbeat_ms >= 100 && !r.since), `they carry heartbeat_ms: ${JSON.stringify(board)}`);
      assert((await badgesShown(page)).length === 0, 'no gap badge: ' + (await badgesShown(page)).join('; '));
    });

    await step('a dropped connection recovers every missed tick: no hole, no duplicate, no gap badge', async () => {
      const rows = await page.evaluate(() => window.tickcast.state().topics);
      const recovered0 = await metric('tickcast_recoveries_total{outcome="recovered"}');
      const sent0 = subscribes.length;
      // Read every row's seq and tick count and drop the link in the same task: nothing arrives in between.
      const before = await page.evaluate((ts) => {
        const o = { st: window.tickcast.state(), rows: {} };
        for (const t of ts) o.rows[t] = { ...window.tickcast.row(t), n: window.tickcast.received(t) };
        window.tickcast.drop();
        return o;
      }, rows);
      phase = 'blip';
      await page.waitForFunction((c) => window.tickcast.state().connects > c
        && document.documentElement.dataset.conn === 'open', before.st.connects, { timeout: 20_000 });
      await page.waitForFunction(() => /reconnect #\d+: recovered/.test(document.getElementById('log').textContent));
      const lt = await logText();
      const line = /reconnect #\d+: recovered [^\n]*?(no tick lost|fresh baseline\))/.exec(lt);
      log('recovery:', line && line[0]);
      assert(line && line[0].includes(`recovered ${rows.length} of ${rows.length} topic(s), no tick lost`),
        `every row recovered (${line && line[0]})`);
      // The resubscribe named each row's last seq and epoch, and still asked for heartbeats.
      const since = Object.assign({}, ...subscribes.slice(sent0).map((r) => r.since || {}));
      for (const t of rows) {
        const want = { seq: before.rows[t].seq, epoch: before.rows[t].seqEpoch };
        assert(JSON.stringify(since[t]) === JSON.stringify(want), `since ${t}: ${JSON.stringify(since[t])} = ${JSON.stringify(want)}`);
      }
      assert(subscribes.slice(sent0).every((r) => r.heartbeat_ms >= 100), 'the resubscribe asks for heartbeats');
      await waitSeqsAdvance(rows, 'after the blip');
      await sleep(500);
      const after = await page.evaluate((ts) => {
        const o = { st: window.tickcast.state(), rows: {} };
        for (const t of ts) o.rows[t] = { ...window.tickcast.row(t), n: window.tickcast.received(t) };
        return o;
      }, rows);
      for (const t of rows) {
        const b = before.rows[t];
        const a = after.rows[t];
        // Ticks received since the drop = how far the seq moved: none missed, none twice.
        assert(a.seq - b.seq === a.n - b.n && a.seq > b.seq + 1,
          `${t}: seq ${b.seq} → ${a.seq} in ${a.n - b.n} tick(s) received`);
        assert(a.gaps === 0 && a.jumps === 0, `${t}: no gap (${JSON.stringify(a)})`);
        log(`${t}: seq ${b.seq} → ${a.seq}, ${a.n - b.n} ticks, epoch ${a.seqEpoch}`);
      }
      assert(after.st.gaps === 0 && after.st.jumps === 0, 'no gap on the board: ' + JSON.stringify(after.st));
      assert((await badgesShown(page)).length === 0, 'no gap badge: ' + (await badgesShown(page)).join('; '));
      const recovered = await metric('tickcast_recoveries_total{outcome="recovered"}') - recovered0;
      assert(recovered >= rows.length, `the server counted the recoveries (${recovered})`);
      phase = 'after-blip';
    });

    if (process.env.BOARD_TEST_SKIP_FEED === '1') {
      log('BOARD_TEST_SKIP_FEED=1: skipping the heartbeat and conflation steps');
    } else {
      const tab = await context.newPage();
      watch(tab, 'markers');
      const quiet = 'ticker.QUIET';
      const burst = 'ticker.BURST';
      try {
        await step('heartbeats: a quiet row says since when, a dead feed marks it feed-down, a tick clears it', async () => {
          await tab.goto(base + '/', { waitUntil: 'load' });
          await tab.waitForSelector('html[data-conn="open"]');
          await driver(`PUBLISH ${quiet} 1`, 'PUBLISHED');
          await tab.evaluate((t) => window.tickcast.add(t), quiet);
          await tab.waitForFunction((t) => window.tickcast.row(t).seq === 1, quiet);
          // Nothing more is published: within a heartbeat interval (3 s) the row says it is quiet, feed up.
          await tab.waitForFunction((sel) => /: quiet since \d\d:\d\d:\d\d, feed up$/.test(document.querySelector(sel).title),
            rowSel(quiet), { timeout: 10_000 });
          assert(!(await tab.getAttribute(rowSel('ticker.AAPL'), 'title')), 'a busy row gets no heartbeat state');
          await driver('FEED_DOWN', 'FEED_IS_DOWN');
          await tab.waitForSelector(`${rowSel(quiet)}.down .down-badge:not([hidden])`, { timeout: 10_000 });
          const st = await tab.evaluate((t) => window.tickcast.row(t), quiet);
          const title = await tab.getAttribute(rowSel(quiet), 'title');
          const badge = (await tab.textContent(`${rowSel(quiet)} .down-badge`)).trim();
          log('feed down:', badge, '|', title);
          assert(st.feedDown && badge === 'feed down', `the row is feed-down (${badge}, ${JSON.stringify(st)})`);
          const shown = await tab.evaluate((ts) => new Date(ts / 1000).toLocaleTimeString([], { hour12: false }), st.quietTs);
          assert(title === `${quiet}: feed down, no data since ${shown}`, `the title says since when (${title})`);
          assert(Math.abs(Date.now() - st.quietTs / 1000) < 60_000, 'since the time of the last tick');
          assert(/feed down, no data since/.test(await tab.$eval('#log', (l) => l.textContent)), 'and the log says so');
          await tab.click('#log-box summary');
          await tab.screenshot({ path: path.join(outDir, '07-feed-down.png'), fullPage: true });
          await tab.click('#log-box summary');
          // A reconnect meanwhile recovers the row (nothing was missed) and keeps it marked.
          const c = await tab.evaluate(() => { const n = window.tickcast.state().connects; window.tickcast.drop(); return n; });
          await tab.waitForFunction((n) => /recovered 5 of 5 topic\(s\), no tick lost/.test(document.getElementById('log').textContent)
            && window.tickcast.state().connects > n, c);
          assert(await tab.$eval(rowSel(quiet), (e) => e.classList.contains('down')), 'still feed-down after a reconnect');
          await driver(`PUBLISH ${quiet} 1`, 'PUBLISHED');
          await tab.waitForFunction(([sel, t]) => window.tickcast.row(t).seq === 2
            && !document.querySelector(sel).classList.contains('down')
            && document.querySelector(sel + ' .down-badge').hidden
            && !document.querySelector(sel).hasAttribute('title'), [rowSel(quiet), quiet]);
        });

        await step('a tab that falls behind is conflated: the gap badge says how many ticks, no unannounced jump', async () => {
          const markers0 = await metric('tickcast_gap_markers_total{reason="conflated"}');
          const conflated0 = await metric('tickcast_messages_conflated_total');
          await tab.evaluate((t) => window.tickcast.add(t), burst);
          await tab.waitForFunction((t) => window.tickcast.row(t).epoch !== '', burst); // acked (pending topic)
          // Keep the tab's renderer busy, so it stops reading its socket, while a burst far bigger than the socket
          // buffers and the server's queue (1024 ticks / 256 KiB) goes to it: until the server says it conflated
          // (a synchronous GET /metrics runs without letting the page read its WebSocket), at most 10 s.
          const busy = tab.evaluate(([sample, n0]) => {
            const end = Date.now() + 10_000;
            const read = () => {
              const x = new XMLHttpRequest();
              x.open('GET', '/metrics', false);
              x.send();
              const l = x.responseText.split('\n').find((line) => line.startsWith(sample + ' '));
              return l ? Number(l.slice(sample.length + 1)) : 0;
            };
            let n = n0;
            while (Date.now() < end && (n = read()) <= n0) {
              const t = Date.now() + 50;
              while (Date.now() < t);
            }
            return n - n0;
          }, ['tickcast_messages_conflated_total', conflated0]);
          await sleep(300); // the loop runs
          await driver(`PUBLISH ${burst} 30000`, 'PUBLISHED');
          log('conflations while the tab was busy:', await busy);
          await tab.waitForSelector(`${rowSel(burst)} .gap-badge:not([hidden])`);
          await tab.waitForFunction((t) => window.tickcast.row(t).seq === 30000, burst); // the latest always comes
          const st = await tab.evaluate((t) => window.tickcast.row(t), burst);
          const title = await tab.getAttribute(`${rowSel(burst)} .gap-badge`, 'title');
          log('conflated:', await tab.textContent(`${rowSel(burst)} .gap-badge`), '|', title);
          assert(st.lost.conflated > 0 && new RegExp(`ticks skipped: ${st.lost.conflated} conflated`).test(title),
            `the badge tooltip says how many ticks were conflated (${title})`);
          const all = await tab.evaluate(() => window.tickcast.state());
          assert(all.jumps === 0, 'every skipped seq was announced: ' + JSON.stringify(all));
          await tab.waitForFunction(() => document.getElementById('st-gaps').classList.contains('warn')); // once a second
          assert(!(await tab.$eval('#st-gaps', (e) => e.classList.contains('bad'))), 'the header counts them, not as a server bug');
          const markers = await metricUntil('tickcast_gap_markers_total{reason="conflated"}', (v) => v - markers0 >= st.gaps)
            - markers0;
          assert(markers >= st.gaps, `the server counted its markers (${markers})`);
          await tab.screenshot({ path: path.join(outDir, '08-conflated.png'), fullPage: true });
          await tab.evaluate(([a, b]) => { window.tickcast.remove(a); window.tickcast.remove(b); }, [quiet, burst]);
        });
      } finally {
        await tab.close();
      }
    }

    await step('a seq jump without a gap marker is shown apart (as the server bug it would be)', async () => {
      // This tab's WebSocket goes through a relay here that swallows one AAPL tick: a skip nobody announced.
      let aapl = 0;
      let swallowed = -1;
      const tab = await relayedTab('jump', (m, toPage) => {
        if (swallowed < 0 && isAaplTick(m) && ++aapl === 20) {
          swallowed = JSON.parse(m).seq;
          return;
        }
        toPage(m);
      });
      try {
        await tab.goto(base + '/', { waitUntil: 'load' });
        await tab.waitForSelector(`${rowSel('ticker.AAPL')} .jump-badge:not([hidden])`);
        const badge = await tab.textContent(`${rowSel('ticker.AAPL')} .jump-badge`);
        const title = await tab.getAttribute(`${rowSel('ticker.AAPL')} .jump-badge`, 'title');
        log('unannounced:', badge, '|', title);
        assert(badge === 'seq jump ×1' && /^1 seq jump\(s\) without a gap marker, 1 tick\(s\) missing/.test(title),
          `the jump badge counts it (${badge} | ${title})`);
        assert(await tab.$eval(`${rowSel('ticker.AAPL')} .gap-badge`, (b) => b.hidden), 'not as an announced gap');
        const lt = await tab.$eval('#log', (l) => l.textContent);
        assert(lt.includes(`ticker.AAPL: seq ${swallowed - 1} → ${swallowed + 1} without a gap marker`),
          `logged as a warning (swallowed seq ${swallowed})`);
        await tab.waitForFunction(() => document.getElementById('st-gaps').classList.contains('bad'));
      } finally {
        await tab.close();
      }
    });

    await step('a binary frame and an unparsable one are logged and counted, not dropped silently', async () => {
      // This tab's relay slips a binary frame and a text that is not JSON in front of the server's first message.
      let injected = false;
      const tab = await relayedTab('frames', (m, toPage) => {
        if (!injected) {
          injected = true;
          toPage(Buffer.from([1, 2, 3]));
          toPage('garbage from a proxy');
        }
        toPage(m);
      });
      try {
        await tab.goto(base + '/', { waitUntil: 'load' });
        await tab.waitForFunction(() => window.tickcast.state().invalidFrames === 2);
        const lt = await tab.$eval('#log', (l) => l.textContent);
        assert(lt.includes('unexpected binary frame (3 bytes) ignored (#1)'), 'the binary frame is logged');
        assert(lt.includes('unparsable message from server ignored (#2): garbage from a proxy'), 'the text is logged');
        // and the connection goes on
        await tab.waitForFunction((sel) => Number(document.querySelector(sel)?.dataset.seq) > 0, rowSel('ticker.AAPL'));
      } finally {
        await tab.close();
      }
    });

    await step('a `reset` (the seq space restarted upstream) makes the next tick a fresh baseline, not a reorder', async () => {
      // This tab's relay plays a scale-out epoch change for AAPL: after its 20th tick, a `reset` naming a new epoch,
      // then AAPL's ticks renumbered from 1, as the new seq space would number them.
      let aapl = 0;
      let restartAt = -1;
      const tab = await relayedTab('reset', (m, toPage) => {
        if (!isAaplTick(m)) return toPage(m);
        const t = JSON.parse(m);
        if (restartAt < 0 && ++aapl === 20) {
          restartAt = t.seq;
          toPage(JSON.stringify({ type: 'reset', topic: 'ticker.AAPL', epoch: 'resettest' }));
        }
        return toPage(restartAt < 0 ? m : JSON.stringify({ ...t, seq: t.seq - restartAt + 1 }));
      });
      try {
        await tab.goto(base + '/', { waitUntil: 'load' });
        await tab.waitForFunction(() => /ticker\.AAPL: seq space restarted \(epoch resettest\)/.test(document.getElementById('log').textContent));
        // (The old seq space had reached restartAt: the new one's seqs stay below it for a while.)
        await tab.waitForFunction((top) => { const r = window.tickcast.row('ticker.AAPL'); return r.seq >= 2 && r.seq < top; }, restartAt);
        const r = await tab.evaluate(() => window.tickcast.row('ticker.AAPL'));
        log('after the reset:', JSON.stringify(r));
        assert(r.epoch === 'resettest' && r.seqEpoch === 'resettest', `the row follows the new epoch: ${JSON.stringify(r)}`);
        assert(r.gaps === 0 && r.jumps === 0, `no gap, no jump: ${JSON.stringify(r)}`);
        const lt = await tab.$eval('#log', (l) => l.textContent);
        assert(!/ticker\.AAPL: seq went back/.test(lt) && !/ticker\.AAPL: seq \d+ → \d+ without a gap marker/.test(lt),
          'not logged as a reorder or a jump');
        assert((await badgesShown(tab)).length === 0, 'no badge: ' + (await badgesShown(tab)).join('; '));
        // The row shows the new seq space's numbers.
        await tab.waitForFunction(([sel, top]) => { const q = Number(document.querySelector(sel).dataset.seq); return q >= 1 && q < top; },
          [rowSel('ticker.AAPL'), restartAt]);
      } finally {
        await tab.close();
      }
    });

    await step('no console error before the restart', async () => {
      assert(problems.length === 0, JSON.stringify(problems));
    });

    if (process.env.BOARD_TEST_SKIP_RESTART === '1') {
      log('BOARD_TEST_SKIP_RESTART=1: skipping the server restart step');
    } else {
      await step('after a server restart the page reconnects, takes the new epoch as a fresh baseline (no bogus gap), data flows', async () => {
        const connects0 = await page.evaluate(() => window.tickcast.state().connects);
        const old = await page.evaluate((ts) => ts.map((t) => window.tickcast.row(t)), topics);
        phase = 'restart';
        process.stdout.write('RESTART_SERVER\n');
        // The page must notice the outage (the server is killed), then come back by itself.
        await page.waitForFunction(() => document.documentElement.dataset.conn !== 'open', null, { timeout: 30_000 });
        // While it is down the status pill counts down to the SDK's next attempt.
        await page.waitForFunction(() => /^offline — retry in \d+ s$/.test(document.getElementById('conn').textContent),
          null, { timeout: 30_000 });
        const reply = await nextStdinLine(90_000);
        assert(reply === 'SERVER_RESTARTED', `driver answered ${JSON.stringify(reply)}`);
        await page.waitForFunction((c) => window.tickcast.state().connects > c
          && document.documentElement.dataset.conn === 'open', connects0, { timeout: 30_000 });
        phase = 'after-restart';
        const st = await page.evaluate(() => window.tickcast.state());
        log('state after reconnect:', JSON.stringify(st));
        const cur = Object.keys(await seqs());
        for (const t of topics) assert(cur.includes(t), `row ${t} kept across the restart`);
        // Each row takes the restarted server's snapshot (a new epoch, seqs from 1) as its baseline and shows it.
        await page.waitForFunction(([ts, o]) => ts.every((t, i) => {
          const r = window.tickcast.row(t);
          return r.seqEpoch !== o[i].seqEpoch && r.seqEpoch === r.epoch
            && Number(document.querySelector(`#rows [data-topic="${t}"]`).dataset.seq) < o[i].seq;
        }), [topics, old], { timeout: 20_000 });
        await waitSeqsAdvance(topics, 'after restart', 20_000);
        // The resubscribe asked to recover; the restarted server has new epochs, so the rows took its snapshots as a
        // fresh baseline: seqs start over, no gap, no "went back".
        await page.waitForFunction(() => /reconnect #\d+: recovered 0 of/.test(document.getElementById('log').textContent));
        const recov = /reconnect #\d+: recovered 0 of [^\n]*?fresh baseline\)/.exec(await logText());
        log('recovery:', recov && recov[0]);
        assert(recov && recov[0].includes(`recovered 0 of ${topics.length} topic(s); not recovered: ${topics.length} epoch_changed`),
          `the new epochs are noticed (${recov && recov[0]})`);
        const after = await page.evaluate((ts) => ts.map((t) => window.tickcast.row(t)), topics);
        assert(after.every((r) => r.gaps === 0 && r.jumps === 0), JSON.stringify(after));
        assert(!/went back/.test(await logText()), 'no "seq went back" warning');
        assert((await badgesShown(page)).length === 0, 'no gap badge: ' + (await badgesShown(page)).join('; '));
        const toasts = await toastTexts();
        log('toasts:', JSON.stringify(toasts));
        const lt = await logText();
        assert(/closed 10\d\d/.test(lt), 'the close code is shown in the event log');
        assert(/reconnected/.test(lt), 'the reconnect is shown in the event log');
        await sleep(1200);
        await shot('03-reconnected.png');
      });
    }

    await step('no unexpected console error, page error or failed request', async () => {
      const unexpected = problems.filter((p) => !(p.phase === 'restart' && expectedWhileDown(p)));
      const expected = problems.length - unexpected.length;
      if (expected) log(`${expected} expected WebSocket connection error(s) while the server was down`);
      assert(unexpected.length === 0, JSON.stringify(unexpected, null, 1));
    });

    await step('phone-sized viewport renders the board', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await sleep(800);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `no horizontal page overflow on a phone (overflow ${overflow}px)`);
      await shot('04-phone.png', { fullPage: false });
    });
  }
} catch (e) {
  exitCode = 1;
  try { await shot('failure.png'); } catch { /* ignore */ }
  try { log('event log:\n' + (await logText())); } catch { /* ignore */ }
  if (problems.length) log('console problems:', JSON.stringify(problems, null, 1));
} finally {
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  rl.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
log(failed === 0 && exitCode === 0 ? `PASS: all ${passed} checks passed` : `FAIL: ${passed} checks passed, ${failed} failed`);
clearTimeout(watchdog);
process.exit(exitCode || (failed ? 1 : 0));
