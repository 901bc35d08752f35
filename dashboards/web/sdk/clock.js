/**
 * Clock offset between this machine and the server, NTP style, from `ping`/`pong` round trips: the pong carries the
 * server's clock (`ts`, unix µs). Pure functions and one small window; {@link TickcastClient} pings and feeds it when
 * `clockSyncMs` is set. Why: a tick's `ts` is the server's ingest time, so "now - ts" on another machine mixes real
 * delay with the difference between the two clocks, which can be seconds and of either sign.
 * @packageDocumentation
 */
/**
 * The sample of one round trip, or null when it is unusable (no server time, or a round trip that went backwards).
 * The server answered somewhere between sending and receiving; assuming the middle errs by at most half the trip.
 */
export function clockSample(sentUs, receivedUs, serverUs) {
    if (typeof serverUs !== "number" || !Number.isFinite(serverUs) || serverUs <= 0)
        return null;
    const rttUs = receivedUs - sentUs;
    if (!Number.isFinite(rttUs) || rttUs < 0)
        return null;
    return { offsetUs: serverUs - (sentUs + receivedUs) / 2, rttUs, atUs: receivedUs };
}
/**
 * The best estimate among recent samples: the one with the smallest round trip (queueing only ever adds delay, and
 * adds it unevenly, so the quickest trip bounds the offset most tightly). null when there is none.
 */
export function bestSample(samples) {
    let best = null;
    for (const s of samples)
        if (!best || s.rttUs < best.rttUs)
            best = s;
    return best;
}
/**
 * Ingest (`tsUs`, server clock) to receipt (`receivedUs`, local clock), with `receivedUs` moved onto the server's
 * clock by the sample's offset; clamped at 0. NaN latency when `tsUs` is not a time.
 */
export function correctedLatency(tsUs, receivedUs, clock) {
    const raw = receivedUs + clock.offsetUs - tsUs;
    const latencyUs = Number.isFinite(tsUs) && tsUs > 0 && Number.isFinite(raw) ? Math.max(0, raw) : NaN;
    return { latencyUs, uncertaintyUs: clock.rttUs / 2 };
}
/** The last `size` samples (a fixed window, so an old lucky trip does not outlive a clock step or a route change). */
export class ClockWindow {
    constructor(
    /** How many of the latest samples the window keeps. */
    size = 8) {
        this.size = size;
        this.samples = [];
    }
    /** Adds a sample, dropping the oldest beyond the window; returns the best estimate now. */
    add(s) {
        this.samples.push(s);
        if (this.samples.length > this.size)
            this.samples.shift();
        return this.best();
    }
    /** The min-round-trip sample of the window, or null before any. */
    best() {
        return bestSample(this.samples);
    }
    /** Forgets every sample (another server may answer after a reconnect). */
    clear() {
        this.samples.length = 0;
    }
}
/** Local wall-clock time in µs, sub-millisecond where the platform has it (`performance`), else from Date.now(). */
export function localNowUs() {
    const p = globalThis.performance;
    if (p && typeof p.now === "function" && typeof p.timeOrigin === "number")
        return (p.timeOrigin + p.now()) * 1000;
    return Date.now() * 1000;
}
