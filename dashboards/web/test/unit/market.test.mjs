// Unit tests of the dashboard's pure market-data modules (book maintenance, checksum, candles, tape), in node:
//
//   node --test dashboards/web/test/unit/market.test.mjs
//
// The checksum examples are the two messages of docs/protocol.md ("Market data"), which the server's own unit test
// (crates/core/src/market/book.rs, checksums_in_protocol_md_match) pins too: page and server agree on them.

import test from 'node:test';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { crc32 } from '../../crc32.js';
import { parseDecimal, formatScaled, checksumDigits } from '../../decimal.js';
import { OrderBook, BookError } from '../../book.js';
import { BookFeed, Outcome } from '../../bookfeed.js';
import { CandleSeries } from '../../candles.js';
import { TradeTape } from '../../tape.js';
import { parseFloatSafe, spreadOf, sideTotals } from '../../ladder.js';

// The two book messages of docs/protocol.md, read from the page itself, so the test follows the documentation.
const DOC_BOOK = fs.readFileSync(new URL('../../../../docs/protocol.md', import.meta.url), 'utf8')
  // Server messages carry a checksum; the feed lines of "Publishing books and trades" do not.
  .split('\n').filter((l) => l.startsWith('{"type":"book"') && l.includes('"checksum"')).map((l) => JSON.parse(l));
const [DOC_SNAPSHOT, DOC_DELTA] = DOC_BOOK;

test('crc32 matches the standard check values (zlib crc32)', () => {
  assert.equal(crc32('123456789'), 0xcbf43926);
  assert.equal(crc32(''), 0);
  assert.equal(crc32('The quick brown fox jumps over the lazy dog'), 0x414fa339);
});

test('decimals are exact and keyed by numeric value', () => {
  assert.equal(parseDecimal('1.50').v, parseDecimal('1.5').v);
  assert.equal(parseDecimal('1.50').scale, 2);
  assert.notEqual(parseDecimal('0.1').v + parseDecimal('0.2').v, parseDecimal('0.30000000000000004')?.v);
  assert.equal(parseDecimal('0.1').v + parseDecimal('0.2').v, parseDecimal('0.3').v);
  assert.ok(parseDecimal('189.13').v > parseDecimal('189.12999999999999').v);
  for (const bad of ['', '-', '1.', '.5', '1e5', '+1', ' 1', 'NaN', '1.0000000000000000001', 5]) {
    assert.equal(parseDecimal(bad), null, `refuses ${JSON.stringify(bad)}`);
  }
  assert.equal(formatScaled(parseDecimal('189.14').v - parseDecimal('189.12').v, 2), '0.02');
  assert.equal(formatScaled(parseDecimal('64001.0').v - parseDecimal('64000.5').v, 1), '0.5');
  assert.equal(formatScaled(parseDecimal('-0.05').v, 3), '-0.050');
  assert.equal(formatScaled(0n, 0), '0');
});

test('checksum digits drop the dot and leading zeros (Kraken v2)', () => {
  // The cases of crates/core/src/market/decimal.rs
  assert.equal(checksumDigits('0.05005'), '5005');
  assert.equal(checksumDigits('0.00000500'), '500');
  assert.equal(checksumDigits('45285.2'), '452852');
  assert.equal(checksumDigits('0.00100000'), '100000');
});

test('the two messages of docs/protocol.md verify', () => {
  assert.equal(DOC_BOOK.length, 2, 'docs/protocol.md shows a book snapshot and a delta');
  assert.equal(DOC_SNAPSHOT.snapshot, true);
  assert.equal(DOC_SNAPSHOT.checksum, 2238815152);
  assert.equal(DOC_DELTA.checksum, 878852093);
  const b = new OrderBook();
  b.applySnapshot(DOC_SNAPSHOT.bids, DOC_SNAPSHOT.asks);
  assert.equal(b.checksum(), 2238815152);
  b.applyDelta(DOC_DELTA.bids, DOC_DELTA.asks);
  assert.equal(b.checksum(), 878852093);
  assert.deepEqual(b.topBids(10), []);
  assert.equal(b.topAsks(10)[0].px, '64001.0');

  const f = new BookFeed('book.BTC-USD');
  assert.equal(f.onBook(DOC_SNAPSHOT), Outcome.OK);
  assert.equal(f.onBook(DOC_DELTA), Outcome.OK);
  assert.equal(f.verified, 2);
  assert.equal(f.mismatches, 0);
});

