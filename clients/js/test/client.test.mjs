// The JS SDK (dist/) against real tickcast servers on loopback (see server.mjs).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient, TickcastError, backoffDelay, unannouncedGap } from "../dist/index.js";
import { handshakeStatus, isAuthClose, refusal } from "../dist/errors.js";
import { Server, findBinary, poll, jwt, API_KEY } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 30000 };
const seqs = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Records every event of a client. */
function record(c) {
  const ev = { tick: [], gap: [], heartbeat: [], recovery: [], stale: [], state: [] };
  for (const k of Object.keys(ev)) c.on(k, (e) => ev[k].push(e));
  return ev;
}

test("backoff is full jitter and capped", () => {
  assert.equal(backoffDelay(0, 100, 10000, 0.5), 50);
  assert.equal(backoffDelay(50, 100, 10000, 0.5), 5000);
  assert.equal(backoffDelay(4, 100, 10000, 0), 0);
  assert.deepEqual(unannouncedGap(6, 10), [7, 9]);
  assert.equal(unannouncedGap(6, 7), null);
  assert.equal(unannouncedGap(undefined, 7), null);
});

test("refusals: what a status, a close or a ws error means", () => {
  assert.equal(handshakeStatus("Unexpected server response: 401"), 401);
  assert.equal(handshakeStatus("connect ECONNREFUSED 127.0.0.1:1"), undefined);
  assert.ok(isAuthClose(1008, "token expired"));
  assert.ok(!isAuthClose(1008, "slow consumer") && !isAuthClose(1001, "going away"));
  const auth = refusal(401, '{"error":"invalid_api_key","message":"unknown API key"}');
  assert.deepEqual([auth.code, auth.status, auth.message], ["unauthorized", 401, "unauthorized: invalid_api_key: unknown API key"]);
  assert.equal(refusal(403, '{"error":"origin_not_allowed","message":"x"}').code, "unauthorized");
  const query = refusal(400, '{"type":"error","code":"invalid_field","field":"heartbeat_ms","message":"m"}');
  assert.deepEqual([query.code, query.field, query.status], ["invalid_field", "heartbeat_ms", 400]);
  assert.equal(refusal(403, '{"type":"error","code":"forbidden","message":"m"}').code, "forbidden");
  assert.equal(refusal(401, "").code, "unauthorized");
  for (const st of [426, 429, 503, 502]) assert.equal(refusal(st, "too many"), undefined, `${st} is worth retrying`);
});

test("subscribe, receive, unsubscribe", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url);
  try {
    const ev = record(c);
    await c.connect();
    const ack = await c.subscribe(["ticker.JSA"]);
    assert.equal(ack.type, "subscribed");
    await s.publish("ticker.JSA", 20);
    await poll(() => ev.tick.length >= 20, "20 ticks");
    assert.deepEqual(ev.tick.map((t) => t.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    await c.unsubscribe(["ticker.JSA"]);
    await s.publish("ticker.JSA", 5);
    await c.ping(); // after the unsubscribe ack no tick of the topic may arrive
    assert.equal(ev.tick.length, 20);
  } finally { c.close(); await s.stop(); }
});

test("a dropped connection recovers every seq exactly once", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { reconnectMinMs: 50, reconnectMaxMs: 200 });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.JSR"]);
    await s.publish("ticker.JSR", 50);
    await poll(() => ev.tick.length >= 50, "50 ticks");
    c.dropConnection();
    await s.publish("ticker.JSR", 50);
    await poll(() => ev.tick.length >= 100, "100 ticks");
    assert.deepEqual(ev.tick.map((t) => t.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(ev.recovery, [{ topic: "ticker.JSR", recovered: true }]);
    assert.equal(ev.gap.length, 0);
    const closed = ev.state.find((e) => e.state === "disconnected");
    assert.equal(closed.code, 4000);
  } finally { c.close(); await s.stop(); }
});

for (const transport of ["websocket", "sse"]) {
  test(`a server restart over ${transport}: not recovered (epoch_changed), then the new seqs from 1, each once`, opts, async () => {
    const s = await Server.start(binary);
    const c = new TickcastClient(s.url, { transport, reconnectMinMs: 50, reconnectMaxMs: 300 });
    try {
      const ev = record(c);
      await c.connect();
      await c.subscribe(["ticker.JSE"]);
      await s.publish("ticker.JSE", 20);
      await poll(() => ev.tick.length >= 20, "20 ticks");
      await s.restart();
      await poll(() => ev.recovery.length >= 1, "the recovery outcome");
      assert.deepEqual(ev.recovery, [{ topic: "ticker.JSE", recovered: false, reason: "epoch_changed" }]);
      await s.publish("ticker.JSE", 10);
      await poll(() => ev.tick.length >= 30, "10 ticks after the restart");
      assert.deepEqual(ev.tick.map((t) => t.seq), [...seqs(1, 20), ...seqs(1, 10)]);
      assert.equal(ev.gap.length, 0, "a fresh start is not a gap");
      // WebSocket says the server went away (1001); an event stream just ends.
      if (transport === "websocket") assert.ok(ev.state.some((e) => e.state === "disconnected" && e.code === 1001), JSON.stringify(ev.state));
      // A cut after the restart resumes in the new epoch.
      c.dropConnection();
      await s.publish("ticker.JSE", 10);
      await poll(() => ev.tick.length >= 40, "10 more ticks");
      assert.deepEqual(ev.tick.slice(20).map((t) => t.seq), seqs(1, 20));
      assert.deepEqual(ev.recovery[1], { topic: "ticker.JSE", recovered: true });
    } finally { c.close(); await s.stop(); }
  });
}

