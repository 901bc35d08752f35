// Clock offset estimate (pure functions) and the client's ping loop against a real server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient, ClockWindow, bestSample, clockSample, correctedLatency } from "../dist/index.js";
import { Server, findBinary, poll } from "./lib/server.mjs";

const binary = findBinary();

test("a round trip gives offset = server - midpoint, within half the round trip", () => {
  // Local clock 5 s behind the server: sent at 1,000,000, answered by the server at 6,000,400, back at 1,001,000.
  assert.deepEqual(clockSample(1_000_000, 1_001_000, 6_000_400), { offsetUs: 4_999_900, rttUs: 1000, atUs: 1_001_000 });
  // Ahead of it: negative offset.
  assert.equal(clockSample(9_000_000, 9_000_200, 4_000_000).offsetUs, -5_000_100);
  // Unusable: no server time (an older server's pong), a time that is not one, a trip that went backwards.
  assert.equal(clockSample(1, 2, undefined), null);
  assert.equal(clockSample(1, 2, "7"), null);
  assert.equal(clockSample(1, 2, 0), null);
  assert.equal(clockSample(5, 4, 100), null);
});

test("the estimate is the quickest round trip of the last N samples", () => {
  const s = (offsetUs, rttUs) => ({ offsetUs, rttUs, atUs: 0 });
  assert.equal(bestSample([]), null);
  assert.deepEqual(bestSample([s(10, 900), s(20, 300), s(30, 600)]), s(20, 300));
  const w = new ClockWindow(3);
  assert.equal(w.best(), null);
  assert.deepEqual(w.add(s(1, 100)), s(1, 100));
  w.add(s(2, 500));
  w.add(s(3, 400));
  assert.deepEqual(w.best(), s(1, 100));
  // The quick sample falls out of the window: an old lucky trip does not outlive a clock step.
  assert.deepEqual(w.add(s(4, 450)), s(3, 400));
  w.clear();
  assert.equal(w.best(), null);
});

test("corrected latency moves receipt onto the server's clock, never negative, ± half the round trip", () => {
  const clock = { offsetUs: 5_000_000, rttUs: 800, atUs: 0 };
  // Ingested at server time 10,000,000, received at local 5,003,000 = server 10,003,000: 3 ms.
  assert.deepEqual(correctedLatency(10_000_000, 5_003_000, clock), { latencyUs: 3000, uncertaintyUs: 400 });
  // Estimation error can make it negative: clamped.
  assert.equal(correctedLatency(10_000_000, 4_999_000, clock).latencyUs, 0);
  // No ingest time (a replayed or unmeasured message has ts 0): not a figure.
  assert.ok(Number.isNaN(correctedLatency(0, 5_003_000, clock).latencyUs));
  assert.ok(Number.isNaN(correctedLatency(NaN, 5_003_000, clock).latencyUs));
});

test("clockSyncMs: the first ping goes out on connecting, not one interval later", { skip: binary ? false : "tickcast binary not found", timeout: 30000 }, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { clockSyncMs: 60000 });
  try {
    await c.connect();
    const t0 = Date.now();
    await poll(() => c.clockOffset() !== null, "the first clock sample");
    assert.ok(Date.now() - t0 < 5000, `an estimate ${Date.now() - t0} ms after connecting`);
  } finally {
    c.close();
    await s.stop();
  }
});

test("clockSyncMs: pongs carry the server's time and the client keeps an estimate", { skip: binary ? false : "tickcast binary not found", timeout: 30000 }, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { clockSyncMs: 200 });
  const samples = [];
  c.on("clock", (x) => samples.push(x));
  try {
    assert.equal(c.clockOffset(), null);
    await c.connect();
    const pong = await c.ping();
    assert.ok(Number.isSafeInteger(pong.ts) && Math.abs(pong.ts - Date.now() * 1000) < 60e6, `pong ts ${pong.ts}`);
    await poll(() => samples.length >= 3, "three clock samples");
    const best = c.clockOffset();
    // Same machine, same clock: the offset is within the round trip (plus a little for timer granularity).
    assert.ok(best.rttUs >= 0 && best.rttUs < 1e6, JSON.stringify(best));
    assert.ok(Math.abs(best.offsetUs) <= best.rttUs / 2 + 2000, JSON.stringify(best));
    assert.ok(samples.every((x) => x.rttUs >= best.rttUs || x === best), "the estimate is the quickest trip so far");
  } finally {
    c.close();
    await s.stop();
  }
});
