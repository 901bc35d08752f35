// What one JS SDK client consumes in Node, and what it costs.
// Usage: `npm run build && node bench.mjs [TICKCAST_BIN] [N] [RATE] [TRANSPORT]`: starts a tickcast (use a release
// build), subscribes one client (TRANSPORT websocket, the default, or sse) to one topic and publishes N ticks (default
// 200000) through the server's tcp feed from a separate process (so the publisher's CPU is not the client's), at RATE
// ticks/s (default 0: as fast as it can write). Over the window from the client's first tick to its last it reports
// messages/s, the client process's CPU (process.cpuUsage: user + system) per message and as % of one core, and how
// far behind ingest the ticks were when the client handled them (tick `ts` to handling, so it includes the server).
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";

if (process.argv[2] === "--publish") {
  // The publisher: `--publish PORT TOPIC N RATE`, N ticks in batches every 10 ms at RATE/s, or as fast as it can.
  const [port, topic, n, rate] = [Number(process.argv[3]), process.argv[4], Number(process.argv[5]), Number(process.argv[6])];
  const sock = await new Promise((res, rej) => { const c = connect(port, "127.0.0.1", () => res(c)); c.on("error", rej); });
  const line = (i) => { const last = 100 + (i % 1000) / 100; return `{"topic":"${topic}","bid":${(last - 0.01).toFixed(2)},"ask":${(last + 0.01).toFixed(2)},"last":${last.toFixed(2)},"size":${1 + (i % 100)}}\n`; };
  const write = (s) => new Promise((r) => { if (sock.write(s)) r(); else sock.once("drain", r); });
  const t0 = performance.now();
  for (let sent = 0; sent < n;) {
    const due = rate > 0 ? Math.min(n, Math.floor(((performance.now() - t0) / 1000) * rate) + 1) : Math.min(n, sent + 2000);
    let batch = "";
    for (; sent < due; sent++) batch += line(sent);
    if (batch) await write(batch);
    if (rate > 0) await new Promise((r) => setTimeout(r, 10));
  }
  sock.end();
  process.exit(0);
}

const { TickcastClient } = await import("./dist/index.js");
const { Server, findBinary } = await import("./test/lib/server.mjs");
const binary = process.argv[2] ?? findBinary();
const n = Number(process.argv[3] ?? 200000);
const rate = Number(process.argv[4] ?? 0);
const transport = process.argv[5] ?? "websocket";
const s = await Server.start(binary);
const c = new TickcastClient(s.url, { transport });
let ticks = 0, gaps = 0, start = 0, cpu0, lagSum = 0, lagMax = 0;
const lags = [];
const done = new Promise((resolve) => {
  const check = () => { if (ticks + gaps >= n) resolve(); };
  c.on("tick", (t) => {
    if (++ticks === 1) { start = performance.now(); cpu0 = process.cpuUsage(); }
    const lag = (performance.timeOrigin + performance.now()) * 1000 - t.ts; // µs behind ingest (same machine clock)
    lagSum += lag; if (lag > lagMax) lagMax = lag;
    if (ticks % 100 === 0) lags.push(lag);
    check();
  });
  c.on("gap", (g) => { gaps += g.to - g.from + 1; check(); });
});
await c.connect();
await c.subscribe(["ticker.BENCH"]);
const pub = spawn(process.execPath, [fileURLToPath(import.meta.url), "--publish", String(s.feedPort), "ticker.BENCH", String(n), String(rate)], { stdio: "inherit" });
const published = new Promise((r) => pub.once("exit", r));
await done;
const cpu = process.cpuUsage(cpu0);
const secs = (performance.now() - start) / 1000;
const cpuUs = cpu.user + cpu.system;
lags.sort((a, b) => a - b);
const ms = (us) => (us / 1000).toFixed(1);
console.log(`node ${process.version}, ${c.transport}, rate ${rate > 0 ? `${rate}/s` : "max"}: ${ticks} ticks (${gaps} seqs in gaps) in ${secs.toFixed(2)} s`
  + ` = ${Math.round(ticks / secs).toLocaleString("en")} msg/s; client CPU ${(cpuUs / 1000).toFixed(0)} ms = ${(cpuUs / ticks).toFixed(2)} µs/msg`
  + ` = ${((cpuUs / 1e6 / secs) * 100).toFixed(1)}% of one core; behind ingest: mean ${ms(lagSum / ticks)} ms,`
  + ` p50 ${ms(lags[Math.floor(lags.length / 2)] ?? 0)} ms, p99 ${ms(lags[Math.floor(lags.length * 0.99)] ?? 0)} ms, max ${ms(lagMax)} ms`);
await published;
c.close();
await s.stop();
