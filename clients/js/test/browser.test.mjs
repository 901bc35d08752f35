// The SDK's dist/index.js in real headless Chromium (playwright-core from dashboards/web/test/, Debian's chromium):
// a page on a tiny loopback HTTP server imports it, connects with a token (the bearer.<token> subprotocol), receives
// ticks, gets a typed error, recovers after a dropped connection, and keeps an order book whose checksums all verify
// (BigInt decimals and the CRC-32 table in a browser). A second page sits behind a proxy that refuses WebSockets: the
// client falls back to the browser's own EventSource, resumes exactly after a cut and after a server restart, and a
// refused credential fails fast. A third page, on another origin than the server, reads /sse cross-origin (the
// server's CORS headers) and learns a refused token's 401 through a preflighted probe. Missing prerequisites skip,
// or fail under CI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Server, findBinary, API_KEY } from "./lib/server.mjs";
import { startProxy } from "./lib/proxy.mjs";

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PW = join(HERE, "../../dashboards/web/test/node_modules/playwright-core");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const binary = findBinary();
let skip = !binary ? "no tickcast binary" : !existsSync(PW) ? "playwright-core missing (npm ci in dashboards/web/test)"
  : !existsSync(CHROMIUM) ? "chromium missing" : false;
if (skip && process.env.CI) throw new Error(`browser SDK test prerequisite missing: ${skip}`);

/** Answers the test page at / and dist/index.js with the modules it imports (./book.js, ./sse.js, ...). */
function servePage(req, res) {
  const modules = new Set(readdirSync(join(HERE, "dist")).filter((f) => f.endsWith(".js")).map((f) => `/${f}`));
  if (modules.has(req.url)) {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(readFileSync(join(HERE, "dist", req.url.slice(1))));
  } else if (req.url === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>sdk</title>");
  } else return false;
  return true;
}

test("the SDK in headless Chromium: token subprotocol, ticks, typed error, recovery, a verified book", { skip, timeout: 90000 }, async () => {
  const { chromium } = createRequire(import.meta.url)(PW);
  const s = await Server.start(binary, { auth: true, keyTopics: ["ticker.*", "book.*"], marketRate: 2000 });
  const page_ = await startProxy(s.port, servePage); // the page's origin; its WebSocket goes straight to the server
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${page_.port}/`);
    await page.evaluate(async ({ url, key }) => {
      const { TickcastClient } = await import("/index.js");
      const c = new TickcastClient(url, { token: () => key, reconnectMinMs: 50, reconnectMaxMs: 200 });
      window.seen = { ticks: [], recovery: [], states: [], error: null };
      c.on("tick", (t) => window.seen.ticks.push(t.seq));
      c.on("recovery", (r) => window.seen.recovery.push(r));
      c.on("state", (st) => window.seen.states.push(st.state));
      await c.connect();
      await c.subscribe(["ticker.BRW"]);
      try { await c.subscribe(["ticker.BRW"], { heartbeatMs: 1 }); } catch (e) { window.seen.error = { name: e.name, code: e.code, field: e.field }; }
      window.client = c;
    }, { url: s.url, key: API_KEY });
    await s.publish("ticker.BRW", 10);
    await page.waitForFunction(() => window.seen.ticks.length >= 10, null, { timeout: 20000 });
    await page.evaluate(() => window.client.dropConnection());
    await s.publish("ticker.BRW", 10);
    await page.waitForFunction(() => window.seen.ticks.length >= 20, null, { timeout: 20000 });
    const seen = await page.evaluate(() => window.seen);
    assert.deepEqual(seen.ticks, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(seen.recovery, [{ topic: "ticker.BRW", recovered: true }]);
    assert.deepEqual(seen.error, { name: "TickcastError", code: "invalid_field", field: "heartbeat_ms" });
    assert.equal(seen.states.filter((x) => x === "connected").length, 2);

    await page.evaluate(async () => {
      window.bookSeen = { updates: 0, invalid: [] };
      window.bookSub = await window.client.book("book.SYN1", {
        onUpdate: () => window.bookSeen.updates++,
        onInvalid: (e) => window.bookSeen.invalid.push(e),
      });
    });
    await page.waitForFunction(() => window.bookSub.verified >= 1000, null, { timeout: 20000 });
    const book = await page.evaluate(() => ({
      verified: window.bookSub.verified, mismatches: window.bookSub.mismatches, ok: window.bookSub.checksumOk,
      updates: window.bookSeen.updates, invalid: window.bookSeen.invalid, spread: window.bookSub.book.spread,
      bid: window.bookSub.book.bestBid,
    }));
    assert.equal(book.mismatches, 0);
    assert.deepEqual(book.invalid, []);
    assert.ok(book.ok && book.verified >= 1000 && book.updates === book.verified, JSON.stringify(book));
    assert.match(book.spread, /^\d+\.\d+$/);
    assert.ok(book.bid && typeof book.bid.price === "string");
    await page.evaluate(() => window.client.close());
  } finally {
    await browser.close();
    await page_.close();
    await s.stop();
  }
});

test("in Chromium behind a proxy that refuses WebSockets: EventSource fallback, exact resume, restart, 401 fails fast",
  { skip, timeout: 90000 }, async () => {
    const { chromium } = createRequire(import.meta.url)(PW);
    const s = await Server.start(binary, { auth: true });
    const proxy = await startProxy(s.port, servePage); // the page and tickcast on one origin, as behind a proxy
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${proxy.port}/`);
      const fellBack = await page.evaluate(async ({ url, key }) => {
        // The browser's own EventSource, counted: the SDK must use it rather than its fetch reader.
        window.esUrls = [];
        const Native = window.EventSource;
        window.EventSource = class extends Native {
          constructor(u, o) { super(u, o); window.esUrls.push(String(u)); }
        };
        const { TickcastClient } = await import("/index.js");
        const c = new TickcastClient(url, { token: key, reconnectMinMs: 50, reconnectMaxMs: 300 });
        window.seen = { ticks: [], recovery: [], gaps: [] };
        c.on("tick", (t) => window.seen.ticks.push(t.seq));
        c.on("recovery", (r) => window.seen.recovery.push(r));
        c.on("gap", (g) => window.seen.gaps.push(g));
        await c.connect();
        await c.subscribe(["ticker.BRS"]);
        window.client = c;
        return c.transport;
      }, { url: proxy.url, key: API_KEY });
      assert.equal(fellBack, "sse");
      const wait = (n) => page.waitForFunction((k) => window.seen.ticks.length >= k, n, { timeout: 20000 });
      await s.publish("ticker.BRS", 20);
      await wait(20);
      await page.evaluate(() => window.client.dropConnection());
      await s.publish("ticker.BRS", 20);
      await wait(40);
      await s.restart();
      await page.waitForFunction(() => window.seen.recovery.length >= 2, null, { timeout: 20000 });
      await s.publish("ticker.BRS", 10);
      await wait(50);
      const seen = await page.evaluate(() => ({ ...window.seen, esUrls: window.esUrls }));
      const seqs = (n) => Array.from({ length: n }, (_, i) => i + 1);
      assert.deepEqual(seen.ticks, [...seqs(40), ...seqs(10)]);
      assert.deepEqual(seen.recovery, [
        { topic: "ticker.BRS", recovered: true },
        { topic: "ticker.BRS", recovered: false, reason: "epoch_changed" },
      ]);
      assert.deepEqual(seen.gaps, []);
      assert.ok(seen.esUrls.length >= 3, JSON.stringify(seen.esUrls));
      const resumed = new URL(seen.esUrls[1]);
      assert.equal(resumed.pathname, "/sse");
      assert.match(resumed.searchParams.get("last_event_id"), /^[a-z0-9]+\.20$/);
      assert.equal(resumed.searchParams.get("token"), API_KEY);

      const refused = await page.evaluate(async ({ url }) => {
        const { TickcastClient } = await import("/index.js");
        const out = [];
        for (const transport of ["auto", "sse"]) {
          const c = new TickcastClient(url, { token: "wrong", transport, reconnectMinMs: 10, reconnectMaxMs: 20 });
          let attempts = 0;
          c.on("state", (st) => { if (st.state === "connecting") attempts++; });
          const t0 = performance.now();
          try {
            await c.connect();
            await c.subscribe(["ticker.BRS"]);
            out.push({ transport, error: null });
          } catch (e) {
            await new Promise((r) => setTimeout(r, 200));
            out.push({ transport, name: e.name, code: e.code, status: e.status, ms: performance.now() - t0, attempts });
          }
          c.close();
        }
        return out;
      }, { url: proxy.url });
      for (const r of refused) {
        assert.deepEqual([r.name, r.code, r.status, r.attempts], ["TickcastError", "unauthorized", 401, 1], JSON.stringify(r));
        assert.ok(r.ms < 2000, JSON.stringify(r));
      }
      await page.evaluate(() => window.client.close());
    } finally {
      await browser.close();
      await proxy.close();
      await s.stop();
    }
  });

