// Real-browser test of the board's symbol detail view (book ladder, trade tape, candles; detail.js): headless Debian
// chromium driven by playwright-core, against the real server and its synthetic feed (no mock of anything).
//
//   node detail.test.mjs http://127.0.0.1:PORT OUTDIR
//
// Normally run by crates/tickcast/tests/browser.rs (symbol_detail_view_in_headless_chromium), which owns the server.
// The script needs nothing from the driver (no stdin commands): stdout stays empty, all logging goes to stderr.
//
// What it checks: selecting a symbol opens the view; the page's own copy of the book verifies at least
// MIN_CHECKSUMS server checksums with no mismatch, no unannounced seq jump and no malformed message, and the ladder
// shows it ordered (asks above the spread, bids below, best next to it); the tape shows trades newest first; the chart
// shows candles (at most one live, the newest); a corrupted copy is caught by the next checksum, shown, and repaired
// by a fresh snapshot; a dropped connection resyncs the book; switching symbols and closing the view unsubscribe the
// old topics; the board keeps working; no console error. Screenshots of each view go to OUTDIR.
//
// Every wait is bounded, and a watchdog ends the whole run after WATCHDOG_MS.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WATCHDOG_MS = 150_000;
const STEP_MS = 20_000;
const MIN_CHECKSUMS = Number(process.env.DETAIL_TEST_MIN_CHECKSUMS || 30);
const MIN_TRADES = 5;
const MIN_CANDLES = 3;

const [base, outDirArg] = process.argv.slice(2);
if (!base) {
  console.error('usage: node detail.test.mjs http://127.0.0.1:PORT [OUTDIR]');
  process.exit(2);
}
const outDir = path.resolve(outDirArg || 'test-output');
fs.mkdirSync(outDir, { recursive: true });

const log = (...a) => console.error('[detail.test]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const watchdog = setTimeout(() => {
  log(`FAIL: watchdog: the whole run took longer than ${WATCHDOG_MS} ms`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

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
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickcast-detail-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 900 },
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

const problems = [];
page.on('console', (m) => {
  if (m.type() === 'error') problems.push({ kind: 'console', text: m.text() });
});
page.on('pageerror', (e) => problems.push({ kind: 'pageerror', text: String(e && e.stack || e) }));
page.on('response', (r) => {
  if (r.status() >= 400) problems.push({ kind: 'http', text: `${r.status()} ${r.url()}` });
});

// Every request the page sends (to check what the view subscribes and unsubscribes), and the server's messages
// per type and topic (to check the view shows what the server sent).
const sent = [];
const recvByTopic = new Map();
page.on('websocket', (ws) => {
  ws.on('framesent', (f) => {
    if (typeof f.payload !== 'string') return;
    try { sent.push(JSON.parse(f.payload)); } catch { /* not ours to judge */ }
  });
  ws.on('framereceived', (f) => {
    if (typeof f.payload !== 'string' || !/"type":"(book|trade|bar)"/.test(f.payload)) return;
    const m = /"topic":"([^"]+)"/.exec(f.payload);
    if (m) recvByTopic.set(m[1], (recvByTopic.get(m[1]) || 0) + 1);
  });
});

async function shot(name, target = page, opts = {}) {
  const file = path.join(outDir, name);
  await target.screenshot({ path: file, ...opts });
  log('screenshot', file);
}

const detail = () => page.evaluate(() => window.tickcast.detail());

