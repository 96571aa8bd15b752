// npm run bench:console: the investigation console's speed in Chromium over the `npm start` demo
// store (1M users: run `npm start` first; `--data DIR --database NAME` for another store). For each
// page, the time from navigation to its key element drawn (first meaningful paint), and for each
// API call behind it the median of `--runs` calls; beside them, in the same run, the baseline a
// person had before the console: `lineage-audit affected` for the same rule, as a process.
// Goals: every page under 1 s, every API call under 300 ms.
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { launchChromium } from "../test/integration/helpers.ts";
import { openStore } from "../services/store/index.ts";
import { createConsoleData } from "../services/console/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: ".lineage-audit/store" },
    database: { type: "string", default: "demo" },
    runs: { type: "string", default: "5" },
    rule: { type: "string", default: "security-contact-not-for-marketing" },
  },
});
const ROOT = new URL("../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const PASSWORD = "bench-console-password-0123";
const runs = Number(values.runs);
const rule = values.rule;
const env = {
  PATH: process.env["PATH"] ?? "",
  HOME: process.env["HOME"] ?? "",
  LINEAGE_AUDIT_DATA: values.data,
  LINEAGE_AUDIT_DATABASE: values.database,
  LINEAGE_AUDIT_HMAC_KEY: "bench-console-key-0123456789abcdef0123",
};

// Baseline: the CLI's answer for the same rule (what an analyst ran before the console).
let started = performance.now();
execFileSync(process.execPath, [BIN, "affected", "--rule", rule, "--json"], { env, stdio: ["ignore", "ignore", "inherit"] });
const cliMs = performance.now() - started;

const serve = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
  env: { ...env, LINEAGE_AUDIT_ANALYST_PASSWORD: PASSWORD, LINEAGE_AUDIT_ANALYST_PORT: "0" },
  stdio: ["ignore", "ignore", "pipe"],
});
const url = await new Promise<string>((resolve, reject) => {
  let err = "";
  serve.stderr.on("data", (d: Buffer) => {
    err += d.toString("utf8");
    const m = /investigation console at (http:\/\/[^ ]+)\//.exec(err);
    if (m) resolve(m[1] as string);
  });
  serve.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
});
const auth = { authorization: `Basic ${Buffer.from(`analyst:${PASSWORD}`).toString("base64")}` };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function timeApi(path: string, init: RequestInit = {}): Promise<{ first: number; median: number }> {
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    started = performance.now();
    const res = await fetch(`${url}${path}`, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    times.push(performance.now() - started);
  }
  return { first: times[0] as number, median: median(times.slice(1)) };
}

const apis = [
  ["overview", "/api/console/overview", {}],
  ["rule", `/api/console/rule?id=${rule}`, {}],
  ["dataset", "/api/console/dataset?name=warehouse/ads.matching_keys", {}],
  ["datasets (search)", "/api/console/datasets?q=ads", {}],
  ["operations", "/api/console/operations", {}],
  [
    "person",
    "/api/console/person",
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ identifier: "nobody@example.com" }) },
  ],
] as const;
const apiTimes: [string, { first: number; median: number }][] = [];
for (const [name, path, init] of apis) apiTimes.push([name, await timeApi(path, init)]);

const browser = await launchChromium();
const pages = [
  ["overview", "/#/", "#rules tbody tr"],
  ["rule", `/#/rule/${rule}`, "figure.path svg g.node"],
  ["dataset", "/#/dataset/warehouse%2Fads.matching_keys", "ul.neighbours"],
  ["datasets (search)", "/#/datasets", "#dataset-results ul.datasets"],
  ["operations", "/#/operations", "#overview h3"],
  ["person (form)", "/#/person", "#person-form"],
] as const;
const paint: [string, number[]][] = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${url}/login`);
  await page.getByLabel("User").fill("analyst");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForSelector("#rules");
  for (const [name, path, selector] of pages) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      await page.goto("about:blank");
      started = performance.now();
      await page.goto(`${url}${path}`);
      await page.waitForSelector(selector);
      times.push(performance.now() - started);
    }
    paint.push([name, times]);
  }
} finally {
  await browser.close();
  serve.kill("SIGTERM");
  await new Promise((resolve) => serve.once("exit", resolve));
}

// The overview as after new violations: its per-person scan not kept yet (a new ConsoleData each
// time, in this process, once serve has let go of the store).
const store = await openStore({ path: values.data, database: values.database });
const policy = loadPolicy(DEFAULT_POLICY_PATH, loadFideslangTaxonomy());
const uncached: number[] = [];
try {
  for (let i = 0; i <= runs; i++) {
    const data = createConsoleData(store, policy, { modelRefreshMs: 3_600_000 });
    started = performance.now();
    await data.overview();
    uncached.push(performance.now() - started);
  }
} finally {
  await store.close();
}

const ms = (v: number) => `${Math.round(v).toLocaleString("en-US")} ms`.padStart(10);
console.log(`console over ${values.data} (database ${values.database}), ${runs} runs each; node ${process.version}`);
console.log(`\nbaseline: lineage-audit affected --rule ${rule} (a process): ${ms(cliMs).trim()}`);
console.log(`\n${"page".padEnd(22)} ${"first paint (median)".padStart(22)} ${"slowest".padStart(10)}   goal 1,000 ms`);
for (const [name, times] of paint) console.log(`${name.padEnd(22)} ${ms(median(times)).padStart(22)} ${ms(Math.max(...times))}`);
console.log(`\n${"API".padEnd(22)} ${"median".padStart(22)} ${"first call".padStart(10)}   goal 300 ms`);
for (const [name, t] of apiTimes) console.log(`${name.padEnd(22)} ${ms(t.median).padStart(22)} ${ms(t.first)}`);
console.log(
  `${"overview, scan not kept".padEnd(22)} ${ms(median(uncached.slice(1))).padStart(22)} ${ms(uncached[0] as number)}   (as after new violations)`,
);
