// Real-browser test of the SSE transport: Chromium's own EventSource against tickcast's /sse, through a TCP proxy
// the Rust driver owns, so the connection can be cut mid-stream.
//
//   node sse.test.mjs http://127.0.0.1:PROXY_PORT
//
// Run by crates/tickcast/tests/browser.rs. Commands on stdout, answered by one line on stdin:
//   CUT             -> CUT_DONE          (the proxy resets every connection it carries; it keeps listening)
//   RESTART_SERVER  -> SERVER_RESTARTED  (the server behind the proxy restarts: a new epoch)
// The server's synthetic feed publishes ticker.AAPL and ticker.MSFT all along. The page checks, per topic, that every
// seq arrives exactly once across the cut (EventSource reconnects by itself and sends Last-Event-ID), and that after
// the restart the ack says epoch_changed and a snapshot follows. Logging goes to stderr; every wait is bounded.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WATCHDOG_MS = 90_000;
const STEP_MS = 15_000;

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node sse.test.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const log = (...a) => console.error('[sse.test]', ...a);
const watchdog = setTimeout(() => {
  log(`FAIL: watchdog: the run took longer than ${WATCHDOG_MS} ms`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function driver(command, answer) {
  process.stdout.write(command + '\n');
  const reply = await Promise.race([
    stdin.next(),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer to ${command}`)), STEP_MS)),
  ]);
  if (reply.done || reply.value.trim() !== answer) {
    throw new Error(`driver answered ${JSON.stringify(reply.value)} to ${command} (expected ${answer})`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickcast-sse-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  timeout: 30_000,
});
const page = context.pages()[0] || (await context.newPage());
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));

let failed = false;
try {
  // Any page of the server gives the EventSource its origin.
  await page.goto(`${base}/healthz`);
  await page.evaluate(() => {
    const s = {
      opens: 0,
      errors: 0,
      acks: [],
      last: {},      // topic -> last seq
      ticks: 0,
      violations: [],
      snapshotsAfterEpochChange: 0,
      ids: [],
    };
    window.sse = s;
    const es = new EventSource('/sse?topics=ticker.AAPL,ticker.MSFT');
    window.es = es;
    es.onopen = () => { s.opens += 1; };
    es.onerror = () => { s.errors += 1; };
    es.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'subscribed') {
        s.acks.push(m);
        for (const [topic, r] of Object.entries(m.recovery || {})) {
          // A new seq space: this topic starts again from its snapshot.
          if (!r.recovered) delete s.last[topic];
        }
        return;
      }
      if (m.type === 'gap') {
        const last = s.last[m.topic];
        if (last !== undefined && m.from !== last + 1) s.violations.push(`gap ${m.from}..${m.to} after ${last}`);
        s.last[m.topic] = m.to;
        return;
      }
      if (m.type !== 'tick') return;
      const last = s.last[m.topic];
      if (last !== undefined && m.seq !== last + 1) {
        s.violations.push(`${m.topic}: seq ${m.seq} after ${last}`);
      }
      if (last === undefined && s.acks.length > 1) s.snapshotsAfterEpochChange += 1;
      s.last[m.topic] = m.seq;
      s.ticks += 1;
      s.ids.push(e.lastEventId);
    };
  });
  const state = () => page.evaluate(() => JSON.parse(JSON.stringify(window.sse)));
  const waitFor = async (what, pred) => {
    const deadline = Date.now() + STEP_MS;
    for (;;) {
      const s = await state();
      if (pred(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s).slice(0, 600)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  let s = await waitFor('the stream', (s) => s.opens === 1 && (s.last['ticker.AAPL'] ?? 0) > 20 && (s.last['ticker.MSFT'] ?? 0) > 20);
  const epoch = s.acks[0].epochs['ticker.AAPL'];
  assert(s.ids.at(-1).startsWith(epoch + '.'), `event ids carry the epoch: ${s.ids.at(-1)}`);
  log(`ok   - EventSource streams (${s.ticks} ticks, last id ${s.ids.at(-1)})`);

  // Cut mid-stream: EventSource reconnects by itself (retry: 1000) with Last-Event-ID.
  const before = s.last['ticker.AAPL'];
  await driver('CUT', 'CUT_DONE');
  s = await waitFor('the reconnect', (s) => s.opens >= 2 && s.acks.length >= 2 && (s.last['ticker.AAPL'] ?? 0) > before + 100);
  const ack = s.acks[1];
  assert(ack.recovery && ack.recovery['ticker.AAPL'].recovered === true, `recovered: ${JSON.stringify(ack)}`);
  assert(ack.recovery['ticker.MSFT'].recovered === true, `recovered: ${JSON.stringify(ack)}`);
  assert(s.errors >= 1, 'the cut was seen as an error');
  assert(s.violations.length === 0, `every seq once across the cut: ${s.violations.join('; ')}`);
  log(`ok   - cut and resumed exactly (${s.ticks} ticks, ${s.errors} error events, no hole, no duplicate)`);

  // A server restart: the epoch changes; the ack says so and a snapshot follows.
  await driver('RESTART_SERVER', 'SERVER_RESTARTED');
  s = await waitFor('the stream after the restart', (s) => s.acks.length >= 3 && s.snapshotsAfterEpochChange >= 2);
  const after = s.acks.at(-1);
  assert(after.recovery['ticker.AAPL'].recovered === false && after.recovery['ticker.AAPL'].reason === 'epoch_changed',
    `epoch_changed: ${JSON.stringify(after)}`);
  assert(after.epochs['ticker.AAPL'] !== epoch, 'a new epoch');
  assert(s.ids.at(-1).startsWith(after.epochs['ticker.AAPL'] + '.'), `ids in the new epoch: ${s.ids.at(-1)}`);
  assert(s.violations.length === 0, `no violation: ${s.violations.join('; ')}`);
  assert(pageErrors.length === 0, `no page error: ${pageErrors.join('; ')}`);
  log('ok   - after a restart: epoch_changed, then the snapshot, in the new epoch');
  log('PASS');
} catch (e) {
  failed = true;
  log(`FAIL: ${e && e.stack || e}`);
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