test("in Chromium on a page of another origin: EventSource reads /sse cross-origin, and a refused token fails fast",
  { skip, timeout: 90000 }, async () => {
    const { chromium } = createRequire(import.meta.url)(PW);
    const s = await Server.start(binary, { auth: true });
    const page_ = await startProxy(s.port, servePage); // the page's origin; the streams go straight to the server
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${page_.port}/`);
      assert.notEqual(new URL(s.url).port, String(page_.port), "the server is another origin than the page");
      await page.evaluate(async ({ url, key }) => {
        const { TickcastClient } = await import("/index.js");
        const c = new TickcastClient(url, { token: key, transport: "sse", reconnectMinMs: 50, reconnectMaxMs: 300 });
        window.seen = { ticks: [], gaps: [] };
        c.on("tick", (t) => window.seen.ticks.push(t.seq));
        c.on("gap", (g) => window.seen.gaps.push(g));
        await c.connect();
        await c.subscribe(["ticker.XOR"]);
        window.client = c;
      }, { url: s.url, key: API_KEY });
      await s.publish("ticker.XOR", 15);
      await page.waitForFunction(() => window.seen.ticks.length >= 15, null, { timeout: 20000 });
      const seen = await page.evaluate(() => window.seen);
      assert.deepEqual(seen.ticks, Array.from({ length: 15 }, (_, i) => i + 1));
      assert.deepEqual(seen.gaps, []);

      const refused = await page.evaluate(async ({ url }) => {
        const { TickcastClient } = await import("/index.js");
        const c = new TickcastClient(url, { token: "wrong", transport: "sse", reconnectMinMs: 10, reconnectMaxMs: 20 });
        let attempts = 0;
        c.on("state", (st) => { if (st.state === "connecting") attempts++; });
        try {
          await c.connect();
          await c.subscribe(["ticker.XOR"]);
          return { error: null };
        } catch (e) {
          await new Promise((r) => setTimeout(r, 200));
          return { name: e.name, code: e.code, status: e.status, attempts };
        } finally {
          c.close();
        }
      }, { url: s.url });
      assert.deepEqual(refused, { name: "TickcastError", code: "unauthorized", status: 401, attempts: 1 });
      await page.evaluate(() => window.client.close());
    } finally {
      await browser.close();
      await page_.close();
      await s.stop();
    }
  });
