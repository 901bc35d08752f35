// API docs: every export of the package entry point has a TSDoc comment (typedoc's notDocumented validation, with
// warnings as errors), so an undocumented export fails the suite. `npm run docs` writes the HTML to api-docs/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const typedoc = join(root, "node_modules", "typedoc", "bin", "typedoc");

test("typedoc finds every export documented", { timeout: 60_000 }, () => {
  const r = spawnSync(
    process.execPath,
    [typedoc, "--emit", "none", "--entryPoints", "src/index.ts", "--validation.notDocumented", "--treatWarningsAsErrors", "--disableSources"],
    { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 55_000 },
  );
  assert.equal(r.error, undefined, `typedoc did not run: ${r.error}`);
  assert.equal(r.status, 0, `typedoc exited ${r.status}:\n${r.stdout}${r.stderr}`);
});