test('checksum concatenates asks then bids', () => {
  const b = new OrderBook();
  b.applySnapshot([['0.05005', '0.00000500']], [['0.05015', '0.00100000']]);
  assert.equal(b.checksumInput(), '50151000005005500');
  assert.equal(b.checksum(), crc32('50151000005005500'));
});

test('levels are ordered best first, keyed by value, removed by size 0, and trimmed to depth', () => {
  const b = new OrderBook();
  b.applySnapshot([['99.5', '2'], ['100.0', '1'], ['98', '1']], [['101', '4'], ['100.5', '3']], 3);
  assert.deepEqual(b.topBids(10).map((l) => l.px), ['100.0', '99.5', '98']);
  assert.deepEqual(b.topAsks(10).map((l) => l.px), ['100.5', '101']);
  // "99.50" is the level "99.5": removed, not added
  b.applyDelta([['99.50', '0']], []);
  assert.deepEqual(b.topBids(10).map((l) => l.px), ['100.0', '98']);
  // "100" updates "100.0", and the new spelling is the one checksummed
  b.applyDelta([['100', '5']], []);
  assert.deepEqual(b.topBids(10).map((l) => [l.px, l.sz]), [['100', '5'], ['98', '1']]);
  // adding better levels past the depth pushes the worst one out
  b.applyDelta([['99.9', '1'], ['99.8', '1']], [['100.6', '1'], ['100.4', '1']]);
  assert.deepEqual(b.topBids(10).map((l) => l.px), ['100', '99.9', '99.8']);
  assert.deepEqual(b.topAsks(10).map((l) => l.px), ['100.4', '100.5', '100.6']);
  // removing a level of an absent price changes nothing
  b.applyDelta([], [['200', '0']]);
  assert.equal(b.topAsks(10).length, 3);
  assert.equal(b.isCrossed(), false);
});

test('a malformed message is refused and leaves the book unchanged', () => {
  const b = new OrderBook();
  b.applySnapshot([['10', '1']], [['11', '1']]);
  const before = b.checksum();
  assert.throws(() => b.applyDelta([['10', '-1']], []), BookError);
  assert.throws(() => b.applyDelta([['9', '1'], ['x', '1']], []), BookError);
  assert.throws(() => b.applySnapshot([['10', '0']], []), BookError);
  assert.throws(() => b.applyDelta('nope', []), BookError);
  assert.equal(b.checksum(), before);
  assert.equal(b.topBids(10).length, 1);
});

test('the checksum covers only ten levels each side', () => {
  // bids 0.1 .. 2.0 in tenths, asks 3.0 .. 5.0
  const bidLevels = Array.from({ length: 20 }, (_, i) => [formatScaled(parseDecimal(String(i + 1)).v / 10n, 1), '1']);
  const askLevels = Array.from({ length: 21 }, (_, i) => [formatScaled(parseDecimal(String(30 + i)).v / 10n, 1), '1']);
  const a = new OrderBook();
  a.applySnapshot(bidLevels, askLevels, 25);
  const b = new OrderBook();
  b.applySnapshot(bidLevels, askLevels, 25);
  b.applyDelta([['0.1', '0']], [['5.0', '0']]);
  assert.equal(a.checksum(), b.checksum());
  b.applyDelta([['2.0', '2']], []);
  assert.notEqual(a.checksum(), b.checksum());
});

test('many random deltas equal a rebuilt snapshot (same levels, same checksum)', () => {
  let seed = 42;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const live = new OrderBook();
  live.applySnapshot([], [], 15);
  for (let i = 0; i < 2000; i++) {
    const bids = [];
    const asks = [];
    for (let k = 1 + rnd(5); k > 0; k--) {
      // bids below 100, asks above, as the server would never cross; mixed spellings of the same prices
      const tick = rnd(200);
      const px = (800 + tick) / 10;
      const spell = rnd(2) ? px.toFixed(1) : px.toFixed(2);
      const sz = rnd(5) ? (rnd(500) / 100).toFixed(2) : '0';
      if (rnd(2)) bids.push([spell, sz]);
      else asks.push([((1000 + tick) / 10).toFixed(rnd(2) + 1), sz]);
    }
    live.applyDelta(bids, asks);
    assert.ok(live.topBids(99).length <= 15 && live.topAsks(99).length <= 15);
  }
  const rebuilt = new OrderBook();
  rebuilt.applySnapshot(live.topBids(99).map((l) => [l.px, l.sz]), live.topAsks(99).map((l) => [l.px, l.sz]), 15);
  assert.deepEqual(rebuilt.topBids(99), live.topBids(99));
  assert.deepEqual(rebuilt.topAsks(99), live.topAsks(99));
  assert.equal(rebuilt.checksum(), live.checksum());
});

