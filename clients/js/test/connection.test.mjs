// Connection handling that a real tickcast never provokes: a connect attempt that hangs (a listener that never
// answers), and frames that are not JSON messages (a small `ws` server that sends them). The scheduled retry in the
// `disconnected` state event is checked against a real server too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { WebSocketServer } from "ws";
import { TickcastClient, parseFrame } from "../dist/index.js";
import { Server, findBinary, poll } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 30000 };

test("parseFrame: messages, binary frames, text that is not JSON or not a message", () => {
  assert.deepEqual(parseFrame('{"type":"pong","id":1}'), { msg: { type: "pong", id: 1 } });
  assert.deepEqual(parseFrame(new ArrayBuffer(7)), { invalid: { reason: "binary", size: 7, sample: "" } });
  assert.deepEqual(parseFrame(Buffer.from("abc")).invalid.size, 3);
  assert.deepEqual(parseFrame([Buffer.alloc(2), Buffer.alloc(3)]).invalid.size, 5);
  const long = "x".repeat(200);
  assert.deepEqual(parseFrame(long), { invalid: { reason: "unparsable", size: 200, sample: "x".repeat(80) } });
  for (const t of ["[1]", "42", "null", '{"type":3}', "{}"]) assert.equal(parseFrame(t).invalid.reason, "not_a_message", t);
});

/** A TCP listener that accepts connections and never answers: every handshake hangs. */
async function blackHole() {
  const sockets = new Set();
  const server = createServer((s) => { sockets.add(s); s.on("error", () => {}); });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); },
  };
}

for (const transport of ["websocket", "sse"]) {
  test(`a hung connect attempt over ${transport} times out and is retried with backoff`, { timeout: 30000 }, async () => {
    const hole = await blackHole();
    const c = new TickcastClient(`ws://127.0.0.1:${hole.port}/ws`,
      { transport, connectTimeoutMs: 200, reconnectMinMs: 50, reconnectMaxMs: 100 });
    const states = [];
    c.on("state", (s) => states.push(s));
    try {
      // Over SSE the stream (and so the attempt) starts with the first subscribe.
      if (transport === "sse") {
        await c.connect();
        await assert.rejects(c.subscribe(["ticker.HANG"]), /connection closed/);
      } else void c.connect().catch(() => {});
      await poll(() => states.filter((s) => s.state === "disconnected").length >= 2, "two timed-out attempts");
      const down = states.filter((s) => s.state === "disconnected");
      assert.match(down[0].reason, /connect timed out after 200 ms/);
      assert.ok(down.every((s) => typeof s.retryInMs === "number" && s.retryInMs <= 100), JSON.stringify(down));
      assert.ok(down.every((s) => Math.abs(s.nextAttemptAt - Date.now()) < 5000));
      assert.equal(c.transport, transport, "a hang does not count toward the SSE fallback");
    } finally { c.close(); await hole.close(); }
  });
}

test("binary and unparsable frames are counted and told, and the connection goes on", { timeout: 30000 }, async () => {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => wss.once("listening", r));
  wss.on("connection", (ws) => {
    ws.send(Buffer.from([1, 2, 3, 4]), { binary: true });
    ws.send("not json at all");
    ws.send("[1,2]");
    ws.on("message", (m) => {
      const req = JSON.parse(m.toString());
      ws.send(JSON.stringify({ type: "pong", id: req.id }));
    });
  });
  const c = new TickcastClient(`ws://127.0.0.1:${wss.address().port}/ws`);
  const bad = [];
  c.on("invalidFrame", (e) => bad.push(e));
  try {
    await c.connect();
    await poll(() => bad.length === 3, "three invalid frames");
    assert.deepEqual(bad, [
      { reason: "binary", size: 4, sample: "", total: 1 },
      { reason: "unparsable", size: 15, sample: "not json at all", total: 2 },
      { reason: "not_a_message", size: 5, sample: "[1,2]", total: 3 },
    ]);
    assert.equal(c.invalidFrames, 3);
    assert.equal((await c.ping()).type, "pong");
  } finally { c.close(); await new Promise((r) => wss.close(r)); }
});

test("a dropped connection's state event says when the next attempt comes; reconnectNow() in it opens once", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { reconnectMinMs: 60000, reconnectMaxMs: 60000 });
  const states = [];
  c.on("state", (e) => {
    states.push(e);
    if (e.state === "disconnected" && e.retryInMs !== undefined && e.retryInMs > 10) c.reconnectNow();
  });
  try {
    await c.connect();
    const t0 = Date.now();
    c.dropConnection();
    await poll(() => states.filter((e) => e.state === "connected").length === 2, "reconnected");
    const down = states.find((e) => e.state === "disconnected");
    assert.ok(down.retryInMs >= 0 && down.retryInMs <= 60000);
    assert.ok(down.nextAttemptAt >= t0 && down.nextAttemptAt <= Date.now() + 60000);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(states.filter((e) => e.state === "connecting").length, 2, JSON.stringify(states));
    c.close();
    assert.equal(states.at(-1).retryInMs, undefined, "no attempt follows close()");
  } finally { c.close(); await s.stop(); }
});
