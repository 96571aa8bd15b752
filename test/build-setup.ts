// Vitest global setup: the tests that run the CLI as a process run the compiled build (dist/), as
// users do. `npm test` builds first; this rebuilds when a source under services/ (or the console's
// under web/) is newer than the last build, so running vitest directly never tests a stale dist/.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

export function setup(): void {
  const stamp = join(ROOT, "dist/.tsbuildinfo");
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  const web = existsSync(join(ROOT, "dist/web/index.html")) ? statSync(join(ROOT, "dist/web/index.html")).mtimeMs : 0;
  if (built < newest(join(ROOT, "services")))
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], {
      cwd: ROOT,
      stdio: "inherit",
    });
  // The console's bundle (web/), served by serve from dist/web.
  if (web < newest(join(ROOT, "web")))
    execFileSync(process.execPath, [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", join(ROOT, "web/vite.config.ts")], {
      cwd: ROOT,
      stdio: "inherit",
    });
}
