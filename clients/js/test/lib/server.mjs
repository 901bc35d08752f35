// Starts a real tickcast (binary: $TICKCAST_BIN, else target/{release,debug}/tickcast under $CARGO_TARGET_DIR or the
// workspace) on free loopback ports, with a tcp feed the tests publish to. No binary: skip, or fail when CI is set.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync, openSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const API_KEY = "sdk-test-key-0123456789";
/** The HS256 secret of servers started with `jwt: true`. */
export const JWT_SECRET = "sdk-test-hs256-secret-0123456789abcdef";

/** An HS256 JWT for JWT_SECRET granting `topics`, expiring `secs` from now. */
export function jwt(topics, secs) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "sdk-test", exp: Math.floor(Date.now() / 1000) + secs, topics })}`;
  return `${body}.${createHmac("sha256", JWT_SECRET).update(body).digest("base64url")}`;
}

export function findBinary() {
  if (process.env.TICKCAST_BIN) return process.env.TICKCAST_BIN;
  const targets = [process.env.CARGO_TARGET_DIR, join(ROOT, "target")].filter(Boolean);
  for (const t of targets) for (const p of ["release", "debug"]) if (existsSync(join(t, p, "tickcast"))) return join(t, p, "tickcast");
  if (process.env.CI) throw new Error("tickcast binary not found (set TICKCAST_BIN)");
  return null;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
    s.on("error", rej);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every 50 ms, at most 400 times (20 s). */
export async function poll(cond, what) {
  for (let i = 0; i < 400; i++) { if (cond()) return; await sleep(50); }
  throw new Error(`timed out waiting for ${what}`);
}

export class Server {
  /**
   * auth: an API key (API_KEY) allowed `keyTopics`; marketRate: the synthetic feed's book changes per second over
   * all symbols (default 200); bookDepth: [market] book_depth (default 25);
   * maxQueuedFrames: [backpressure] max_queued_frames (default 1024); policy: [backpressure] policy (conflate,
   * drop_oldest, disconnect); sendBuffer: [server] socket_send_buffer_bytes (a small one makes a client that stops
   * reading meet its queue's policy sooner); jwtAuth: HS256 JWTs too (JWT_SECRET, no clock leeway);
   * symbols: the synthetic feed's.
   */
  static async start(binary, { auth = false, jwtAuth = false, keyTopics = ["ticker.*"], marketRate, bookDepth, maxQueuedFrames, policy, sendBuffer, symbols = "SYN1" } = {}) {
    const s = new Server();
    s.binary = binary; s.symbols = symbols; s.port = await freePort(); s.feedPort = await freePort(); s.sent = 0; s.feed = null;
    s.dir = mkdtempSync(join(tmpdir(), "tickcast-js-"));
    let cfg = `[[feeds]]\nkind = "synthetic"\nname = "synthetic"\n${marketRate !== undefined ? `market_rate = ${marketRate}\n` : ""}\n[[feeds]]\nkind = "tcp"\nname = "pub"\nlisten = "127.0.0.1:${s.feedPort}"\nrequired = false\n`;
    if (bookDepth !== undefined) cfg += `\n[market]\nbook_depth = ${bookDepth}\n`;
    if (maxQueuedFrames !== undefined || policy) cfg += `\n[backpressure]\n${maxQueuedFrames !== undefined ? `max_queued_frames = ${maxQueuedFrames}\n` : ""}${policy ? `policy = "${policy}"\n` : ""}`;
    if (sendBuffer !== undefined) cfg += `\n[server]\nsocket_send_buffer_bytes = ${sendBuffer}\n`;
    if (auth) cfg += `\n[auth]\nenabled = true\n${jwtAuth ? `hs256_secret = "${JWT_SECRET}"\nleeway_secs = 0\n` : ""}\n[[auth.api_keys]]\nkey = "${API_KEY}"\ntopics = ${JSON.stringify(keyTopics)}\n`;
    s.config = join(s.dir, "tickcast.toml");
    writeFileSync(s.config, cfg);
    await s.spawn();
    return s;
  }
  get url() { return `ws://127.0.0.1:${this.port}/ws`; }
  async spawn() {
    const log = openSync(join(this.dir, "server.log"), "a");
    this.proc = spawn(this.binary, ["--listen", `127.0.0.1:${this.port}`, "--config", this.config, "--symbols", this.symbols, "--rate", "1"],
      { stdio: ["ignore", log, log] });
    for (let i = 0; i < 600; i++) {
      try { const r = await fetch(`http://127.0.0.1:${this.port}/healthz`); if (r.ok) return; } catch {}
      await sleep(50);
    }
    throw new Error("tickcast did not become healthy");
  }
  async stop() {
    this.feedDown();
    if (!this.proc) return;
    const p = this.proc; this.proc = null;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10000);
    await exited; clearTimeout(t);
  }
  async restart() { await this.stop(); await this.spawn(); }
  /** The value of one metric series, e.g. `tickcast_gap_markers_total{reason="conflated"}` (0 when absent). */
  async metric(series) {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    return line ? Number(line.slice(series.length + 1)) : 0;
  }
  /** Waits until the server's latest tick of `topic` has at least `seq` (a feed line is ingested a little after
   *  `publish` wrote it); auth off only. */
  async ingested(topic, seq = 1) {
    for (let i = 0; i < 400; i++) {
      const { topics } = await (await fetch(`http://127.0.0.1:${this.port}/topics`)).json();
      if (topics.some((t) => t.topic === topic && t.seq >= seq)) return;
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${topic} seq ${seq} on the server`);
  }
  async publish(topic, n) {
    if (!this.feed) {
      for (let i = 0; ; i++) {
        try {
          this.feed = await new Promise((res, rej) => { const c = connect(this.feedPort, "127.0.0.1", () => res(c)); c.on("error", rej); });
          break;
        } catch (e) { if (i > 200) throw e; await sleep(50); }
      }
    }
    let batch = "";
    for (let i = 0; i < n; i++) {
      this.sent++;
      const last = 100 + (this.sent % 1000) / 100;
      batch += `{"topic":"${topic}","bid":${(last - 0.01).toFixed(2)},"ask":${(last + 0.01).toFixed(2)},"last":${last.toFixed(2)},"size":${1 + this.sent % 100}}\n`;
    }
    await new Promise((r) => this.feed.write(batch, r));
  }
  feedDown() { if (this.feed) { this.feed.destroy(); this.feed = null; } }
}
