// The SSE transport: its pure parts (event-stream parsing, the resume id, URLs), then the client against real
// tickcast servers, behind a proxy that refuses WebSockets (auto fallback) and straight (transport "sse"); a server
// restart over SSE is in client.test.mjs, next to the WebSocket one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient } from "../dist/index.js";
import { SseParser, sseResumeId, sseStreamUrl, siblingUrl } from "../dist/sse.js";
import { Server, findBinary, poll } from "./lib/server.mjs";
import { startProxy } from "./lib/proxy.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 60000 };
const seqs = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Records every event of a client. */
function record(c) {
  const ev = { tick: [], gap: [], recovery: [], state: [], book: [] };
  for (const k of Object.keys(ev)) c.on(k, (e) => ev[k].push(e));
  return ev;
}

test("the event-stream parser: split chunks, CRLF, comments, multi-line data, ids that persist", () => {
  const p = new SseParser();
  const text = "retry: 1000\r\nid: e.0.0\r\n\r\n: a comment\ndata: {\"a\"\ndata: :1}\n\nid: e.5.0\ndata:x\n\ndata: y\n\n";
  const out = [];
  for (let i = 0; i < text.length; i += 3) out.push(...p.push(text.slice(i, i + 3)));
  assert.deepEqual(out, [
    { data: "{\"a\"\n:1}", lastEventId: "e.0.0" },
    { data: "x", lastEventId: "e.5.0" },
    { data: "y", lastEventId: "e.5.0" },
  ]);
  const cr = new SseParser(); // a CRLF split between chunks is one line end, not two
  assert.deepEqual([...cr.push("data: a\r"), ...cr.push("\ndata: b\r\n\r\n")], [{ data: "a\nb", lastEventId: "" }]);
});

test("the resume id names the majority epoch and one seq per named topic, 0 where nothing resumes", () => {
  assert.equal(sseResumeId([{ topic: "ticker.A" }, { topic: "ticker.B" }]), undefined);
  assert.equal(sseResumeId([
    { topic: "ticker.A", seq: 12, epoch: "k3" },
    { topic: "ticker.*" },
    { topic: "ticker.B" },
    { topic: "ticker.C", seq: 4, epoch: "k3" },
    { topic: "ticker.D", seq: 9, epoch: "old" },
  ]), "k3.12.0.4.0");
  assert.equal(sseResumeId([{ topic: "ticker.A", epoch: "k3" }, { topic: "ticker.B", seq: 0, epoch: "k3" }]), "k3.0.0");
});

test("SSE URLs: next to /ws, topics with throttles, heartbeat and token", () => {
  assert.equal(siblingUrl("wss://h.example:9/feed/ws", "sse"), "https://h.example:9/feed/sse");
  assert.equal(siblingUrl("ws://127.0.0.1:8080/ws?x=1", "topics"), "http://127.0.0.1:8080/topics");
  assert.equal(siblingUrl("ws://127.0.0.1:8080/", "sse"), "http://127.0.0.1:8080/sse");
  const u = new URL(sseStreamUrl("http://h/sse", [{ topic: "ticker.A", throttleMs: 250 }, { topic: "ticker.*" }], 1000, "k y"));
  assert.equal(u.searchParams.get("topics"), "ticker.A@250ms,ticker.*");
  assert.equal(u.searchParams.get("heartbeat_ms"), "1000");
  assert.equal(u.searchParams.get("token"), "k y");
  assert.equal(new URL(sseStreamUrl("http://h/sse", [{ topic: "a.b" }])).search, "?topics=a.b");
});

test("auto falls back to SSE behind a proxy that refuses WebSockets; cuts and topic changes keep every seq once",
  opts, async () => {
    const s = await Server.start(binary);
    const proxy = await startProxy(s.port);
    const c = new TickcastClient(proxy.url, { reconnectMinMs: 20, reconnectMaxMs: 100 });
    try {
      const ev = record(c);
      await c.connect();
      assert.equal(c.transport, "sse");
      const refused = ev.state.filter((e) => e.state === "disconnected");
      assert.equal(refused.length, 3, "three WebSocket attempts, then SSE");
      assert.match(refused[0].reason, /426/);
      const ack = await c.subscribe(["ticker.JSF"]);
      assert.deepEqual(ack.topics, ["ticker.JSF"]);
      await s.publish("ticker.JSF", 30);
      await poll(() => ev.tick.length >= 30, "30 ticks");
      c.dropConnection();
      await s.publish("ticker.JSF", 30); // published while the stream is down
      await poll(() => ev.tick.length >= 60, "60 ticks");
      assert.deepEqual(ev.recovery, [{ topic: "ticker.JSF", recovered: true }]);
      // A subscribe reopens the stream with both topics, resuming ticker.JSF while it publishes.
      const publishing = s.publish("ticker.JSF", 40);
      const ack2 = await c.subscribe(["ticker.JSG"], { heartbeatMs: 500 });
      assert.deepEqual(ack2.topics, ["ticker.JSF", "ticker.JSG"]);
      await publishing;
      await s.publish("ticker.JSG", 5);
      await poll(() => ev.tick.length >= 105, "105 ticks");
      const of = (t) => ev.tick.filter((x) => x.topic === t).map((x) => x.seq);
      assert.deepEqual(of("ticker.JSF"), seqs(1, 100));
      assert.deepEqual(of("ticker.JSG"), seqs(1, 5));
      assert.equal(ev.recovery.length, 1, "a reopen for a topic change reports no recovery");
      assert.equal(ev.gap.length, 0);
      await c.unsubscribe(["ticker.JSF"]);
      await s.publish("ticker.JSF", 5);
      await s.publish("ticker.JSG", 1);
      await poll(() => ev.tick.length >= 106, "the 6th tick of ticker.JSG");
      assert.equal(of("ticker.JSF").length, 100, "no tick of an unsubscribed topic");
      await assert.rejects(c.subscribe(["not a topic!"]), (e) => e.name === "TickcastError" && e.code === "invalid_topic" && e.status === 400);
      await s.publish("ticker.JSG", 1); // the stream is back on the topics it had
      await poll(() => ev.tick.length >= 107, "the 7th tick of ticker.JSG");
      assert.deepEqual(of("ticker.JSG"), seqs(1, 7));
    } finally { c.close(); await proxy.close(); await s.stop(); }
  });

test("an order book over SSE: every checksum verifies", opts, async () => {
  const s = await Server.start(binary, { marketRate: 2000 });
  const c = new TickcastClient(s.url, { transport: "sse" });
  try {
    await c.connect();
    const invalid = [];
    const sub = await c.book("book.SYN1", { onInvalid: (e) => invalid.push(e) });
    await poll(() => sub.verified >= 300, "300 verified book messages");
    assert.equal(sub.mismatches, 0);
    assert.deepEqual(invalid, []);
    assert.ok(sub.checksumOk);
    await assert.rejects(c.ping(), (e) => e.code === "not_supported");
  } finally { c.close(); await s.stop(); }
});
