// The SDK's dist/index.js in real headless Chromium (playwright-core from dashboards/web/test/, Debian's chromium):
// a page on a tiny loopback HTTP server imports it, connects with a token (the bearer.<token> subprotocol), receives
// ticks, gets a typed error, recovers after a dropped connection, and keeps an order book whose checksums all verify
// (BigInt decimals and the CRC-32 table in a browser). Missing prerequisites skip, or fail under CI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Server, findBinary, API_KEY } from "./lib/server.mjs";

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PW = join(HERE, "../../dashboards/web/test/node_modules/playwright-core");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const binary = findBinary();
let skip = !binary ? "no tickcast binary" : !existsSync(PW) ? "playwright-core missing (npm ci in dashboards/web/test)"
  : !existsSync(CHROMIUM) ? "chromium missing" : false;
if (skip && process.env.CI) throw new Error(`browser SDK test prerequisite missing: ${skip}`);

test("the SDK in headless Chromium: token subprotocol, ticks, typed error, recovery, a verified book", { skip, timeout: 90000 }, async () => {
  const { chromium } = createRequire(import.meta.url)(PW);
  const s = await Server.start(binary, { auth: true, keyTopics: ["ticker.*", "book.*"], marketRate: 2000 });
  const modules = new Set(readdirSync(join(HERE, "dist")).filter((f) => f.endsWith(".js")).map((f) => `/${f}`));
  const page_ = createServer((req, res) => {
    if (modules.has(req.url)) { // dist/index.js and the modules it imports (./book.js)
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(readFileSync(join(HERE, "dist", req.url.slice(1))));
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>sdk</title>");
    }
  });
  await new Promise((r) => page_.listen(0, "127.0.0.1", r));
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${page_.address().port}/`);
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
    page_.close();
    await s.stop();
  }
});
