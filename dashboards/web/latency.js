// The board's latency readout: what it measures, and in words. Pure logic, no DOM.
//
// A tick's `ts` is the server's clock at ingest; the browser receives it on its own clock. The SDK moves the
// receipt time onto the server's clock by an offset estimated from pings (NTP style: the pong carries the server's
// time; the quickest round trip of the last few bounds the error to ± half of it), so the figure is the delay
// ingest → receipt, not the difference between two clocks. Estimation error can still push a fast tick below zero:
// it is shown as 0, and the readout states the ± it is good for.

/** The p50 and max of `n` samples in a (scratch, sortable) Float64Array; null when there are none. */
export function latencyStats(samples, n) {
  if (n <= 0) return null;
  const a = samples.subarray(0, n).sort();
  return { p50: a[n >> 1], max: a[n - 1] };
}

/** µs as milliseconds for the readout: one decimal under 100 ms. */
export function fmtMs(us) {
  if (!Number.isFinite(us)) return '–';
  const ms = us / 1000;
  return Math.abs(ms) >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

/**
 * The header readout and its tooltip. `stats`: latencyStats of the last second (null: no tick); `clock`: the SDK's
 * estimate ({offsetUs, rttUs}, null before the first pong).
 */
export function latencyReadout(stats, clock) {
  if (!clock) {
    return {
      text: '–',
      title: 'Tick ingest on the server → receipt in this browser. Waiting for the first ping round trip to '
        + 'measure the offset between the server\'s clock and this browser\'s.',
    };
  }
  const pm = fmtMs(clock.rttUs / 2);
  const off = Math.abs(clock.offsetUs);
  const side = clock.offsetUs >= 0 ? 'behind' : 'ahead of';
  const title = 'Tick ingest on the server → receipt in this browser, p50 / max over the last second, '
    + `± ${pm} ms. This browser's clock is ${fmtMs(off)} ms ${side} the server's (measured from pings: the quickest `
    + `round trip of the last 8 was ${fmtMs(clock.rttUs)} ms, so every figure is right within ± half of it); `
    + 'receipt times are corrected by it. Never negative: a figure the estimate puts below 0 shows as 0.';
  if (!stats) return { text: '–', title };
  return { text: `${fmtMs(stats.p50)} / ${fmtMs(stats.max)} ms ±${pm}`, title };
}