/** One sample of the server's /metrics, e.g. 'tickcast_gap_markers_total{reason="resync"}' (0 when absent). */
async function metric(sample) {
  const text = await (await fetch(base + '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}
const requestsFor = (op, topic) => sent.filter((r) => r.op === op && Array.isArray(r.topics) && r.topics.includes(topic));

/** Waits until the detail view of `sym` has verified `n` more checksums than `from` with the book live. */
async function waitVerified(sym, n, from = 0, timeoutMs = STEP_MS) {
  await page.waitForFunction(([s, want]) => {
    const d = window.tickcast.detail();
    return d && d.sym === s && d.book.state === 'live' && d.book.verified >= want;
  }, [sym, from + n], { timeout: timeoutMs, polling: 100 });
  return detail();
}

/** The ladder as shown: asks top to bottom, bids top to bottom, [price, size] strings of the non-empty rows. */
const ladderShown = () => page.evaluate(() => {
  const rows = (sel) => [...document.querySelectorAll(sel)].filter((r) => !r.classList.contains('empty'))
    .map((r) => [r.querySelector('.px').textContent, r.querySelector('.sz').textContent]);
  return { asks: rows('#ladder-asks .lvl'), bids: rows('#ladder-bids .lvl'), spread: document.getElementById('ladder-spread').textContent };
});

async function clickRow(sym) {
  await page.click(`#rows [data-topic="ticker.${sym}"] button[data-act="detail"]`);
  await page.waitForSelector(`#detail[data-sym="${sym}"]:not([hidden])`);
}

let exitCode = 0;
try {
  await step('the board loads and connects', async () => {
    const res = await page.goto(base + '/', { waitUntil: 'load', timeout: STEP_MS });
    assert(res && res.ok(), `GET / answered ${res && res.status()}`);
    await page.waitForSelector('html[data-conn="open"]');
    await page.waitForFunction(() => ['ticker.AAPL', 'ticker.MSFT'].every((t) =>
      Number(document.querySelector(`#rows [data-topic="${t}"]`)?.dataset.seq) >= 0));
    assert(await page.isHidden('#detail'), 'no detail view before a symbol is selected');
  });

  await step('selecting AAPL opens its detail view and subscribes book, trade and 1 s bar topics, unthrottled', async () => {
    await clickRow('AAPL');
    assert(await page.evaluate(() => document.querySelector('#rows [data-topic="ticker.AAPL"]').classList.contains('sel')),
      'the selected row is marked');
    await page.waitForFunction(() => window.tickcast.detail()?.book.snapshots >= 1);
    // The book through the SDK's book() (its own subscribe), trades and bars in one more.
    const subs = sent.filter((r) => r.op === 'subscribe' && r.topics.some((t) => t.endsWith('.AAPL') && !t.startsWith('ticker.')));
    const book = subs.filter((r) => r.topics.includes('book.AAPL'));
    assert(book.length === 1 && book[0].topics.length === 1, `one subscribe names book.AAPL: ${JSON.stringify(subs)}`);
    const market = subs.filter((r) => r.topics.includes('trade.AAPL') && r.topics.includes('bar.1s.AAPL'));
    assert(market.length === 1, `one subscribe names trade.AAPL and bar.1s.AAPL: ${JSON.stringify(subs)}`);
    // a throttle would skip book deltas without gap markers: the book could not be maintained
    for (const req of [book[0], market[0]]) {
      assert(!('throttle_ms' in req) && !req.topics.some((t) => t.includes('@')), `not throttled: ${JSON.stringify(req)}`);
    }
  });

  await step(`the page verifies ${MIN_CHECKSUMS} book checksums with no mismatch and the ladder shows the book`, async () => {
    const d = await waitVerified('AAPL', MIN_CHECKSUMS);
    log('book:', JSON.stringify(d.book), 'resyncs', d.resyncs, 'book msgs received', recvByTopic.get('book.AAPL'));
    assert(d.book.mismatches === 0 && d.book.jumps === 0 && d.book.malformed === 0, `clean: ${JSON.stringify(d.book)}`);
    assert(d.resyncs === 0, 'no resubscribe was needed');
    assert(d.book.bids > 0 && d.book.asks > 0, `levels on both sides: ${JSON.stringify(d.book)}`);
    assert(d.book.bids <= 10 && d.book.asks <= 10, 'the ladder shows at most 10 a side');
    assert(await page.isHidden('#d-mismatch'), 'no mismatch badge');
    // (drawn in the next frame: the state may be a few messages ahead of the badge)
    await page.waitForFunction((min) => Number(/✓ (\d+) checksum/.exec(document.getElementById('d-verified').textContent)?.[1]) >= min, MIN_CHECKSUMS);
    const badge = (await page.textContent('#d-verified')).trim();
    const n = Number(/✓ (\d+) checksum/.exec(badge)?.[1]);
    assert(n >= MIN_CHECKSUMS, `the verified count is shown: ${badge}`);
    const l = await ladderShown();
    log('ladder:', JSON.stringify(l));
    assert(l.asks.length > 0 && l.bids.length > 0, 'ladder rows show levels');
    // Order as drawn: asks descending towards the spread (best ask just above it), bids descending from it.
    // (parseFloat is fine to check the drawing order of distinct levels.)
    const ap = l.asks.map((r) => parseFloat(r[0]));
    const bp = l.bids.map((r) => parseFloat(r[0]));
    assert(ap.every((p, i) => i === 0 || p < ap[i - 1]), `asks drawn high to low: ${ap}`);
    assert(bp.every((p, i) => i === 0 || p < bp[i - 1]), `bids drawn high to low: ${bp}`);
    assert(bp[0] < ap[ap.length - 1], `best bid ${bp[0]} below best ask ${ap[ap.length - 1]}`);
    assert(/^spread \d+(\.\d+)? · [\d.]+ bps$/.test(l.spread), `spread shown: ${l.spread}`);
    assert(l.asks.concat(l.bids).every(([p, s]) => /^\d+(\.\d+)?$/.test(p) && /^\d+(\.\d+)?$/.test(s) && parseFloat(s) > 0),
      'levels are decimal strings as sent, sizes positive');
    // depth bars: some bar is drawn, none wider than the row
    const widths = await page.$$eval('#ladder .lvl .bar', (bs) => bs.map((b) => b.getBoundingClientRect().width));
    assert(widths.some((w) => w > 5), `depth bars drawn: ${widths}`);
  });

  await step('trades and bars are backfilled from the server\'s history (a `since` subscribe once their seq is known)', async () => {
    await page.waitForFunction(() => { const b = window.tickcast.detail().backfill; return b.trade === 'done' && b.bar === 'done'; });
    for (const t of ['trade.AAPL', 'bar.1s.AAPL']) {
      const req = sent.find((r) => r.op === 'subscribe' && r.since && r.since[t]);
      assert(req && req.topics.length === 1 && req.since[t].seq >= 0 && req.since[t].epoch, `backfill of ${t}: ${JSON.stringify(req)}`);
    }
    const d = await detail();
    log('after backfill:', JSON.stringify({ tape: d.tape, candles: d.candles }));
  });

  await step(`the tape shows at least ${MIN_TRADES} trades, newest first, coloured by side`, async () => {
    await page.waitForFunction((n) => document.querySelectorAll('#tape li.buy, #tape li.sell').length >= n, MIN_TRADES);
    // (one evaluate: the tape drops its oldest items as trades come, and a detached item has no computed colour)
    const items = await page.evaluate(() => [...document.querySelectorAll('#tape li')].map((li) => ({
      cls: li.className, time: li.querySelector('time')?.textContent, px: li.querySelector('.px')?.textContent,
      sz: li.querySelector('.sz')?.textContent, side: li.querySelector('.side')?.textContent,
      seq: Number(/seq (\d+)/.exec(li.title || '')?.[1]), color: li.querySelector('.px') && getComputedStyle(li.querySelector('.px')).color,
    })));
    log('tape (top 5):', JSON.stringify(items.slice(0, 5)));
    const trades = items.filter((i) => i.cls === 'buy' || i.cls === 'sell');
    assert(trades.every((t) => /^\d\d:\d\d:\d\d\.\d{3}$/.test(t.time) && /^\d+(\.\d+)?$/.test(t.px) && /^\d+(\.\d+)?$/.test(t.sz)
      && t.side === t.cls), 'each trade shows time, price, size and side');
    assert(trades.every((t, i) => i === 0 || t.seq < trades[i - 1].seq), `newest first: ${trades.map((t) => t.seq)}`);
    const buy = trades.find((t) => t.cls === 'buy');
    const sell = trades.find((t) => t.cls === 'sell');
    if (buy && sell) assert(buy.color !== sell.color, `buys and sells coloured apart (${buy.color} vs ${sell.color})`);
    const d = await detail();
    assert(d.tape.jumps === 0, `no unannounced trade seq jump: ${JSON.stringify(d.tape)}`);
    assert(d.tape.shown <= 60, 'the tape is bounded');
  });

  await step(`the chart shows at least ${MIN_CANDLES} candles; the live one is the newest and updates in place`, async () => {
    await page.waitForFunction((n) => document.querySelectorAll('#chart .candle').length >= n, MIN_CANDLES, { timeout: 30_000 });
    // Queried and measured in one evaluate, i.e. one task of the page: the chart is redrawn (its children replaced)
    // up to 4 times a second, and page.$$eval queries in one round trip and runs its function in a second, so a
    // redraw in between left it measuring detached candles, whose boxes all read 0 (about 1 run in 10).
    const c = await page.evaluate(() => [...document.querySelectorAll('#chart .candle')].map((g) => ({
      start: Number(g.dataset.start), live: g.classList.contains('live'),
      body: g.querySelector('.body').getBBox().height, vol: g.querySelector('.vol').getBBox().height })));
    log('candles:', c.length, 'live', c.filter((x) => x.live).length, 'starts', c.slice(-4).map((x) => x.start).join(','));
    assert(c.every((x, i) => i === 0 || x.start > c[i - 1].start), 'one candle per start, oldest first');
    assert(c.every((x, i) => i === 0 || (x.start - c[i - 1].start) % 1_000_000 === 0), '1 s bar starts');
    assert(c.filter((x) => x.live).length <= 1 && c.slice(0, -1).every((x) => !x.live), 'only the newest may be live');
    assert(c.every((x) => x.body >= 1), `every candle has a body: ${JSON.stringify(c)}`);
    const d = await detail();
    log('candles state:', JSON.stringify(d.candles), 'bar msgs received', recvByTopic.get('bar.1s.AAPL'));
    assert(d.candles.updates > d.candles.kept || d.candles.kept >= MIN_CANDLES, 'bars were applied');
    assert(/^O [\d.]+ H [\d.]+ L [\d.]+ C [\d.]+ · vol/.test(await page.textContent('#d-ohlc')), 'the newest bar\'s OHLC is shown');
  });

  await step('screenshots of the detail view: whole page, ladder, tape, chart', async () => {
    await sleep(1500); // a few more candles and trades for the pictures
    await shot('10-detail.png', page, { fullPage: true });
    await shot('11-ladder.png', page.locator('.pane-book'));
    await shot('12-tape.png', page.locator('.pane-tape'));
    await shot('13-chart.png', page.locator('.pane-chart'));
  });

  await step('a corrupted copy of the book is caught by the next checksum, shown, and repaired by a fresh snapshot', async () => {
    const before = await detail();
    const resubs0 = requestsFor('subscribe', 'book.AAPL').length;
    // Corrupt the page's copy (as a bug applying deltas would) until a message's checksum catches it: a delta that
    // happens to rewrite that very level would repair it first.
    const end = Date.now() + STEP_MS;
    while ((await detail()).book.mismatches === before.book.mismatches) {
      assert(Date.now() < end, 'a corrupted book was never caught by a checksum');
      await page.evaluate(() => window.tickcast.detailTamper());
      await sleep(200);
    }
    await page.waitForSelector('#d-mismatch:not([hidden])');
    const badge = await page.textContent('#d-mismatch');
    assert(/checksum mismatch ×1/.test(badge), `the mismatch badge counts it: ${badge}`);
    await shot('14-mismatch.png', page.locator('#detail'));
    // the view resubscribes the book topic for a fresh snapshot, and the book is live and verified again
    await page.waitForFunction((n) => window.tickcast.detail().book.snapshots > n, before.book.snapshots);
    const d = await waitVerified('AAPL', 5, (await detail()).book.verified);
    assert(requestsFor('unsubscribe', 'book.AAPL').length >= 1 && requestsFor('subscribe', 'book.AAPL').length > resubs0,
      'the book topic was resubscribed');
    assert(d.book.mismatches === 1 && d.resyncs === 1, `one mismatch, one resync: ${JSON.stringify(d)}`);
    assert(/Each one made the page drop its copy/.test(await page.getAttribute('#d-mismatch', 'title')), 'the badge explains itself');
  });

  await step('a tab that falls behind: the server resyncs the book (gap marker, then a snapshot) and the page verifies it', async () => {
    const before = await detail();
    const sample = 'tickcast_messages_dropped_total{reason="book_resync"}';
    const resynced0 = await metric(sample);
    // Keep the tab's renderer busy, so it stops reading its socket (the server's send buffer is small, see
    // browser.rs), until the server says it resynced a book for it (a synchronous GET /metrics runs without letting
    // the page read its WebSocket), at most 10 s.
    const n = await page.evaluate(([s, n0]) => {
      const end = Date.now() + 10_000;
      const read = () => {
        const x = new XMLHttpRequest();
        x.open('GET', '/metrics', false);
        x.send();
        const l = x.responseText.split('\n').find((line) => line.startsWith(s + ' '));
        return l ? Number(l.slice(s.length + 1)) : 0;
      };
      let v = n0;
      while (Date.now() < end && (v = read()) <= n0) {
        const t = Date.now() + 50;
        while (Date.now() < t);
      }
      return v - n0;
    }, [sample, resynced0]);
    log('book deltas the server replaced by a resync while the tab was busy:', n);
    assert(n > 0, 'the server resynced a book for the busy tab');
    // the gap marker names the deltas; the snapshot after it makes the book live again, with no resubscribe
    await page.waitForFunction((g) => window.tickcast.detail().book.gaps > g, before.book.gaps);
    const d = await waitVerified('AAPL', 10, (await detail()).book.verified);
    log('after the resync:', JSON.stringify(d.book), 'tape', JSON.stringify(d.tape));
    assert(d.book.mismatches === before.book.mismatches && d.book.jumps === 0 && d.book.malformed === 0,
      `no mismatch, jump or malformed message: ${JSON.stringify(d.book)}`);
    assert(d.book.snapshots > before.book.snapshots, 'a snapshot followed the gap');
    assert(d.resyncs === before.resyncs, `the server's snapshot did it, no resubscribe (${d.resyncs})`);
    assert(d.tape.jumps === 0, `trades lost while behind were announced: ${JSON.stringify(d.tape)}`);
    assert(await page.isVisible('#d-gaps'), 'the gap badge shows');
    await sleep(500);
    await shot('16-resync.png', page.locator('#detail'));
  });

  await step('a dropped connection: the SDK resumes the held book on reconnect and it is verified again', async () => {
    await waitVerified('AAPL', 1, (await detail()).book.verified); // held and verified when the link drops
    const before = await detail();
    const sent0 = sent.length;
    const connects = await page.evaluate(() => { const c = window.tickcast.state().connects; window.tickcast.drop(); return c; });
    await page.waitForFunction((c) => window.tickcast.state().connects > c && document.documentElement.dataset.conn === 'open', connects);
    // A verified book resumes with `since` (the missed deltas are replayed), or takes a snapshot if the history
    // is too short: either way every message after is verified.
    // (The SDK resubscribes topic groups one request after another: the book's may come after the rows'.)
    const resumed = () => sent.slice(sent0).find((r) => r.op === 'subscribe' && r.topics.includes('book.AAPL'));
    for (const end = Date.now() + STEP_MS; !resumed() && Date.now() < end;) await sleep(50);
    const resume = resumed();
    assert(resume, 'the book topic was resubscribed');
    log('book resubscribe after the drop:', JSON.stringify(resume));
    assert(resume.since && resume.since['book.AAPL'] && resume.since['book.AAPL'].seq >= before.book.seq,
      `it resumes from the book's seq: ${JSON.stringify(resume)} (book at ${before.book.seq})`);
    const d = await waitVerified('AAPL', 10, before.book.verified);
    assert(d.book.mismatches === before.book.mismatches && d.book.jumps === 0, `no new mismatch: ${JSON.stringify(d.book)}`);
  });

  await step('switching to MSFT unsubscribes AAPL\'s topics; MSFT\'s book verifies', async () => {
    await clickRow('MSFT');
    const un = sent.filter((r) => r.op === 'unsubscribe' && ['book.AAPL', 'trade.AAPL', 'bar.1s.AAPL'].every((t) => r.topics.includes(t)));
    assert(un.length === 1, `one unsubscribe of AAPL's three topics: ${JSON.stringify(un)}`);
    const d = await waitVerified('MSFT', MIN_CHECKSUMS);
    assert(d.book.mismatches === 0 && d.book.jumps === 0, `MSFT clean: ${JSON.stringify(d.book)}`);
    // The view draws in animation frames (at most every 50 ms), so the state can be ahead of the page: wait for the
    // head drawn for MSFT (AAPL's showed 1 mismatch), then its badge must be hidden.
    await page.waitForFunction(() => document.getElementById('detail').dataset.mismatches === '0');
    assert(await page.isHidden('#d-mismatch'), 'a new symbol starts with no mismatch badge');
    assert(await page.evaluate(() => !document.querySelector('#rows [data-topic="ticker.AAPL"]').classList.contains('sel')
      && document.querySelector('#rows [data-topic="ticker.MSFT"]').classList.contains('sel')), 'the selection moved');
    // nothing of AAPL's detail topics arrives once the unsubscribe is acknowledged
    await page.waitForFunction(() => /unsubscribed 3 topic/.test(document.getElementById('log').textContent));
    await sleep(300);
    const n0 = ['book.AAPL', 'trade.AAPL', 'bar.1s.AAPL'].map((t) => recvByTopic.get(t) || 0);
    await sleep(1500);
    const n1 = ['book.AAPL', 'trade.AAPL', 'bar.1s.AAPL'].map((t) => recvByTopic.get(t) || 0);
    assert(n0.join() === n1.join(), `no AAPL detail message after its unsubscribe (${n0} then ${n1})`);
    await page.waitForFunction(() => document.querySelectorAll('#chart .candle').length >= 1, null, { timeout: 10_000 });
  });

  await step('phone-sized viewport: the view stacks without horizontal overflow', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(800);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 0, `no horizontal page overflow on a phone (overflow ${overflow}px)`);
    await shot('15-detail-phone.png', page, { fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('closing the view unsubscribes its topics; the board keeps updating', async () => {
    await page.click('#d-close');
    await page.waitForSelector('#detail', { state: 'hidden' });
    const un = sent.filter((r) => r.op === 'unsubscribe' && ['book.MSFT', 'trade.MSFT', 'bar.1s.MSFT'].every((t) => r.topics.includes(t)));
    assert(un.length === 1, `MSFT's topics unsubscribed: ${JSON.stringify(un)}`);
    assert(await page.evaluate(() => window.tickcast.detail() === null), 'no detail state');
    const seq0 = await page.$eval('#rows [data-topic="ticker.AAPL"]', (r) => Number(r.dataset.seq));
    await page.waitForFunction((s) => Number(document.querySelector('#rows [data-topic="ticker.AAPL"]').dataset.seq) > s, seq0);
    assert(await page.evaluate(() => window.tickcast.state().jumps === 0), 'no seq jump on the board');
  });

  await step('no console error, page error or failed request', async () => {
    assert(problems.length === 0, JSON.stringify(problems, null, 1));
  });
} catch (e) {
  exitCode = 1;
  try { await shot('detail-failure.png', page, { fullPage: true }); } catch { /* ignore */ }
  try { log('event log:\n' + (await page.$eval('#log', (l) => l.innerText))); } catch { /* ignore */ }
  try { log('detail state:', JSON.stringify(await detail())); } catch { /* ignore */ }
  if (problems.length) log('console problems:', JSON.stringify(problems, null, 1));
} finally {
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
log(failed === 0 && exitCode === 0 ? `PASS: all ${passed} checks passed` : `FAIL: ${passed} checks passed, ${failed} failed`);
clearTimeout(watchdog);
process.exit(exitCode || (failed ? 1 : 0));
