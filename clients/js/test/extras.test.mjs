// SDK API the dashboard needed (additive): `message` and `error` events, position(), since on subscribe,
// reconnectNow(), sendRaw(). Against a real tickcast server (see lib/server.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient } from "../dist/index.js";
import { Server, findBinary, poll } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 30000 };

test("position() is the last seq and epoch; `message` sees every server message", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url);
  const types = [];
  c.on("message", (m) => types.push(m.type));
  try {
    await c.connect();
    assert.equal(c.position("ticker.POS"), undefined, "not subscribed");
    const ack = await c.subscribe(["ticker.POS"]);
    assert.deepEqual(c.position("ticker.POS"), { seq: undefined, epoch: ack.epochs["ticker.POS"] });
    await s.publish("ticker.POS", 7);
    await poll(() => c.position("ticker.POS").seq === 7, "seq 7");
    await c.ping();
    assert.deepEqual(types.filter((t) => t !== "tick"), ["subscribed", "pong"]);
    assert.equal(types.filter((t) => t === "tick").length, 7);
    await c.unsubscribe(["ticker.POS"]);
    assert.equal(c.position("ticker.POS"), undefined, "forgotten with the unsubscribe");
  } finally { c.close(); await s.stop(); }
});

test("subscribe with since replays from the history, once: reconnects resume from what was received", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { reconnectMinMs: 50, reconnectMaxMs: 200 });
  const seqs = [];
  c.on("tick", (t) => seqs.push(t.seq));
  try {
    await c.connect();
    await s.publish("ticker.BKF", 30);
    await s.ingested("ticker.BKF", 30); // else the subscribe may come first and get the 30 ticks, not a snapshot
    const probe = await c.subscribe(["ticker.BKF"]); // the snapshot (seq 30) tells where the stream is
    await poll(() => seqs.length === 1, "the snapshot");
    await c.unsubscribe(["ticker.BKF"]);
    seqs.length = 0;
    const epoch = probe.epochs["ticker.BKF"];
    const ack = await c.subscribe(["ticker.BKF"], { since: { "ticker.BKF": { seq: 20, epoch } } });
    assert.deepEqual(ack.recovery, { "ticker.BKF": { recovered: true } });
    await poll(() => seqs.length === 10, "the replay");
    assert.deepEqual(seqs, Array.from({ length: 10 }, (_, i) => 21 + i));
    // After a drop the client resumes after seq 30, not after 20 again.
    c.dropConnection();
    await poll(() => c.state === "connected", "reconnected");
    await s.publish("ticker.BKF", 2);
    await poll(() => seqs.length === 12, "two more");
    assert.deepEqual(seqs.slice(10), [31, 32], `no replay twice: ${seqs}`);
  } finally { c.close(); await s.stop(); }
});

test("sendRaw() sends text as it is; an error answering no request comes as an `error` event", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url);
  const errors = [];
  c.on("error", (e) => errors.push(e));
  try {
    assert.equal(c.sendRaw("{}"), false, "not connected");
    await c.connect();
    assert.equal(c.sendRaw("this is not json"), true);
    assert.equal(c.sendRaw('{"op":"frobnicate","id":424242}'), true);
    await poll(() => errors.length === 2, "two errors");
    assert.equal(errors[0].code, "bad_json");
    assert.equal(errors[1].code, "unknown_op");
    assert.equal(errors[1].id, 424242);
    assert.ok(errors.every((e) => typeof e.message === "string" && e.message.length > 0));
    assert.equal((await c.ping()).type, "pong", "the connection stays usable");
  } finally { c.close(); await s.stop(); }
});

test("reconnectNow() skips the backoff wait", opts, async () => {
  const s = await Server.start(binary);
  // A backoff of up to ten minutes: only reconnectNow() brings the client back within seconds (bar a 1% chance
  // that the backoff's own jitter picks a delay that short, which the assertion tolerates: connected either way).
  const c = new TickcastClient(s.url, { reconnectMinMs: 600000, reconnectMaxMs: 600000 });
  try {
    await c.connect();
    await s.stop();
    await poll(() => c.state === "disconnected", "the server gone");
    await s.spawn();
    const t0 = Date.now();
    c.reconnectNow();
    await poll(() => c.state === "connected", "connected again");
    assert.ok(Date.now() - t0 < 5000, `connected in ${Date.now() - t0} ms`);
    c.reconnectNow(); // connected: nothing to do
    assert.equal(c.state, "connected");
    assert.equal((await c.ping()).type, "pong");
  } finally { c.close(); await s.stop(); }
});
