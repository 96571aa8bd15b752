// `serve` as operators start it (a real process, the real embedded store): it will not listen
// beyond loopback without credentials, and a second process on one store gets one clear line.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const dir = tempDir("lineage-serve-guard-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baseEnv(store: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, store), LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY, ...extra };
}

function cli(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stderr: r.stderr };
}

/** Starts `serve`; resolves once it listens (with the process) or once it exits (with its code and stderr). */
function startServe(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; listening: boolean; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0", ...args], { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill("SIGTERM");
  });
  let stderr = "";
  return new Promise((resolve) => {
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
      if (stderr.includes("/v1/events")) resolve({ child, listening: true, code: null, stderr });
    });
    child.on("exit", (code) => resolve({ child, listening: false, code, stderr }));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

function expectOneLine(stderr: string, pattern: RegExp) {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^lineage-audit: /);
  expect(lines[0]).toMatch(pattern);
}

describe("serve beyond loopback", () => {
  it("refuses to listen on 0.0.0.0 without an ingest token, with one line", async () => {
    const r = await startServe(["--host", "0.0.0.0"], baseEnv("open"));
    if (r.listening) await stop(r.child);
    expect(r.listening).toBe(false);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, /0\.0\.0\.0.*LINEAGE_AUDIT_INGEST_TOKEN/);
  });

  it("refuses a token too short to guess-proof, and a short analyst password, on a non-loopback address", async () => {
    const short = await startServe(["--host", "0.0.0.0"], baseEnv("short", { LINEAGE_AUDIT_INGEST_TOKEN: "abc" }));
    if (short.listening) await stop(short.child);
    expect(short.listening).toBe(false);
    expectOneLine(short.stderr, /LINEAGE_AUDIT_INGEST_TOKEN/);
    const analyst = await startServe(
      ["--host", "0.0.0.0"],
      baseEnv("short", {
        LINEAGE_AUDIT_INGEST_TOKEN: "a-long-enough-ingest-token-0123",
        LINEAGE_AUDIT_ANALYST_PASSWORD: "pw",
        LINEAGE_AUDIT_ANALYST_PORT: "0",
      }),
    );
    if (analyst.listening) await stop(analyst.child);
    expect(analyst.listening).toBe(false);
    expectOneLine(analyst.stderr, /LINEAGE_AUDIT_ANALYST_PASSWORD/);
  });

  it("listens on 0.0.0.0 with a token, and on loopback without one", async () => {
    const open = await startServe(
      ["--host", "0.0.0.0"],
      baseEnv("tokened", { LINEAGE_AUDIT_INGEST_TOKEN: "a-long-enough-ingest-token-0123" }),
    );
    expect(open.listening, open.stderr).toBe(true);
    await stop(open.child);
    const local = await startServe([], baseEnv("tokened"));
    expect(local.listening, local.stderr).toBe(true);
    await stop(local.child);
  });
});

describe("one store, one process", () => {
  it("gives a second serve, and any other command, one line naming the store and the process holding it", async () => {
    const first = await startServe([], baseEnv("shared"));
    expect(first.listening, first.stderr).toBe(true);
    const pid = first.child.pid as number;
    const second = await startServe([], baseEnv("shared"));
    if (second.listening) await stop(second.child);
    expect(second.code).toBe(1);
    expectOneLine(second.stderr, new RegExp(`store ${join(dir, "shared")} is in use by another lineage-audit process \\(pid ${pid}\\)`));
    const affected = cli(["affected", "--rule", "security-contact-not-for-marketing"], baseEnv("shared"));
    expect(affected.code).toBe(1);
    expectOneLine(affected.stderr, /is in use by another lineage-audit process/);
    await stop(first.child);
    // Once it has stopped, the store opens again.
    const again = await startServe([], baseEnv("shared"));
    expect(again.listening, again.stderr).toBe(true);
    await stop(again.child);
  });
});
