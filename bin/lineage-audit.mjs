#!/usr/bin/env node
// Runs the compiled CLI in dist/ (`npm run build`; `npm ci` and `npm pack` build it through `prepare`).
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