/** A consistent book stream: each message carries the checksum of a reference book after it. */
function streamOf(n, depth = 5) {
  const ref = new OrderBook();
  const msgs = [];
  const bids = [['100.00', '3'], ['99.99', '2']];
  const asks = [['100.01', '1']];
  ref.applySnapshot(bids, asks, depth);
  msgs.push({ type: 'book', topic: 'book.T', seq: 1, snapshot: true, depth, bids, asks, checksum: ref.checksum() });
  for (let s = 2; s <= n; s++) {
    const d = { bids: [[(99.9 - s / 100).toFixed(2), String(s)]], asks: [[(100.01 + s / 100).toFixed(2), s % 3 ? '1' : '0']] };
    ref.applyDelta(d.bids, d.asks);
    msgs.push({ type: 'book', topic: 'book.T', seq: s, snapshot: false, ...d, checksum: ref.checksum() });
  }
  return { msgs, ref };
}

test('a consistent stream verifies every message; its book equals the reference', () => {
  const { msgs, ref } = streamOf(40);
  const f = new BookFeed('book.T');
  for (const m of msgs) assert.equal(f.onBook(m), Outcome.OK, `seq ${m.seq}`);
  assert.equal(f.verified, 40);
  assert.equal(f.state, 'live');
  assert.equal(f.book.checksum(), ref.checksum());
  assert.ok(f.book.topBids(99).length <= 5);
  // a duplicate is ignored, not applied twice
  assert.equal(f.onBook(msgs[39]), Outcome.IGNORED);
});

test('a wrong checksum is a mismatch; deltas wait for the next snapshot', () => {
  const { msgs } = streamOf(10);
  const f = new BookFeed('book.T');
  f.onBook(msgs[0]);
  f.onBook(msgs[1]);
  assert.equal(f.onBook({ ...msgs[2], checksum: msgs[2].checksum ^ 1 }), Outcome.MISMATCH);
  assert.equal(f.mismatches, 1);
  assert.equal(f.state, 'waiting');
  assert.equal(f.onBook(msgs[3]), Outcome.IGNORED);
  assert.match(f.lastProblem, /checksum mismatch at seq 3/);
  // a later snapshot of the same book resumes it
  const snap = { ...msgs[0], seq: 5, bids: [['1', '1']], asks: [['2', '1']] };
  const ref = new OrderBook();
  ref.applySnapshot(snap.bids, snap.asks);
  assert.equal(f.onBook({ ...snap, checksum: ref.checksum() }), Outcome.OK);
  assert.equal(f.state, 'live');
  assert.equal(f.seq, 5);
});

test('a gap marker waits for the snapshot after it; a seq jump without one is reported', () => {
  const { msgs } = streamOf(10);
  const f = new BookFeed('book.T');
  f.onBook(msgs[0]);
  f.onBook(msgs[1]);
  f.onGap({ type: 'gap', topic: 'book.T', from: 3, to: 5, reason: 'resync' });
  assert.equal(f.state, 'waiting');
  assert.equal(f.onBook(msgs[5]), Outcome.IGNORED);
  const g = new BookFeed('book.T');
  g.onBook(msgs[0]);
  assert.equal(g.onBook(msgs[2]), Outcome.JUMP);
  assert.equal(g.jumps, 1);
  assert.equal(g.state, 'waiting');
  // a malformed message is reported and not applied
  const h = new BookFeed('book.T');
  h.onBook(msgs[0]);
  assert.equal(h.onBook({ ...msgs[1], bids: [['1.2.3', '1']] }), Outcome.MALFORMED);
  assert.equal(h.state, 'waiting');
});

