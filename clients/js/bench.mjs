// Messages per second one JS SDK client consumes in Node.
// Usage: `npm run build && node bench.mjs [TICKCAST_BIN] [N]`: starts a tickcast, publishes N ticks of one topic
// through its tcp feed and times the client from its first tick to its N-th (ticks plus seqs in gaps).
import { TickcastClient } from "./dist/index.js";
import { Server, findBinary } from "./test/lib/server.mjs";

const binary = process.argv[2] ?? findBinary();
const n = Number(process.argv[3] ?? 200000);
const s = await Server.start(binary);
const c = new TickcastClient(s.url);
let ticks = 0, gaps = 0, start = 0;
const done = new Promise((resolve) => {
  const check = () => { if (ticks + gaps >= n) resolve(); };
  c.on("tick", () => { if (++ticks === 1) start = performance.now(); check(); });
  c.on("gap", (g) => { gaps += g.to - g.from + 1; check(); });
});
await c.connect();
await c.subscribe(["ticker.BENCH"]);
for (let i = 0; i < n; i += 10000) await s.publish("ticker.BENCH", Math.min(10000, n - i));
await done;
const secs = (performance.now() - start) / 1000;
console.log(`node ${process.version}: ${ticks} ticks (${gaps} in gaps) in ${secs.toFixed(2)} s = ${Math.round(ticks / secs).toLocaleString("en")} msg/s`);
c.close();
await s.stop();
