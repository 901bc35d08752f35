// The dashboard's committed copy of the SDK (dashboards/web/sdk/, embedded by the server) must be what src/ compiles
// to today: a fresh build into a temporary directory is compared file by file, so an SDK change without
// `npm run dashboard-sdk` fails here instead of shipping a dashboard that runs old client code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDashboardSdk, DASHBOARD_SDK } from "../scripts/dashboard-sdk.mjs";

test("dashboards/web/sdk is the current build of src/ (run `npm run dashboard-sdk` if not)", () => {
  const dir = mkdtempSync(join(tmpdir(), "tickcast-dashboard-sdk-"));
  try {
    const fresh = buildDashboardSdk(dir);
    const committed = readdirSync(DASHBOARD_SDK).filter((f) => f.endsWith(".js")).sort();
    assert.deepEqual(committed, fresh, "the same modules");
    assert.ok(fresh.includes("index.js") && fresh.includes("book.js"), `the client and its books: ${fresh}`);
    for (const f of fresh) {
      assert.equal(readFileSync(join(DASHBOARD_SDK, f), "utf8"), readFileSync(join(dir, f), "utf8"), `${f} is stale`);
    }
    // The server embeds each module by name (a new module the page imports but the server does not serve would
    // only fail in a browser): every one must have its route.
    const assets = readFileSync(new URL("../../../crates/gateway/src/http/assets.rs", import.meta.url), "utf8");
    for (const f of fresh) assert.ok(assets.includes(`"/sdk/${f}"`), `crates/gateway/src/http/assets.rs serves /sdk/${f}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
