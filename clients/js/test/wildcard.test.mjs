// Wildcard subscriptions and partly refused subscribes: the pure parts, then the client against real tickcast
// servers (see lib/server.mjs), with a tcp feed that starts topics before and after the pattern's subscribe.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient, TickcastError, matches, patternFor, refusedTopics } from "../dist/index.js";
import { Server, findBinary, poll, jwt, API_KEY } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 60000 };
const seqs = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Publishes n ticks of a topic no feed has published yet, its first one alone, then waits for it: the tests then
 * know the topic is in (and its epoch learnt) before the rest flows. (A burst reaches the pattern from its first
 * tick too: the server replays it from the topic's history; see the router's unit test.)
 */
async function start(s, ev, topic, n) {
  const had = ev.of(topic).length;
  await s.publish(topic, 1);
  await poll(() => ev.of(topic).length > had, `${topic}'s first tick`);
  await s.publish(topic, n - 1);
}

/** Records a client's events. */
function record(c) {
  const ev = { tick: [], gap: [], recovery: [], state: [] };
  for (const k of Object.keys(ev)) c.on(k, (e) => ev[k].push(e));
  ev.of = (topic) => ev.tick.filter((t) => t.topic === topic).map((t) => t.seq);
  return ev;
}

test("patterns match whole segments; refused topics are the named ones the ack leaves out", () => {
  assert.ok(matches("wc.*", "wc.A"));
  assert.ok(matches("bar.1m.*", "bar.1m.AAPL"));
  assert.ok(!matches("bar.1m.*", "bar.1s.AAPL"));
  assert.ok(!matches("wc.*", "wcx.A") && !matches("wc.*", "wc.") && !matches("wc.A", "wc.A"));
  assert.equal(patternFor(["ticker.A", "bar.*", "wc.*"], "wc.B"), "wc.*");
  assert.equal(patternFor(["ticker.A"], "ticker.A"), undefined);
  assert.deepEqual(refusedTopics(["ticker.A", "book.A", "book.*", "book.A"], { topics: ["ticker.A"] }), ["book.A"]);
  assert.deepEqual(refusedTopics(["book.A", "trade.A"], undefined), ["book.A", "trade.A"]);
});

test("a wildcard over WebSocket: matched and later topics tick, resume exactly after a cut, end with the pattern",
  opts, async () => {
    const s = await Server.start(binary);
    const c = new TickcastClient(s.url, { reconnectMinMs: 20, reconnectMaxMs: 100 });
    try {
      const ev = record(c);
      await c.connect();
      await s.publish("wc.A", 5);
      await s.ingested("wc.A");
      const ack = await c.subscribe(["wc.*"]);
      assert.deepEqual(ack.patterns, ["wc.*"]);
      assert.ok(ack.epochs["wc.A"], JSON.stringify(ack));
      await poll(() => ev.of("wc.A").length === 1, "wc.A's snapshot");
      assert.deepEqual(ev.of("wc.A"), [5]);
      await start(s, ev, "wc.B", 10); // a topic that starts after the subscribe
      await s.publish("wc.A", 5);
      await poll(() => ev.of("wc.B").length === 10 && ev.of("wc.A").length === 6, "the later ticks");
      assert.deepEqual(ev.of("wc.B"), seqs(1, 10));
      assert.deepEqual(c.matchedTopics("wc.*"), ["wc.A", "wc.B"]);
      // The client learns the later topic's epoch (no message carries it), so it can resume it too.
      await poll(() => c.position("wc.B")?.epoch === ack.epochs["wc.A"], "wc.B's epoch");
      assert.equal(ev.tick.filter((t) => t.topic === "wc.B").length, 10, "learning the epoch sends no snapshot");

      c.dropConnection();
      await s.publish("wc.A", 20);
      await s.publish("wc.B", 20);
      await poll(() => ev.of("wc.A").length === 26 && ev.of("wc.B").length === 30, "every tick after the cut");
      assert.deepEqual(ev.of("wc.A"), [5, ...seqs(6, 30)]);
      assert.deepEqual(ev.of("wc.B"), seqs(1, 30));
      assert.deepEqual(ev.recovery.sort((a, b) => a.topic.localeCompare(b.topic)),
        [{ topic: "wc.A", recovered: true }, { topic: "wc.B", recovered: true }]);
      assert.deepEqual(ev.gap, []);
      // A matched topic's seq is checked like a named one's: make the client's bookkeeping two behind.
      c["matched"].get("wc.B").seq = 28;
      await s.publish("wc.B", 1);
      await poll(() => ev.gap.length === 1, "the unannounced jump");
      assert.deepEqual(ev.gap, [{ topic: "wc.B", from: 29, to: 30, reason: "unannounced" }]);

      await c.unsubscribe(["wc.*"]);
      assert.deepEqual(c.matchedTopics("wc.*"), []);
      assert.equal(c.position("wc.B"), undefined);
      await s.publish("wc.A", 3);
      await s.publish("wc.B", 3);
      await s.publish("wc.C", 3);
      await s.ingested("wc.C");
      await c.ping();
      assert.equal(ev.tick.filter((t) => t.topic.startsWith("wc.")).length, 57, "nothing after the unsubscribe");
    } finally { c.close(); await s.stop(); }
  });

