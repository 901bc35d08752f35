// Order books, trades and bars: OrderBook by hand (checksums of docs/protocol.md, exact keys, trimming), then the
// SDK against real tickcast servers whose synthetic feed publishes book.SYN1, trade.SYN1 and bar.1s.SYN1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { TickcastClient, TickcastError, OrderBook, crc32, checksumDigits, decimalSub, parseDecimal } from "../dist/index.js";
import { Server, findBinary, poll, API_KEY } from "./lib/server.mjs";

const binary = findBinary();
const opts = { skip: binary ? false : "tickcast binary not found", timeout: 30000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const snap = (seq, bids, asks, checksum, depth = 10) =>
  ({ type: "book", topic: "book.T", seq, ts: seq, snapshot: true, depth, bids, asks, checksum });
const delta = (seq, bids, asks, checksum) => ({ type: "book", topic: "book.T", seq, ts: seq, snapshot: false, bids, asks, checksum });

test("crc32, checksum digits and exact decimals", () => {
  assert.equal(crc32("123456789"), 0xcbf43926);
  assert.equal(checksumDigits("0.00500"), "500");
  assert.equal(checksumDigits("64000.5"), "640005");
  assert.equal(parseDecimal("1.50"), parseDecimal("1.5"));
  assert.equal(parseDecimal("1e5"), null);
  assert.equal(parseDecimal("1."), null);
  assert.equal(decimalSub("189.14", "189.1"), "0.04");
  assert.equal(decimalSub("0.1", "0.3"), "-0.2");
});

test("the checksums of docs/protocol.md; a level keyed by value keeps its latest spelling", () => {
  const b = new OrderBook("book.BTC-USD");
  assert.equal(b.apply(snap(41, [["64000.5", "1.25"]], [["64001.0", "0.5"]], 2238815152)), "ok");
  assert.equal(b.apply(delta(42, [["64000.5", "0"]], [], 878852093)), "ok");
  assert.equal(b.bestBid, undefined);
  assert.deepEqual(b.bestAsk, { price: "64001.0", size: "0.5" });
  // "64001.00" is the same level as "64001.0": it replaces it (one level), and the checksum takes the new digits.
  const want = crc32(checksumDigits("64001.00") + checksumDigits("0.7"));
  assert.equal(b.apply(delta(43, [], [["64001.00", "0.7"]], want)), "ok");
  assert.deepEqual(b.asks(), [{ price: "64001.00", size: "0.7" }]);
  assert.equal(b.verified, 3);
  assert.equal(b.seq, 43);
});

/** The checksum of a book holding exactly these levels (a mismatching apply still applies the levels). */
function checksumOf(bids, asks) {
  const e = new OrderBook();
  e.apply(snap(1, bids, asks, 0, 1000));
  return e.checksum();
}

test("sorting, trimming to depth, spread, and what drops the book", () => {
  const b = new OrderBook("book.T");
  const m = snap(1, [["10.0", "1"], ["9.5", "2"], ["9.75", "3"]], [["11", "1"], ["10.25", "2"]], 0, 2);
  m.checksum = checksumOf([["10.0", "1"], ["9.75", "3"]], [["10.25", "2"], ["11", "1"]]);
  assert.equal(b.apply(m), "ok");
  assert.deepEqual(b.bids(), [{ price: "10.0", size: "1" }, { price: "9.75", size: "3" }]); // 9.5 trimmed away
  assert.deepEqual(b.asks(1), [{ price: "10.25", size: "2" }]);
  assert.equal(b.spread, "0.25");
  // A better bid pushes 9.75 out (depth 2): the client must trim like the server, or its checksum differs.
  const d = delta(2, [["10.1", "4"]], [], checksumOf([["10.1", "4"], ["10.0", "1"]], [["10.25", "2"], ["11", "1"]]));
  assert.equal(b.apply(d), "ok");
  assert.deepEqual(b.bids().map((l) => l.price), ["10.1", "10.0"]);
  // Removing 10.1 does not bring 9.75 back: it is gone on the server too.
  assert.equal(b.apply(delta(3, [["10.10", "0"]], [], checksumOf([["10.0", "1"]], [["10.25", "2"], ["11", "1"]]))), "ok");
  assert.equal(b.apply(delta(3, [], [], 0)), "ignored", "a delta already applied");
  assert.equal(b.apply(delta(4, [["10.0", "5"]], [], 12345)), "mismatch");
  assert.equal(b.checksumOk, false);
  assert.equal(b.apply(delta(5, [], [], 0)), "ignored", "no book held: wait for a snapshot");
  assert.equal(b.apply({ ...m, seq: 10 }), "ok");
  assert.equal(b.apply(delta(12, [], [], m.checksum)), "jump");
  assert.equal(b.apply({ ...m, seq: 20 }), "ok");
  assert.equal(b.apply(delta(21, [["x", "1"]], [], 0)), "malformed");
  assert.equal(b.apply({ ...m, seq: 30, bids: [["10.0", "0"]] }), "malformed", "a zero size in a snapshot");
  assert.deepEqual([b.mismatches, b.jumps, b.malformed, b.snapshots], [1, 1, 2, 3]);
});

test("thousands of book messages from the real server, every checksum verified", opts, async () => {
  // Depth 10 while the synthetic book keeps 20 levels: deltas touch levels the client must trim away.
  const s = await Server.start(binary, { marketRate: 4000, bookDepth: 10 });
  const c = new TickcastClient(s.url);
  try {
    await c.connect();
    const invalid = [];
    let updates = 0;
    let lastSeq = 0;
    let inOrder = true;
    const sub = await c.book("book.SYN1", {
      onInvalid: (e) => invalid.push(e),
      onUpdate: (book, msg) => {
        updates++;
        if (lastSeq && msg.seq !== lastSeq + 1) inOrder = false;
        lastSeq = msg.seq;
        assert.equal(book.seq, msg.seq);
      },
    });
    await poll(() => sub.verified >= 3000 || invalid.length > 0, "3000 verified book messages");
    assert.equal(sub.mismatches, 0);
    assert.deepEqual(invalid, []);
    assert.ok(inOrder, "verified messages come in seq order");
    assert.equal(updates, sub.verified);
    assert.equal(sub.book.snapshots, 1);
    assert.equal(sub.book.depth, 10);
    assert.deepEqual(sub.book.size, { bids: 10, asks: 10 });
    const [bid, ask] = [sub.book.bestBid, sub.book.bestAsk];
    assert.ok(parseDecimal(bid.price) < parseDecimal(ask.price));
    assert.equal(sub.book.spread, decimalSub(ask.price, bid.price));
    assert.equal(sub.book.bids(3).length, 3);
    await sub.close();
    const n = sub.verified;
    await c.ping();
    await sleep(100);
    assert.equal(sub.verified, n, "no book message after close()");
  } finally { c.close(); await s.stop(); }
});

test("a corrupted local book is caught by the next checksum and rebuilt from a resubscribe's snapshot", opts, async () => {
  const s = await Server.start(binary, { marketRate: 2000 });
  const c = new TickcastClient(s.url);
  try {
    await c.connect();
    const invalid = [];
    const sub = await c.book("book.SYN1", { onInvalid: (e) => invalid.push(e) });
    await poll(() => sub.verified >= 200, "200 verified");
    // Corrupt every level's size behind the SDK's back: the next delta rewrites a level or two, never all of them,
    // so its checksum cannot match.
    for (const side of [sub.book["bidSide"], sub.book["askSide"]]) for (const l of side.levels) l.size = String(Number(l.size) + 1);
    const before = sub.verified;
    await poll(() => sub.mismatches === 1, "the mismatch");
    assert.equal(invalid[0].reason, "mismatch");
    assert.equal(invalid[0].resubscribe, true);
    assert.equal(sub.resubscribes, 1);
    await poll(() => sub.checksumOk && sub.verified >= before + 200, "200 verified after the fresh snapshot");
    assert.equal(sub.book.snapshots, 2);
    assert.equal(sub.mismatches, 1);
    assert.equal(invalid.length, 1, JSON.stringify(invalid));

    // A seq jump with no gap marker: the book is dropped and resubscribed too.
    await sleep(1000); // resubscribes are at most one per second
    sub.book.seq -= 1;
    await poll(() => sub.book.jumps === 1 && sub.checksumOk, "the jump and a fresh snapshot");
    assert.equal(invalid[1].reason, "jump");
    assert.equal(sub.resubscribes, 2);
    assert.equal(sub.book.snapshots, 3);
    assert.equal(sub.mismatches, 1);
  } finally { c.close(); await s.stop(); }
});

test("a client that falls behind gets a resync gap and the snapshot that repairs its book", opts, async () => {
  const s = await Server.start(binary, { marketRate: 4000, maxQueuedFrames: 16 });
  const c = new TickcastClient(s.url);
  try {
    await c.connect();
    const invalid = [];
    const sub = await c.book("book.SYN1", { onInvalid: (e) => invalid.push(e) });
    await poll(() => sub.verified >= 100, "100 verified");
    const sock = c["ws"]._socket; // stop reading: the server's queue for this client fills up
    sock.pause();
    await sleep(3000);
    sock.resume();
    await poll(() => invalid.length >= 1 && sub.checksumOk, "a gap and a verified book again");
    assert.equal(invalid[0].reason, "gap");
    assert.match(invalid[0].detail, /resync/);
    assert.equal(sub.resubscribes, 0, "the server's snapshot repairs the book without a resubscribe");
    assert.equal(sub.mismatches, 0);
    assert.ok(sub.book.snapshots >= 2);
  } finally { c.close(); await s.stop(); }
});

test("a held book resumes after a dropped connection", opts, async () => {
  const s = await Server.start(binary, { marketRate: 1000 });
  const c = new TickcastClient(s.url, { reconnectMinMs: 50, reconnectMaxMs: 200 });
  try {
    const recovery = [];
    c.on("recovery", (r) => recovery.push(r));
    await c.connect();
    const sub = await c.book("book.SYN1");
    await poll(() => sub.verified >= 100, "100 verified");
    c.dropConnection();
    await poll(() => recovery.length === 1, "the recovery outcome");
    const n = sub.verified;
    await poll(() => sub.verified >= n + 100 && sub.checksumOk, "100 more verified");
    assert.equal(sub.mismatches, 0);
    assert.equal(sub.resubscribes, 0);
  } finally { c.close(); await s.stop(); }
});

test("trades come typed with continuous seqs; bars update in place and close", opts, async () => {
  const s = await Server.start(binary, { marketRate: 2000 });
  const c = new TickcastClient(s.url);
  try {
    const trades = [];
    const bars = [];
    const gaps = [];
    c.on("trade", (t) => trades.push(t));
    c.on("bar", (b) => bars.push(b));
    c.on("gap", (g) => gaps.push(g));
    await c.connect();
    await c.subscribe(["trade.SYN1", "bar.1s.SYN1"]);
    await poll(() => trades.length >= 500 && bars.some((b) => b.closed), "500 trades and a closed bar");
    assert.deepEqual(gaps, []);
    const seqs = trades.map((t) => t.seq);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `trade seq after ${seqs[i - 1]}`);
    for (const t of trades.slice(0, 50)) {
      assert.equal(t.type, "trade");
      assert.ok(parseDecimal(t.price) > 0n && parseDecimal(t.size) > 0n, JSON.stringify(t));
      assert.ok(t.side === "buy" || t.side === "sell");
    }
    const closed = bars.find((b) => b.closed);
    assert.ok(parseDecimal(closed.low) <= parseDecimal(closed.close) && parseDecimal(closed.close) <= parseDecimal(closed.high));
    assert.ok(closed.trades >= 1);
    const barSeqs = bars.map((b) => b.seq);
    for (let i = 1; i < barSeqs.length; i++) assert.equal(barSeqs[i], barSeqs[i - 1] + 1);
  } finally { c.close(); await s.stop(); }
});

test("book(): a forbidden topic rejects typed; a topic already subscribed gets its snapshot", opts, async () => {
  const s = await Server.start(binary, { auth: true, keyTopics: ["ticker.*", "book.SYN1"] });
  const c = new TickcastClient(s.url, { token: API_KEY });
  try {
    await c.connect();
    await assert.rejects(c.book("book.OTHER"), (e) => e instanceof TickcastError && e.code === "forbidden");
    await c.subscribe(["book.SYN1"]);
    await sleep(200);
    const sub = await c.book("book.SYN1");
    await poll(() => sub.verified >= 20, "20 verified");
    assert.equal(sub.book.snapshots, 1);
    assert.equal(sub.mismatches, 0);
    await assert.rejects(c.book("book.SYN1"), /already kept/);
  } finally { c.close(); await s.stop(); }
});
