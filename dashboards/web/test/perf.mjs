// Load check of the market board: N symbols on the board while the server streams ticks; reports frame pacing,
// main-thread long tasks and JS heap growth. Not part of the CI test (it needs a server started with many symbols and
// a high rate); run it by hand:
//
//   tickcast --listen 127.0.0.1:8080 --symbols $(seq -f 'S%03g' 0 499 | paste -sd,) --rate 2000
//   node perf.mjs http://127.0.0.1:8080 [SECONDS] [OUTDIR]
//
// It first measures a bare WebSocket receiving the same stream (the browser's own per-message cost), then the board.
// Exits non-zero when the page falls clearly short: median frame > 20 ms, p95 frame > 50 ms, or heap growth > 30 MB
// between the first and the last third of the run. Frame times are only meaningful on an otherwise idle machine;
// compare mainThreadBusy.ThreadTime (CPU) with the baseline's mainThreadCpu otherwise.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [base, secondsArg = '30', outDir = 'test-output'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node perf.mjs http://127.0.0.1:PORT [SECONDS] [OUTDIR]');
  process.exit(2);
}
const seconds = Math.max(10, Number(secondsArg));
const log = (...a) => console.error('[perf]', ...a);
const watchdog = setTimeout(() => { log('FAIL: watchdog'); process.exit(1); }, (seconds + 90) * 1000);
watchdog.unref();

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickcast-perf-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', '--no-first-run', '--enable-precise-memory-info'],
  timeout: 30_000,
});
let code = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const res = await fetch(base + '/topics');
  const all = (await res.json()).topics.map((t) => t.topic);

  // Baseline: what the browser itself spends receiving the same stream on a bare WebSocket (no board), so the
  // board's own cost can be told apart from the per-message cost of the browser and from other load on the machine.
  const baseSecs = Math.max(5, Math.round(seconds / 3));
  await page.goto(base + '/healthz', { timeout: 15_000 });
  await page.evaluate((ts) => {
    window.__n = 0;
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
    ws.onmessage = (e) => { JSON.parse(e.data); window.__n++; };
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topics: ts, id: 1 }));
    window.__ws = ws;
  }, all);
  await new Promise((r) => setTimeout(r, 2000));
  const b0 = await metrics();
  const bn0 = await page.evaluate(() => window.__n);
  await new Promise((r) => setTimeout(r, baseSecs * 1000));
  const b1 = await metrics();
  const bn1 = await page.evaluate(() => window.__n);
  const baseline = {
    msgsPerSec: Math.round((bn1 - bn0) / baseSecs),
    mainThreadCpu: +(((b1.ThreadTime - b0.ThreadTime) / baseSecs) * 100).toFixed(1) + '%',
  };
  log('bare WebSocket baseline:', JSON.stringify(baseline));
  await page.evaluate(() => window.__ws.close());

  await page.goto(base + '/', { timeout: 15_000 });
  errors.length = 0;
  await page.waitForSelector('html[data-conn="open"]', { timeout: 15_000 });
  log(`server has ${all.length} topics; putting all of them on the board`);
  await page.evaluate((ts) => window.tickcast.add(ts.join(',')), all);
  await page.waitForFunction((n) => document.querySelectorAll('#rows [data-topic]').length >= n, all.length, { timeout: 15_000 });
  await new Promise((r) => setTimeout(r, 2000));

  const m0 = await metrics();
  const stats = await page.evaluate(async (secs) => {
    const frames = [];
    const longTasks = [];
    const heap = [];
    const lat = []; // the board's own "latency p50 / max" readout, once a second
    new PerformanceObserver((l) => { for (const e of l.getEntries()) longTasks.push(e.duration); })
      .observe({ type: 'longtask', buffered: false });
    let last = performance.now();
    let running = true;
    const loop = (t) => { frames.push(t - last); last = t; if (running) requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
    const t0 = performance.now();
    const msgs0 = window.tickcast.state().totalMsgs;
    while (performance.now() - t0 < secs * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      if (performance.memory) heap.push(performance.memory.usedJSHeapSize);
      lat.push(document.getElementById('st-lat').textContent.replace(/ ms$/, '').replace(/\s+/g, ''));
    }
    running = false;
    const msgs = window.tickcast.state().totalMsgs - msgs0;
    return { frames, longTasks, heap, lat, msgsPerSec: msgs / secs, dom: document.getElementsByTagName('*').length };
  }, seconds);

  const m1 = await metrics();
  const busy = {};
  // *Duration are wall-clock times of main-thread work; ThreadTime is the main thread's CPU time and
  // ProcessTime the renderer process's (all threads): less sensitive to other load on the machine.
  for (const k of ['ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration', 'TaskDuration', 'ThreadTime', 'ProcessTime']) {
    if (k in m1) busy[k.replace('Duration', '')] = +(((m1[k] - m0[k]) / seconds) * 100).toFixed(1) + '%';
  }
  busy.layouts = Math.round((m1.LayoutCount - m0.LayoutCount) / seconds) + '/s';
  const f = stats.frames.slice(5).sort((a, b) => a - b);
  const q = (p) => f[Math.min(f.length - 1, Math.floor(p * f.length))];
  const third = Math.max(1, Math.floor(stats.heap.length / 3));
  const avg = (a) => a.reduce((s, x) => s + x, 0) / a.length;
  const heapEarly = avg(stats.heap.slice(0, third));
  const heapLate = avg(stats.heap.slice(-third));
  const growthMB = (heapLate - heapEarly) / 1e6;
  const report = {
    baseline,
    msgsPerSec: Math.round(stats.msgsPerSec),
    frames: f.length,
    frameMs: { p50: +q(0.5).toFixed(1), p95: +q(0.95).toFixed(1), p99: +q(0.99).toFixed(1), max: +f[f.length - 1].toFixed(1) },
    longTasks: { count: stats.longTasks.length, maxMs: Math.round(Math.max(0, ...stats.longTasks)) },
    latencyP50MaxMs: stats.lat.join(' '),
    mainThreadBusy: busy,
    heapMB: stats.heap.map((h) => +(h / 1e6).toFixed(1)).join(' '),
    heapGrowthMB: +growthMB.toFixed(1),
    domNodes: stats.dom,
    consoleErrors: errors,
  };
  log(JSON.stringify(report, null, 1));
  fs.mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, 'perf.png') });
  if (report.frameMs.p50 > 20 || report.frameMs.p95 > 50 || growthMB > 30 || errors.length) {
    log('FAIL: the board is not smooth or not bounded under this load');
    code = 1;
  } else {
    log('PASS');
  }
} catch (e) {
  log('FAIL:', e && e.stack || e);
  code = 1;
} finally {
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