test("a wildcard across a server restart: its topics start over from seq 1 without a made-up gap", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { reconnectMinMs: 20, reconnectMaxMs: 200 });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["wc.*"]);
    await start(s, ev, "wc.R", 8);
    await poll(() => ev.of("wc.R").length === 8 && c.position("wc.R")?.epoch, "8 ticks and the epoch");
    await s.restart();
    await poll(() => ev.recovery.length === 1, "the outcome");
    assert.deepEqual(ev.recovery, [{ topic: "wc.R", recovered: false, reason: "no_history" }]);
    await start(s, ev, "wc.R", 4);
    await poll(() => ev.of("wc.R").length === 12, "4 ticks of the new seq space");
    assert.deepEqual(ev.of("wc.R"), [...seqs(1, 8), ...seqs(1, 4)]);
    assert.deepEqual(ev.gap, []);
  } finally { c.close(); await s.stop(); }
});

test("a wildcard over SSE: later topics tick, a cut resumes what the client knows, unsubscribe ends it", opts, async () => {
  const s = await Server.start(binary);
  const c = new TickcastClient(s.url, { transport: "sse", reconnectMinMs: 20, reconnectMaxMs: 100 });
  try {
    const ev = record(c);
    await c.connect();
    await s.publish("wc.A", 5);
    await s.ingested("wc.A");
    await c.subscribe(["wc.*"]);
    await start(s, ev, "wc.B", 10);
    await poll(() => ev.of("wc.A").length === 1 && ev.of("wc.B").length === 10, "wc.A's snapshot, wc.B's ticks");
    // wc.B started after the stream's ack: no epoch, so the cut restarts it from its snapshot (and says so).
    c.dropConnection();
    await s.publish("wc.A", 5);
    await poll(() => ev.of("wc.A").length === 6 && ev.of("wc.B").length === 11, "wc.A resumed, wc.B's snapshot");
    assert.deepEqual(ev.of("wc.A"), [5, ...seqs(6, 10)]);
    assert.deepEqual(ev.of("wc.B"), [...seqs(1, 10), 10]);
    assert.deepEqual(ev.recovery.sort((a, b) => a.topic.localeCompare(b.topic)),
      [{ topic: "wc.A", recovered: true }, { topic: "wc.B", recovered: false, reason: "unknown_epoch" }]);
    // The reopened stream named both: the next cut resumes both exactly.
    c.dropConnection();
    await s.publish("wc.A", 5);
    await s.publish("wc.B", 5);
    await poll(() => ev.of("wc.A").length === 11 && ev.of("wc.B").length === 16, "both resumed");
    assert.deepEqual(ev.of("wc.B").slice(11), seqs(11, 15));
    assert.deepEqual(ev.gap, []);
    await c.unsubscribe(["wc.*"]);
    assert.deepEqual(c.matchedTopics("wc.*"), []);
    await s.publish("wc.A", 3);
    await s.publish("wc.C", 3);
    await s.ingested("wc.C");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ev.tick.filter((t) => t.topic.startsWith("wc.")).length, 27, "nothing after the unsubscribe");
  } finally { c.close(); await s.stop(); }
});