test("heartbeats, a stale topic and an unannounced seq jump", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url);
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.JSH"], { heartbeatMs: 200 });
    await s.publish("ticker.JSH", 3);
    await poll(() => ev.heartbeat.length >= 1, "a heartbeat");
    assert.equal(ev.heartbeat[0].feed_up, true);
    assert.equal(ev.heartbeat[0].seq, 3);
    s.feedDown();
    await poll(() => ev.stale.length >= 1, "a stale event");
    assert.deepEqual(ev.stale, [{ topic: "ticker.JSH", lastSeq: 3 }]);
    // Make the client's bookkeeping one behind: the next tick is a jump no marker announced.
    c["topics"].get("ticker.JSH").seq = 1;
    await s.publish("ticker.JSH", 1);
    await poll(() => ev.tick.length >= 4, "the 4th tick");
    assert.deepEqual(ev.gap, [{ topic: "ticker.JSH", from: 2, to: 3, reason: "unannounced" }]);
  } finally { c.close(); await s.stop(); }
});

test("server errors are typed and thrown by the call", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url);
  try {
    await c.connect();
    await assert.rejects(c.subscribe(["not a topic!"]), (e) => e instanceof TickcastError && e.code === "invalid_topic");
    await assert.rejects(c.subscribe(["ticker.JSX"], { heartbeatMs: 1 }),
      (e) => e instanceof TickcastError && e.code === "invalid_field" && e.field === "heartbeat_ms");
    assert.equal((await c.ping()).type, "pong");
  } finally { c.close(); await s.stop(); }
});

