// The npm pack tarball as a user gets it: installed (with ws) into an empty folder, its README example run there.
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

test("npm pack tarball runs the README example", { skip: binary ? false : "no tickcast binary", timeout: 240000 }, async () => {
  const s = await Server.start(binary, { auth: true });
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
  } finally { await s.stop(); rmSync(dir, { recursive: true, force: true }); }
});
