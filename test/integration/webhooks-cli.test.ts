// `lineage-audit webhooks test` and `serve` with a subscriptions file, as operators run them.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { createEmitter, createHttpTransport } from "../../services/emitter/index.ts";
import { adsMatch, core, HMAC_KEY, tempDir, twoFactorCollect, waitFor } from "./helpers.ts";

const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
const dir = tempDir("lineage-whcli-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function receiver(answer: (res: ServerResponse) => void) {
  const received: { headers: Record<string, string>; body: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString("utf8") });
      answer(res);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`, received, close: () => server.close() };
}

const env = () => ({ PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store") });

/** Runs the CLI without blocking this process (the receiver lives here). */
async function cli(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const [status] = (await once(child, "exit")) as [number];
  return { status, stdout, stderr };
}

describe("webhooks from the command line", () => {
  it("sends a signed sample that standardwebhooks verifies, and says so in one line", async () => {
    const r = await receiver((res) => res.writeHead(204).end());
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const run = await cli(["webhooks", "test", r.url, "--secret", secret]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^delivered a signed sample to http:\/\/127\.0\.0\.1:\d+\/alerts: 204 \(webhook-id msg_test_\w+\)\n$/);
    expect(r.received).toHaveLength(1);
    expect(new Webhook(secret).verify(r.received[0]!.body, r.received[0]!.headers)).toMatchObject({ test: true, version: 2 });
    r.close();
    const bad = await cli(["webhooks", "test", r.url, "--secret", "whsec_c2hvcnQ="]);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split("\n")).toEqual([
      "lineage-audit: --secret: the signing secret must hold at least 24 random bytes (it has 5)",
    ]);
  });

  it("serve alerts a subscription when a violation arrives over HTTP", async () => {
    const r = await receiver((res) => res.writeHead(200).end());
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const file = join(dir, "webhooks.yaml");
    writeFileSync(
      file,
      `subscriptions:\n  - id: privacy\n    url: ${r.url}\n    secret: ${secret}\n    rules: [security-contact-not-for-marketing]\n`,
    );
    const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
      env: { ...env(), LINEAGE_AUDIT_WEBHOOKS: file },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(async () => /POST (http:\/\/\S+)\/v1\/events/.test(log), 30_000, "serve to listen");
      const url = /POST (http:\/\/\S+)\/v1\/events/.exec(log)![1]!;
      expect(log).toContain(`alerts to 1 webhook subscription(s) from ${file}`);
      const emitter = createEmitter(
        { transport: createHttpTransport({ url }), pseudonymKey: HMAC_KEY, lingerMs: 1 },
        { codec: core().codec },
      );
      const at = Date.parse("2019-06-01T12:00:00Z");
      await emitter.emit(twoFactorCollect(at, "+15555550199"));
      await emitter.emit(adsMatch(at + 1000, "+15555550199", "nightly"));
      await emitter.close();
      await waitFor(async () => r.received.length > 0, 20_000, "the alert");
      const alert = new Webhook(secret).verify(r.received[0]!.body, r.received[0]!.headers) as Record<string, unknown>;
      expect(alert).toMatchObject({ rule: { id: "security-contact-not-for-marketing" }, runId: "nightly", soFar: { subjects: 1 } });
      expect(r.received[0]!.body).not.toContain("15555550199");
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
      r.close();
    }
    expect(r.received).toHaveLength(1);
  });

  it("delivers, after a restart, an alert decided before serve was killed", async () => {
    // A port with nobody listening yet: the receiver is down while the first serve runs.
    const probe = createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const file = join(dir, "restart.yaml");
    writeFileSync(
      file,
      `subscriptions:\n  - id: ops\n    url: http://127.0.0.1:${port}/alerts\n    secret: ${secret}\n    rules: [security-contact-not-for-marketing]\n`,
    );
    const start = () => {
      const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
        env: { ...env(), LINEAGE_AUDIT_DATA: join(dir, "restart-store"), LINEAGE_AUDIT_WEBHOOKS: file },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let log = "";
      child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
      return { child, log: () => log };
    };
    const first = start();
    await waitFor(async () => /POST (http:\/\/\S+)\/v1\/events/.test(first.log()), 30_000, "serve to listen");
    const url = /POST (http:\/\/\S+)\/v1\/events/.exec(first.log())![1]!;
    const emitter = createEmitter(
      { transport: createHttpTransport({ url }), pseudonymKey: HMAC_KEY, lingerMs: 1 },
      { codec: core().codec },
    );
    const at = Date.parse("2019-07-01T12:00:00Z");
    await emitter.emit(twoFactorCollect(at, "someone@example.com", "email"));
    await emitter.emit(adsMatch(at + 1000, "someone@example.com", "r-restart", "email"));
    await emitter.close(); // answered: the violation and its alert are stored
    first.child.kill("SIGKILL");
    await once(first.child, "exit");

    const received: string[] = [];
    const r = createServer((req, res) => {
      received.push(String(req.headers["webhook-id"]));
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    r.listen(port, "127.0.0.1");
    await once(r, "listening");
    const second = start();
    try {
      await waitFor(async () => received.length > 0, 30_000, "the alert after the restart");
      await new Promise((res) => setTimeout(res, 1000));
      expect(received).toHaveLength(1);
      expect(received[0]).toMatch(/^msg_[0-9a-f]{32}$/);
    } finally {
      second.child.kill("SIGTERM");
      await once(second.child, "exit");
      r.close();
    }
  });

  it("refuses a bad subscriptions file at start-up with one line", () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "subscriptions:\n  - id: x\n    url: http://127.0.0.1:1/h\n    secret: not-a-secret\n");
    const run = spawnSync(process.execPath, [BIN, "serve", "--port", "0"], {
      env: { ...env(), LINEAGE_AUDIT_WEBHOOKS: file },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split("\n")).toEqual([
      `lineage-audit: ${file}: subscriptions[0].secret: a signing secret must start with 'whsec_' (generate one: echo whsec_$(openssl rand -base64 32))`,
    ]);
  });
});
