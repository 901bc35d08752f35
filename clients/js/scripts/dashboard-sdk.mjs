// Compiles the SDK for the browser dashboard into dashboards/web/sdk/ (or the directory given as the first argument):
// plain ES modules, no declarations. The output is committed because the server embeds the dashboard's files at
// build time and `cargo run` must work without node; test/dashboard-sdk.test.mjs fails when the copy is stale.
//
//   npm run dashboard-sdk            (after changing src/)
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DASHBOARD_SDK = resolve(HERE, "../../dashboards/web/sdk");

/** Compiles src/ into outDir; returns the .js files written, sorted. */
export function buildDashboardSdk(outDir = DASHBOARD_SDK) {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(outDir)) if (f.endsWith(".js")) rmSync(join(outDir, f)); // a module src/ no longer has
  const tsc = join(HERE, "node_modules", ".bin", "tsc");
  execFileSync(tsc, ["-p", HERE, "--outDir", outDir, "--declaration", "false"], { stdio: "inherit" });
  return readdirSync(outDir).filter((f) => f.endsWith(".js")).sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = buildDashboardSdk(process.argv[2] ? resolve(process.argv[2]) : DASHBOARD_SDK);
  console.log(`dashboard SDK: ${files.join(", ")}`);
}