test('a snapshot while live replaces the book (a server resync without skipped seqs); older deltas are ignored', () => {
  const { msgs } = streamOf(10);
  const f = new BookFeed('book.T');
  for (const m of msgs.slice(0, 4)) f.onBook(m);
  const ref = new OrderBook();
  const snap = { type: 'book', topic: 'book.T', seq: 8, snapshot: true, depth: 5, bids: [['50', '1']], asks: [['51', '2']] };
  ref.applySnapshot(snap.bids, snap.asks, 5);
  assert.equal(f.onBook({ ...snap, checksum: ref.checksum() }), Outcome.OK);
  assert.deepEqual(f.book.topBids(10).map((l) => l.px), ['50']);
  // deltas the snapshot already covers (seq <= 8) are not applied again
  assert.equal(f.onBook(msgs[6]), Outcome.IGNORED);
  assert.equal(f.onBook(msgs[7]), Outcome.IGNORED);
  assert.equal(f.seq, 8);
  assert.equal(f.state, 'live');
});

const bar = (start, close, closed = false, extra = {}) => ({
  type: 'bar', topic: 'bar.1s.T', seq: 1, start, open: '10.00', high: '10.50', low: '9.50', close, volume: '100',
  vwap: '10.01', trades: 3, closed, ...extra,
});

test('candles: the live bar is updated in place, closed:true finalizes it, late revisions replace by start', () => {
  const s = new CandleSeries(3);
  assert.equal(s.apply(bar(1_000_000, '10.10')), 'new');
  assert.equal(s.apply(bar(1_000_000, '10.20')), 'update');
  assert.equal(s.candles.length, 1);
  assert.equal(s.candles[0].close, '10.20');
  assert.equal(s.apply(bar(1_000_000, '10.25', true)), 'update');
  assert.equal(s.candles[0].closed, true);
  assert.equal(s.apply(bar(2_000_000, '10.30')), 'new');
  // a late trade revises the bar that just closed (same start, closed:true)
  assert.equal(s.apply(bar(1_000_000, '10.25', true, { volume: '150' })), 'update');
  assert.equal(s.candles[0].volume, '150');
  assert.equal(s.candles[0].v, 150);
  assert.equal(s.revisions, 1);
  assert.equal(s.apply(bar(3_000_000, '10.40')), 'new');
  assert.equal(s.apply(bar(4_000_000, '10.50')), 'new');
  assert.deepEqual(s.candles.map((c) => c.start), [2_000_000, 3_000_000, 4_000_000]);
  assert.equal(s.apply(bar(1_000_000, '10.25', true)), 'old');
  assert.equal(s.apply({ ...bar(5_000_000, '1'), high: 12 }), 'bad');
  assert.deepEqual(s.last(2).map((c) => c.start), [3_000_000, 4_000_000]);
});

test('tape: newest first, bounded, gaps shown where trades are missing', () => {
  const t = new TradeTape(4);
  const tr = (seq, side = 'buy') => ({ type: 'trade', topic: 'trade.T', seq, ts: 1, price: '1.5', size: '10', side, trade_id: 't' + seq });
  assert.ok(t.onTrade(tr(7)));
  assert.ok(t.onTrade(tr(8, 'sell')));
  assert.ok(!t.onTrade(tr(8)), 'duplicate ignored');
  t.onGap({ type: 'gap', topic: 'trade.T', from: 9, to: 11, reason: 'dropped' });
  assert.ok(t.onTrade(tr(12)));
  assert.equal(t.jumps, 0);
  assert.equal(t.missed, 3);
  assert.deepEqual(t.entries.map((e) => e.kind === 'gap' ? `gap ${e.from}-${e.to}` : e.seq), [12, 'gap 9-11', 8, 7]);
  assert.ok(t.onTrade(tr(14)));
  assert.equal(t.jumps, 1, 'a jump without a marker is counted');
  assert.equal(t.entries.length, 4);
  assert.equal(t.entries[0].seq, 14);
  assert.equal(t.takeAdded(), 4);
  assert.equal(t.takeAdded(), 0);
});

test('ladder helpers: exact spread, cumulative totals, float only for widths', () => {
  const b = new OrderBook();
  b.applySnapshot([['189.12', '300'], ['189.11', '150.5']], [['189.14', '200']]);
  const sp = spreadOf(b.topBids(1)[0], b.topAsks(1)[0]);
  assert.equal(sp.text, '0.02');
  assert.ok(Math.abs(sp.bps - (0.02 / 189.13) * 1e4) < 1e-9);
  assert.equal(spreadOf(undefined, b.topAsks(1)[0]), null);
  assert.deepEqual(sideTotals(b.topBids(10)), [300, 450.5]);
  assert.equal(parseFloatSafe('x'), 0);
});
