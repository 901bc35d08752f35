// The JS SDK (dist/) against real tickcast servers on loopback (see server.mjs).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient, TickcastError, backoffDelay, unannouncedGap } from "../dist/index.js";
import { Server, findBinary, poll, API_KEY } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 30000 };

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

test("a server restart is reported as not recovered: epoch_changed", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { reconnectMinMs: 50, reconnectMaxMs: 500 });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.JSE"]);
    await s.publish("ticker.JSE", 10);
    await poll(() => ev.tick.length >= 10, "10 ticks");
    await s.restart();
    await poll(() => ev.recovery.length >= 1, "the recovery outcome");
    assert.deepEqual(ev.recovery, [{ topic: "ticker.JSE", recovered: false, reason: "epoch_changed" }]);
    await s.publish("ticker.JSE", 3);
    await poll(() => ev.tick.length >= 13, "3 ticks after the restart");
    assert.deepEqual(ev.tick.slice(10).map((t) => t.seq), [1, 2, 3]);
    assert.equal(ev.gap.length, 0, "a fresh start is not a gap");
    assert.ok(ev.state.some((e) => e.state === "disconnected" && e.code === 1001), JSON.stringify(ev.state));
  } finally { c.close(); await s.stop(); }
});

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

test("auth with an async token provider, forbidden topics, a bad token", opts, async () => {
  const s = await Server.start(binary, { auth: true });
  let calls = 0;
  const c = new TickcastClient(s.url, { token: async () => { calls++; return API_KEY; } });
  const bad = new TickcastClient(s.url, { token: "wrong", reconnectMinMs: 10, reconnectMaxMs: 50 });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.JST"]);
    await s.publish("ticker.JST", 2);
    await poll(() => ev.tick.length >= 2, "2 ticks");
    await assert.rejects(c.subscribe(["book.JST"]), (e) => e instanceof TickcastError && e.code === "forbidden");
    assert.equal(calls, 1);
    const badEv = record(bad);
    void bad.connect();
    await poll(() => badEv.state.filter((e) => e.state === "disconnected").length >= 2, "two refused connects");
    assert.ok(badEv.state.every((e) => e.state !== "connected"));
  } finally { c.close(); bad.close(); await s.stop(); }
});
