/**
 * The ping loop behind `clockSyncMs`: while connected, a `ping` at once and then every `intervalMs`; each pong's
 * server time becomes a {@link ClockSample} in a window whose min-round-trip sample is the estimate. A ping that gets
 * no reply in time means the link is dead (a half-open TCP connection can look open for minutes): `onDead` is called
 * so the client drops it and reconnects.
 * @packageDocumentation
 */

import { ClockWindow, clockSample, localNowUs, type ClockSample } from "./clock.js";

/** What the loop needs from the client. */
export interface ClockSyncIo {
  /** Sends a ping; resolves with the pong, rejects on a timeout (`timedOut` true) or a closed connection. */
  ping: () => Promise<Record<string, any>>;
  /** A new best estimate (called after every usable pong). */
  onSample: (best: ClockSample) => void;
  /** No pong within the request timeout. */
  onDead: () => void;
  /** Whether a rejection was the request timing out (not the connection going away). */
  timedOut: (err: unknown) => boolean;
}

export class ClockSync {
  readonly window = new ClockWindow(8);
  private timer: ReturnType<typeof setInterval> | null = null;
  private inFlight = false;

  constructor(private readonly intervalMs: number, private readonly io: ClockSyncIo) {}

  /** Connected: forget the old link's samples (the route, or the server, may differ) and start pinging. */
  start(): void {
    this.stop();
    this.window.clear();
    void this.once();
    this.timer = setInterval(() => void this.once(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async once(): Promise<void> {
    if (this.inFlight) return; // a slow pong is still owed: one at a time, so round trips are not queued behind each other
    this.inFlight = true;
    const sent = localNowUs();
    try {
      const pong = await this.io.ping();
      const s = clockSample(sent, localNowUs(), pong.ts);
      const best = s && this.window.add(s);
      if (best) this.io.onSample(best);
    } catch (e) {
      if (this.timer && this.io.timedOut(e)) this.io.onDead();
    } finally {
      this.inFlight = false;
    }
  }
}
