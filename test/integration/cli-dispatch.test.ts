// The CLI's dispatcher as people run it (the compiled build, a real process): help, version,
// per-command help, and that none of these loads the heavy dependencies a command needs.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../../services/cli/commands/index.ts";
import { tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const dir = tempDir("lineage-dispatch-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Preloaded into the child: on exit, it writes which CommonJS modules were loaded (chDB, the
// ClickHouse client, kafkajs and avsc are CommonJS, so an import of any of them lands here).
const probe = join(dir, "probe.cjs");
const loadedFile = join(dir, "loaded.json");
writeFileSync(
  probe,
  `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(loadedFile)}, JSON.stringify(Object.keys(require.cache))));`,
);

function cli(args: string[], env: Record<string, string> = {}) {
  rmSync(loadedFile, { force: true });
  const r = spawnSync(process.execPath, ["--require", probe, BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store"), ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  const loaded = JSON.parse(readFileSync(loadedFile, "utf8")) as string[];
  const heavy = [...new Set(loaded.map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1]).filter((m) => m !== undefined))].sort();
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, heavy };
}

describe("lineage-audit's dispatcher", () => {
  it("lists every command under --help, exits 0, and loads no dependency", () => {
    const r = cli(["--help"]);
    expect(r.code).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(r.stdout).toContain(`lineage-audit ${name}`);
    expect(r.heavy).toEqual([]);
    expect(r.stderr).toBe("");
  });

  it("prints the usage and exits 2 with no command", () => {
    const r = cli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("Usage:");
  });

  it("prints the package's version", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const r = cli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(r.heavy).toEqual([]);
  });

  it("gives one command's usage for `COMMAND --help`, before reading the environment or loading the command", () => {
    // A bad setting would fail the command; help does not need it.
    const r = cli(["replay", "--help"], { LINEAGE_AUDIT_PORT: "not-a-port" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("lineage-audit replay --rules FILE");
    expect(r.stdout).not.toContain("lineage-audit serve");
    expect(r.heavy).toEqual([]);
  });

  it("loads a command's dependencies when it runs (the check above can fail)", () => {
    const r = cli(["sql"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^lineage-audit: sql takes one quoted statement/);
    expect(r.heavy).toContain("@clickhouse/client");
  });

  it("refuses an unknown command, and a bad setting, with one line", () => {
    const unknown = cli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split("\n")).toEqual([
      `lineage-audit: unknown command 'frobnicate' (commands: ${Object.keys(COMMANDS).join(", ")}; see lineage-audit --help)`,
    ]);
    const proto = cli(["__proto__"]);
    expect(proto.code).toBe(2);
    expect(proto.stderr).toMatch(/^lineage-audit: unknown command '__proto__'/);
    const bad = cli(["sql", "SELECT 1"], { LINEAGE_AUDIT_PORT: "99999" });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual(["lineage-audit: LINEAGE_AUDIT_PORT must be a port number (0-65535)"]);
  });
});
