#!/usr/bin/env -S node --max-semi-space-size=64
// Runs the compiled CLI in dist/ (`npm run build`; `npm ci` and `npm pack` build it through `prepare`).
// Run as a command (npm's bin link), V8's young generation gets 64 MiB semi-spaces, as `npm start`
// and the benchmarks run: serve allocates short-lived objects per event, and with V8's default
// (16 MiB) the OpenLineage intake stored 5-9% fewer RunEvents a second (docs/performance.md). V8
// reads the flag only at start-up, so it is given here; `node bin/lineage-audit.mjs` passes its own.
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("lineage-audit: the compiled CLI is missing (dist/cli/main.js): run `npm run build` in this checkout\n");
  process.exit(1);
}
const { main, reportError } = await import(entry.href);
try {
  process.exitCode = await main(process.argv.slice(2), process.env);
} catch (error) {
  process.exitCode = reportError(error, process.env);
}
