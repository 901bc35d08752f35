// The npm pack tarball as a user gets it: installed (with ws) into an empty folder, its README examples (the first
// one, and the "Order books" one against a server whose synthetic feed publishes book.AAPL) run there; and the first
// one again once ws is uninstalled (Node 20 has no WebSocket of its own: the client goes on over SSE).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Server, findBinary, API_KEY } from "./lib/server.mjs";

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const binary = findBinary();

test("npm pack tarball runs the README examples", { skip: binary ? false : "no tickcast binary", timeout: 240000 }, async () => {
  const s = await Server.start(binary, { auth: true });
  const market = await Server.start(binary, { symbols: "AAPL", marketRate: 1000 }); // book.AAPL for "Order books"
  const dir = mkdtempSync(join(tmpdir(), "tickcast-npm-"));
  try {
    const tgz = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: HERE, encoding: "utf8" }).trim().split("\n").pop();
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "user-app", private: true, type: "module" }));
    const ws = JSON.parse(readFileSync(join(HERE, "package-lock.json"), "utf8")).packages["node_modules/ws"].version;
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", join(dir, tgz), `ws@${ws}`], { cwd: dir });
    const readme = readFileSync(join(HERE, "README.md"), "utf8");
    const code = /```js\n([\s\S]*?)```/.exec(readme)[1].replace("ws://127.0.0.1:8080/ws", s.url).replace('"my-api-key"', JSON.stringify(API_KEY));
    writeFileSync(join(dir, "example.mjs"), code);
    await s.publish("ticker.AAPL", 1); // the snapshot the example's subscribe gets at once
    const out = execFileSync("node", ["example.mjs"], { cwd: dir, encoding: "utf8", timeout: 30000 });
    assert.match(out, /^ticker\.AAPL 1 /);
    const books = readme.slice(readme.indexOf("## Order books"));
    writeFileSync(join(dir, "book.mjs"), /```js\n([\s\S]*?)```/.exec(books)[1].replace("ws://127.0.0.1:8080/ws", market.url));
    const bookOut = execFileSync("node", ["book.mjs"], { cwd: dir, encoding: "utf8", timeout: 30000 });
    const lines = bookOut.trim().split("\n");
    assert.equal(lines.length, 7, bookOut);
    for (const l of lines.slice(0, 5)) assert.match(l, /^book\.AAPL \d+ \d+@\d+\.\d+ \d+@\d+\.\d+ spread \d+\.\d+$/);
    assert.match(lines[5], /^top 3 bids \d+@\S+ \d+@\S+ \d+@\S+$/);
    assert.equal(lines[6], "checksum ok true mismatches 0");
    // Node 20 without `ws` (no WebSocket at all): the first example still runs, over SSE.
    execFileSync("npm", ["uninstall", "--no-audit", "--no-fund", "--loglevel=error", "ws"], { cwd: dir });
    const sseOut = execFileSync("node", ["example.mjs"], { cwd: dir, encoding: "utf8", timeout: 30000 });
    assert.match(sseOut, /^ticker\.AAPL 1 /);
  } finally { await s.stop(); await market.stop(); rmSync(dir, { recursive: true, force: true }); }
});
