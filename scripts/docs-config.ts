// Rewrites the README's configuration tables from services/config (npm run docs:config).
import { readFileSync, writeFileSync } from "node:fs";
import { withConfigurationTables } from "../services/config/index.ts";

const path = new URL("../README.md", import.meta.url);
const before = readFileSync(path, "utf8");
const after = withConfigurationTables(before);
writeFileSync(path, after);
process.stdout.write(
  after === before ? "README.md: configuration tables already current\n" : "README.md: configuration tables rewritten\n",
);
