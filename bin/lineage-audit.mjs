#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: no build step between clone and use.
import { register } from "tsx/esm/api";

register();
const { main, reportError } = await import("../services/cli/main.ts");
try {
  process.exitCode = await main(process.argv.slice(2), process.env);
} catch (error) {
  process.exitCode = reportError(error, process.env);
}
