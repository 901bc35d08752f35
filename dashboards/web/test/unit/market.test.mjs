// Unit tests of the dashboard's own pure modules (candles, tape, ladder numbers, latency readout), in node:
//
//   node --test dashboards/web/test/unit/market.test.mjs
//
// The order book, its checksum and the clock offset estimate are the SDK's (clients/js, tested there); the
// dashboard loads its compiled copy from dashboards/web/sdk/.

import test from 'node:test';
import assert from 'node:assert/strict';
import { OrderBook } from '../../sdk/index.js';
import { CandleSeries } from '../../candles.js';
import { TradeTape } from '../../tape.js';
import { parseFloatSafe, spreadOf, sideTotals, isCrossed } from '../../ladder.js';
import { latencyStats, latencyReadout, fmtMs } from '../../latency.js';

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
  // A skip no marker announced comes from the SDK as an `unannounced` gap: shown, and counted apart.
  t.onGap({ topic: 'trade.T', from: 13, to: 13, reason: 'unannounced' });
  assert.ok(t.onTrade(tr(14)));
  assert.equal(t.jumps, 1, 'a jump without a marker is counted');
  assert.equal(t.gaps, 1, 'apart from the announced gaps');
  assert.equal(t.entries.length, 4);
  assert.equal(t.entries[0].seq, 14);
  assert.deepEqual(t.entries[1], { kind: 'gap', from: 13, to: 13, reason: 'unannounced' });
  assert.equal(t.takeAdded(), 4);
  assert.equal(t.takeAdded(), 0);
});

/** The SDK's book after a snapshot with these levels (checksum taken from a first copy, so it verifies). */
function bookOf(bids, asks) {
  const m = { type: 'book', topic: 'book.T', seq: 1, ts: 1, snapshot: true, depth: 10, bids, asks, checksum: 0 };
  const probe = new OrderBook('book.T');
  probe.apply(m);
  const b = new OrderBook('book.T');
  assert.equal(b.apply({ ...m, checksum: probe.checksum() }), 'ok');
  return b;
}

test('ladder helpers: exact spread, crossed check, cumulative totals, float only for widths', () => {
  const b = bookOf([['189.12', '300'], ['189.11', '150.5']], [['189.14', '200']]);
  const sp = spreadOf(b.bestBid, b.bestAsk);
  assert.equal(sp.text, '0.02');
  assert.ok(Math.abs(sp.bps - (0.02 / 189.13) * 1e4) < 1e-9);
  assert.equal(spreadOf(undefined, b.bestAsk), null);
  assert.deepEqual(sideTotals(b.bids(10)), [300, 450.5]);
  assert.equal(parseFloatSafe('x'), 0);
  assert.equal(isCrossed(b.bestBid, b.bestAsk), false);
  assert.equal(isCrossed({ price: '189.140' }, { price: '189.14' }), true, 'compared by value: a locked book');
  assert.equal(isCrossed(undefined, b.bestAsk), false);
});

test('latency stats: p50 and max of the samples given; none without samples', () => {
  const a = new Float64Array([900, 100, 500, 300, 700]);
  assert.deepEqual(latencyStats(a, 5), { p50: 500, max: 900 });
  assert.deepEqual(latencyStats(new Float64Array([5, 1, 9]), 2), { p50: 5, max: 5 }, 'only the first n count');
  assert.equal(latencyStats(a, 0), null);
  assert.equal(fmtMs(1234), '1.2');
  assert.equal(fmtMs(123456), '123');
  assert.equal(fmtMs(NaN), '–');
});

test('latency readout: states the uncertainty and what is measured; nothing before the clock is known', () => {
  const none = latencyReadout({ p50: 1000, max: 2000 }, null);
  assert.equal(none.text, '–', 'no figure from two unrelated clocks');
  assert.match(none.title, /Waiting for the first ping/);
  const clock = { offsetUs: 5_000_000, rttUs: 800, atUs: 0 };
  const r = latencyReadout({ p50: 1200, max: 4000 }, clock);
  assert.equal(r.text, '1.2 / 4.0 ms ±0.4');
  assert.match(r.title, /^Tick ingest on the server → receipt in this browser, p50 \/ max over the last second, ± 0\.4 ms\./);
  assert.match(r.title, /5000 ms behind the server's/);
  assert.match(r.title, /Never negative/);
  assert.match(latencyReadout(null, { offsetUs: -2500, rttUs: 100, atUs: 0 }).title, /2\.5 ms ahead of the server's/);
  assert.equal(latencyReadout(null, clock).text, '–', 'no tick in the last second');
});
