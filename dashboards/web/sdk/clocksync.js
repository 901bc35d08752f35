/**
 * The ping loop behind `clockSyncMs`: while connected, a `ping` at once and then every `intervalMs`; each pong's
 * server time becomes a {@link ClockSample} in a window whose min-round-trip sample is the estimate. A ping that gets
 * no reply in time means the link is dead (a half-open TCP connection can look open for minutes): `onDead` is called
 * so the client drops it and reconnects.
 * @packageDocumentation
 */
import { ClockWindow, clockSample, localNowUs } from "./clock.js";
export class ClockSync {
    constructor(intervalMs, io) {
        this.intervalMs = intervalMs;
        this.io = io;
        this.window = new ClockWindow(8);
        this.timer = null;
        this.inFlight = false;
    }
    /** Connected: forget the old link's samples (the route, or the server, may differ) and start pinging. */
    start() {
        this.stop();
        this.window.clear();
        void this.once();
        this.timer = setInterval(() => void this.once(), this.intervalMs);
    }
    stop() {
        if (this.timer)
            clearInterval(this.timer);
        this.timer = null;
    }
    async once() {
        if (this.inFlight)
            return; // a slow pong is still owed: one at a time, so round trips are not queued behind each other
        this.inFlight = true;
        const sent = localNowUs();
        try {
            const pong = await this.io.ping();
            const s = clockSample(sent, localNowUs(), pong.ts);
            const best = s && this.window.add(s);
            if (best)
                this.io.onSample(best);
        }
        catch (e) {
            if (this.timer && this.io.timedOut(e))
                this.io.onDead();
        }
        finally {
            this.inFlight = false;
        }
    }
}