test("auth with an async token provider, forbidden topics", opts, async () => {
  const s = await Server.start(binary, { auth: true });
  let calls = 0;
  const c = new TickcastClient(s.url, { token: async () => { calls++; return API_KEY; } });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.JST"]);
    await s.publish("ticker.JST", 2);
    await poll(() => ev.tick.length >= 2, "2 ticks");
    await assert.rejects(c.subscribe(["book.JST"]), (e) => e instanceof TickcastError && e.code === "forbidden");
    assert.equal(calls, 1);
  } finally { c.close(); await s.stop(); }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const unauthorized = (e) => e instanceof TickcastError && e.code === "unauthorized" && e.status === 401
  && /invalid_api_key/.test(e.message);

test("a refused credential fails fast on every transport: connect() rejects, no retry without a provider", opts, async () => {
  const s = await Server.start(binary, { auth: true });
  const clients = [];
  try {
    for (const transport of ["websocket", "sse", "auto"]) {
      const c = new TickcastClient(s.url, { token: "wrong", transport, reconnectMinMs: 10, reconnectMaxMs: 20 });
      clients.push(c);
      const ev = record(c);
      const errors = [];
      c.on("error", (e) => errors.push(e));
      const t0 = Date.now();
      // Over SSE the stream opens with the first subscribe: that is where the credential meets the server.
      const started = transport === "sse" ? c.connect().then(() => c.subscribe(["ticker.JSU"])) : c.connect();
      await assert.rejects(started, unauthorized, transport);
      assert.ok(Date.now() - t0 < 2000, `${transport}: took ${Date.now() - t0} ms`);
      await sleep(200); // a client that retried would show more attempts by now
      const attempts = ev.state.filter((e) => e.state === "connecting").length;
      assert.equal(attempts, 1, `${transport}: ${JSON.stringify(ev.state)}`);
      assert.equal(errors.length, 1);
      assert.equal(c.state, "disconnected");
      assert.equal(c.transport, transport === "sse" ? "sse" : "websocket", "a refusal is not a reason to fall back");
    }
  } finally { for (const c of clients) c.close(); await s.stop(); }
});

test("a token provider gets one retry with a fresh token: refused twice stops, a good second token connects", opts, async () => {
  const s = await Server.start(binary, { auth: true });
  const clients = [];
  try {
    for (const transport of ["websocket", "sse"]) {
      let calls = 0;
      const bad = new TickcastClient(s.url, { transport, token: async () => { calls++; return "wrong"; }, reconnectMinMs: 10 });
      clients.push(bad);
      const started = transport === "sse" ? bad.connect().then(() => bad.subscribe(["ticker.JSV"])) : bad.connect();
      await assert.rejects(started, unauthorized);
      await sleep(200);
      assert.equal(calls, 2, `${transport}: the first token and one fresh one`);

      const tokens = ["expired-or-wrong", API_KEY];
      const good = new TickcastClient(s.url, { transport, token: () => tokens.shift(), reconnectMinMs: 10 });
      clients.push(good);
      const ev = record(good);
      await good.connect();
      await good.subscribe(["ticker.JSV"]);
      await s.publish("ticker.JSV", 1);
      await poll(() => ev.tick.length >= 1, "a tick with the second token");
      assert.equal(tokens.length, 0);
    }
  } finally { for (const c of clients) c.close(); await s.stop(); }
});

test("an expiring JWT: a provider's fresh token resumes every seq, a fixed token stops with unauthorized", opts, async () => {
  const s = await Server.start(binary, { auth: true, jwtAuth: true });
  const clients = [];
  try {
    for (const transport of ["websocket", "sse"]) {
      let minted = 0;
      const renewed = new TickcastClient(s.url, { transport, token: () => (minted++, jwt(["ticker.*"], 3)), reconnectMinMs: 10 });
      const fixed = new TickcastClient(s.url, { transport, token: jwt(["ticker.*"], 3), reconnectMinMs: 10, reconnectMaxMs: 20 });
      clients.push(renewed, fixed);
      const ev = record(renewed), fixedEv = record(fixed);
      const errors = [], renewedErrors = [];
      fixed.on("error", (e) => errors.push(e));
      renewed.on("error", (e) => renewedErrors.push(e));
      await renewed.connect();
      await fixed.connect();
      const topic = `ticker.JW${transport[0].toUpperCase()}`;
      await renewed.subscribe([topic]);
      await fixed.subscribe([topic]);
      for (let i = 0; i < 45; i++) { await s.publish(topic, 1); await sleep(100); } // past the expiry
      await poll(() => ev.tick.length >= 45 && errors.length === 1, "every tick, and the fixed token's stop");
      assert.deepEqual(ev.tick.map((t) => t.seq), seqs(1, 45), transport);
      assert.ok(minted >= 2 && ev.recovery.every((r) => r.recovered), `${transport}: ${minted} ${JSON.stringify(ev.recovery)}`);
      assert.deepEqual(renewedErrors, [], "a provider's fresh token is never refused");
      assert.equal(errors[0].code, "unauthorized");
      assert.equal(fixed.state, "disconnected");
      assert.ok(fixedEv.tick.length < 45, "the fixed token's stream ended");
    }
  } finally { for (const c of clients) c.close(); await s.stop(); }
});

/**
 * Checks a client's ledger of one topic up to seq `last`: every seq delivered once or inside one announced gap,
 * nothing twice, no gap marker the client had to make up. Returns the seqs the gaps covered.
 */
function checkLedger(ticks, gaps, last) {
  const seen = new Map();
  for (const t of ticks) seen.set(t.seq, (seen.get(t.seq) ?? 0) + 1);
  for (const g of gaps) for (let q = g.from; q <= g.to; q++) seen.set(q, (seen.get(q) ?? 0) + 1);
  for (let q = 1; q <= last; q++) assert.equal(seen.get(q), 1, `seq ${q} delivered or announced exactly once`);
  assert.ok(gaps.every((g) => g.reason !== "unannounced"), JSON.stringify(gaps));
  return gaps.reduce((n, g) => n + g.to - g.from + 1, 0);
}

for (const [policy, reason] of [["conflate", "conflated"], ["drop_oldest", "dropped"]]) {
  test(`a client that stops reading gets the server's gap markers (${policy}): every seq delivered or announced`, opts, async () => {
    const s = await Server.start(binary, { policy, maxQueuedFrames: 16, sendBuffer: 4096 });
    const c = new TickcastClient(s.url);
    try {
      const ev = record(c);
      await c.connect();
      await c.subscribe(["ticker.JSP"]);
      await s.publish("ticker.JSP", 1);
      await poll(() => ev.tick.length >= 1, "the first tick");
      c["ws"].pause(); // stop reading: the kernel buffers fill, then the client's queue, then the policy applies
      const series = `tickcast_gap_markers_total{reason="${reason}"}`;
      const before = await s.metric(series);
      for (let i = 0; i < 40 && (await s.metric(series)) === before; i++) await s.publish("ticker.JSP", 10000);
      assert.ok((await s.metric(series)) > before, "the server took ticks from the stalled client");
      const last = s.sent + 1;
      await s.publish("ticker.JSP", 1); // the marker comes right before the topic's next tick
      c["ws"].resume();
      await poll(() => ev.tick.at(-1)?.seq === last, `seq ${last}`);
      const announced = checkLedger(ev.tick, ev.gap, last);
      assert.ok(announced > 0 && ev.gap.every((g) => g.reason === reason), JSON.stringify(ev.gap.slice(0, 5)));
      assert.ok(ev.gap.length >= 1);
    } finally { c.close(); await s.stop(); }
  });
}
