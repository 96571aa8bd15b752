// npm run bench:cli: how fast the CLI answers --help and --version, and its peak RSS, from the
// compiled build (npm run build first). Beside it, in the same run: bare Node (the floor), the
// same build with every command loaded eagerly (as one main.ts did before the split), and the
// sources run through tsx (as the CLI ran before the compiled build). Goal: < 150 ms, < 80 MB.
//   npm run bench:cli -- --runs 30
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { runs: { type: "string", default: "30" } } });
const runs = Number(values.runs);
const ROOT = new URL("../", import.meta.url).pathname;
if (!existsSync(join(ROOT, "dist/cli/main.js"))) throw new Error("dist/ is missing: run npm run build first");

// Each child reports its own peak RSS (getrusage's maxrss) on exit, through a preloaded probe.
const dir = mkdtempSync(join(tmpdir(), "bench-cli-"));
const probe = join(dir, "probe.cjs");
writeFileSync(
  probe,
  `process.on("exit", () => require("node:fs").writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS)));`,
);
const eager = join(dir, "eager.mjs");
writeFileSync(
  eager,
  `import { readdirSync } from "node:fs";
const dir = ${JSON.stringify(join(ROOT, "dist/cli/commands"))};
for (const f of readdirSync(dir).filter((f) => f.endsWith(".js"))) await import(dir + "/" + f);
const { main } = await import(${JSON.stringify(join(ROOT, "dist/cli/main.js"))});
process.exitCode = await main(["--help"], process.env);`,
);
const tsxSource = join(dir, "tsx-source.mjs");
writeFileSync(
  tsxSource,
  `const { main } = await import(${JSON.stringify(join(ROOT, "services/cli/main.ts"))});
process.exitCode = await main(["--help"], process.env);`,
);

const cases: { name: string; args: string[] }[] = [
  { name: "node -e 0 (floor)", args: ["-e", "0"] },
  { name: "lineage-audit --help", args: [join(ROOT, "bin/lineage-audit.mjs"), "--help"] },
  { name: "lineage-audit --version", args: [join(ROOT, "bin/lineage-audit.mjs"), "--version"] },
  { name: "lineage-audit replay --help", args: [join(ROOT, "bin/lineage-audit.mjs"), "replay", "--help"] },
  { name: "baseline: --help, all commands loaded", args: [eager] },
  { name: "baseline: --help, sources through tsx", args: ["--import", "tsx", tsxSource] },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rssFile = join(dir, "rss");
console.log(`${runs} runs each, median (max) wall time and peak RSS; node ${process.version}`);
console.log(`${"".padEnd(40)} ${"wall ms".padStart(16)} ${"peak RSS MB".padStart(16)}`);
for (const c of cases) {
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const r = spawnSync(process.execPath, ["--require", probe, ...c.args], {
      cwd: ROOT,
      env: { ...process.env, RSS_FILE: rssFile },
      encoding: "utf8",
    });
    walls.push(performance.now() - started);
    if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr.split("\n")[0]}`);
    rss.push(Number(readFileSync(rssFile, "utf8")) / 1024);
  }
  const cell = (xs: number[]) => `${median(xs).toFixed(0)} (${Math.max(...xs).toFixed(0)})`.padStart(16);
  console.log(`${c.name.padEnd(40)} ${cell(walls)} ${cell(rss)}`);
}
rmSync(dir, { recursive: true, force: true });