test("a partly forbidden subscribe keeps what the server subscribed and names what it refused", opts, async () => {
  const s = await Server.start(binary, { auth: true, keyTopics: ["ticker.*"] });
  const c = new TickcastClient(s.url, { token: API_KEY, reconnectMinMs: 20, reconnectMaxMs: 100 });
  try {
    const ev = record(c);
    await c.connect();
    let err;
    await assert.rejects(c.subscribe(["ticker.FA", "book.FA", "trade.FA"]), (e) => (err = e) instanceof TickcastError);
    assert.equal(err.code, "forbidden");
    assert.deepEqual(err.topics, ["book.FA", "trade.FA"]);
    assert.deepEqual(err.ack.topics, ["ticker.FA"]);
    assert.ok(c.position("ticker.FA") && !c.position("book.FA") && !c.position("trade.FA"));
    await s.publish("ticker.FA", 3);
    await poll(() => ev.of("ticker.FA").length === 3, "ticks of the granted topic");
    // Everything refused: no `subscribed` follows the error, and the client does not wait for one.
    const t0 = Date.now();
    await assert.rejects(c.subscribe(["book.FB"]), (e) => e.code === "forbidden" && e.topics?.[0] === "book.FB" && !e.ack);
    assert.ok(Date.now() - t0 < 2000);
    // After a reconnect only the granted topic is resubscribed (a refused one would bring an `error` event).
    const errors = [];
    c.on("error", (e) => errors.push(e));
    c.dropConnection();
    await s.publish("ticker.FA", 3);
    await poll(() => ev.of("ticker.FA").length === 6, "resumed");
    assert.deepEqual(ev.of("ticker.FA"), seqs(1, 6));
    assert.deepEqual(errors, []);
  } finally { c.close(); await s.stop(); }
});

test("over SSE the server refuses a partly forbidden stream whole: nothing new is kept, the old set goes on", opts, async () => {
  const s = await Server.start(binary, { auth: true, keyTopics: ["ticker.*"] });
  const c = new TickcastClient(s.url, { token: API_KEY, transport: "sse" });
  try {
    const ev = record(c);
    await c.connect();
    await c.subscribe(["ticker.FS"]);
    await assert.rejects(c.subscribe(["ticker.FT", "book.FT"]),
      (e) => e instanceof TickcastError && e.code === "forbidden" && e.status === 403 && e.topics === undefined);
    assert.ok(c.position("ticker.FS") && !c.position("ticker.FT") && !c.position("book.FT"));
    await s.publish("ticker.FS", 2);
    // (the ticks, or their snapshot when the stream reopens after them)
    await poll(() => ev.of("ticker.FS").at(-1) === 2, "the stream back on ticker.FS");
  } finally { c.close(); await s.stop(); }
});

test("a book kept of a topic a pattern brought takes a fresh snapshot and outlives the pattern", opts, async () => {
  const s = await Server.start(binary, { marketRate: 2000 });
  const c = new TickcastClient(s.url);
  try {
    const books = [];
    c.on("book", (b) => books.push(b));
    await c.connect();
    await c.subscribe(["book.*"]);
    await poll(() => books.length >= 20, "book messages through the pattern");
    const invalid = [];
    const sub = await c.book("book.SYN1", { onInvalid: (e) => invalid.push(e) });
    await poll(() => sub.verified >= 100, "100 verified messages");
    assert.deepEqual(c.matchedTopics("book.*"), [], "named now");
    await c.unsubscribe(["book.*"]);
    const v = sub.verified;
    await poll(() => sub.verified >= v + 50, "the book goes on without the pattern");
    assert.equal(sub.mismatches, 0);
    assert.deepEqual(invalid, []);
  } finally { c.close(); await s.stop(); }
});

test("a resubscribe the server partly refuses (a renewed token with fewer grants) keeps the rest and says so", opts, async () => {
  const s = await Server.start(binary, { auth: true, jwtAuth: true });
  const grants = [["ticker.*", "trade.*"], ["ticker.*"]];
  const c = new TickcastClient(s.url, { token: () => jwt(grants.length > 1 ? grants.shift() : grants[0], 60), reconnectMinMs: 20 });
  try {
    const ev = record(c);
    const errors = [];
    c.on("error", (e) => errors.push(e));
    await c.connect();
    await c.subscribe(["ticker.RG", "trade.RG"]);
    await s.publish("ticker.RG", 2);
    await poll(() => ev.of("ticker.RG").length === 2, "2 ticks");
    c.dropConnection();
    await poll(() => errors.length === 1, "the refusal of trade.RG");
    assert.equal(errors[0].code, "forbidden");
    assert.deepEqual(errors[0].topics, ["trade.RG"]);
    assert.equal(c.position("trade.RG"), undefined);
    await s.publish("ticker.RG", 2);
    await poll(() => ev.of("ticker.RG").length === 4, "ticker.RG resumed");
    assert.deepEqual(ev.of("ticker.RG"), seqs(1, 4));
  } finally { c.close(); await s.stop(); }
});
