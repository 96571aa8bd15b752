// The CLI as a process against the embedded store: corrupt and truncated files, and times given
// without an offset (UTC everywhere, whatever TZ says).
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  AVRO_SCHEMA_DIR,
  EVENT_BATCH_MEDIA_TYPE,
  frameBatch,
  writeContainerFile,
  type DataAccessEvent,
} from "../../services/codec/index.ts";
import { arrayLengthBomb } from "../unit/codec/hostile.ts";
import { DEFAULT_POLICY_PATH } from "../../services/rules/index.ts";
import { core, HMAC_KEY, tempDir, waitFor } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const dir = tempDir("lineage-cli-input-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store"), ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLine(r: ReturnType<typeof cli>): string {
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] as string;
}

const count = (database: string, sql: string) => {
  const r = cli(["sql", sql, "--json"], { LINEAGE_AUDIT_DATABASE: database });
  expect(r.code, r.stderr).toBe(0);
  return Number((JSON.parse(r.stdout) as { n: string | number }[])[0]?.n);
};

const v2 = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v2.avsc"), "utf8")) as object;
function record(i: number): DataAccessEvent {
  return {
    eventId: `rec-${String(i).padStart(4, "0")}`,
    kind: "COLLECT",
    occurredAt: Date.parse("2019-03-01T00:00:00Z") + i,
    service: "auth-service",
    job: { namespace: "web", name: "2fa-enrolment" },
    runId: `run-${i}`,
    inputs: [],
    outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
    transform: "OTHER",
    fieldLineage: [],
    masking: "NONE",
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    subjects: [i.toString(16).padStart(32, "0")],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
  };
}

describe("corrupt or truncated Avro container files", () => {
  it("stops at the break of a file cut at 60%: one line naming the file, block and byte, non-zero exit, the records before it stored", async () => {
    const file = join(dir, "cut.avro");
    await writeContainerFile(
      file,
      v2,
      Array.from({ length: 300 }, (_, i) => record(i)),
      { blockSize: 4096 },
    );
    const whole = readFileSync(file);
    writeFileSync(file, whole.subarray(0, Math.floor(whole.length * 0.6)));

    const r = cli(["ingest", file], { LINEAGE_AUDIT_DATABASE: "cut" });
    expect(r.code).toBe(1);
    const line = oneLine(r);
    const m =
      /^lineage-audit: .*cut\.avro: file is truncated: the block needs \d+ bytes from byte \d+, the file ends at \d+ \(block (\d+), byte (\d+), after (\d+) records\); the (\d+) records before it were ingested \((\d+) stored, 0 dead-lettered\)$/.exec(
        line,
      );
    expect(m, line).not.toBeNull();
    const [, block, , after, before, storedCount] = m as RegExpExecArray;
    expect(Number(block)).toBeGreaterThan(0);
    expect(Number(after)).toBeGreaterThan(0);
    expect([before, storedCount]).toEqual([after, after]);
    expect(count("cut", "SELECT uniqExact(event_id) AS n FROM events_v1")).toBe(Number(after));
  });

  it("names garbage after the magic bytes as a corrupt header, with exit 1", () => {
    const file = join(dir, "garbage.avro");
    writeFileSync(file, Buffer.concat([Buffer.from("Obj\x01", "latin1"), Buffer.alloc(64, 0xff)]));
    const r = cli(["ingest", file], { LINEAGE_AUDIT_DATABASE: "garbage" });
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(
      /^lineage-audit: .*garbage\.avro: header metadata is corrupt or truncated: .* \(block 0, byte 4, after 0 records\); the 0 records before it were ingested \(0 stored, 0 dead-lettered\)$/,
    );
  });

  it("names a block whose sync marker was overwritten, after storing the blocks before it", async () => {
    const file = join(dir, "sync.avro");
    await writeContainerFile(
      file,
      v2,
      Array.from({ length: 100 }, (_, i) => record(1000 + i)),
      { blockSize: 2048 },
    );
    const bytes = readFileSync(file);
    const sync = bytes.subarray(bytes.length - 16);
    // The second block's sync marker: the second time the header's marker appears after the header.
    const first = bytes.indexOf(sync, 4);
    const second = bytes.indexOf(sync, first + 16);
    const third = bytes.indexOf(sync, second + 16);
    expect(third).toBeGreaterThan(second);
    bytes.fill(0, third, third + 16);
    writeFileSync(file, bytes);

    const r = cli(["ingest", file], { LINEAGE_AUDIT_DATABASE: "sync" });
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(
      /sync\.avro: sync marker does not match the header's \(corrupt block\) \(block 1, byte \d+, after (\d+) records\); the \1 records before it were ingested \(\1 stored, 0 dead-lettered\)$/,
    );
  });
});

describe("times without an offset are UTC everywhere", () => {
  const env = { LINEAGE_AUDIT_DATABASE: "times", LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY, TZ: "Pacific/Auckland" };
  const RULE = "security-contact-not-for-marketing";

  it("reads --from 2019-01-31T12:00 as 12:00 UTC in affected, replay and NDJSON, and --fast refuses a time that is not a whole day", () => {
    const file = join(dir, "times.ndjson");
    const base = { dataSubject: "customer", runId: "r", subjects: ["alice@example.com"] };
    writeFileSync(
      file,
      [
        {
          ...base,
          kind: "COLLECT",
          occurredAt: "2019-01-30T00:00",
          service: "auth-service",
          job: { namespace: "web", name: "2fa" },
          outputs: [
            {
              namespace: "warehouse",
              name: "security.two_factor",
              fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
            },
          ],
          purposes: ["essential.service.security"],
        },
        ...["2019-01-31T11:00", "2019-01-31T13:00"].map((occurredAt, i) => ({
          ...base,
          eventId: `use-${i}`,
          kind: "USE",
          occurredAt,
          service: "partner-audiences",
          job: { namespace: "ads", name: "match" },
          inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number" }] }],
          purposes: ["marketing.advertising.third_party.targeted"],
        })),
      ]
        .map((o) => JSON.stringify(o))
        .join("\n"),
    );
    const ingest = cli(["ingest", file], env);
    expect(ingest.code, ingest.stderr).toBe(0);
    const times = cli(
      ["sql", "SELECT groupArray(toString(occurred_at)) AS t FROM (SELECT occurred_at FROM events_v1 ORDER BY occurred_at)", "--json"],
      env,
    );
    expect(JSON.parse(times.stdout)).toEqual([{ t: ["2019-01-30 00:00:00.000", "2019-01-31 11:00:00.000", "2019-01-31 13:00:00.000"] }]);

    const affected = cli(["affected", "--rule", RULE, "--from", "2019-01-31T12:00", "--json"], env);
    expect(affected.code, affected.stderr).toBe(0);
    expect(JSON.parse(affected.stdout)).toMatchObject({ violationEvents: 1 });

    const replay = cli(["replay", "--rules", DEFAULT_POLICY_PATH, "--from", "2019-01-31T12:00", "--json"], env);
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ events: 1 });

    const fast = cli(["affected", "--rule", RULE, "--from", "2019-01-31T12:00", "--fast"], env);
    expect(fast.code).toBe(2);
    expect(oneLine(fast)).toBe(
      "lineage-audit: --fast counts whole UTC days: --from must be a date (e.g. 2019-01-31) or midnight UTC, not 2019-01-31T12:00:00.000Z",
    );
    const days = cli(["affected", "--rule", RULE, "--from", "2019-01-31", "--to", "2019-02-01T00:00", "--fast", "--json"], env);
    expect(days.code, days.stderr).toBe(0);
    expect(JSON.parse(days.stdout)).toMatchObject({ window: { from: "2019-01-31", to: "2019-02-01" }, records: 1 });
  });
});

describe("a real serve process", () => {
  const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;

  it("dead-letters the 166-byte bomb posted between two good messages, answers at once, and its memory does not grow", async () => {
    const { codec } = core();
    const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
      cwd: dir,
      env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "serve-store") },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(async () => /POST (http:\/\/\S+)\/v1\/events/.test(log), 60_000, "serve to listen");
      const url = /POST (http:\/\/\S+)\/v1\/events/.exec(log)![1]!;
      const good = (id: string) => codec.encode({ ...record(5000), eventId: id });
      const post = (messages: Uint8Array[]) =>
        fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": EVENT_BATCH_MEDIA_TYPE }, body: frameBatch(messages) });
      // Warm up, so that the measure is of the bomb and not of the first batch.
      expect((await post([good("warm")])).status).toBe(200);
      const before = rss(child.pid!);
      const res = await post([good("serve-1"), arrayLengthBomb(codec), good("serve-2")]);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        accepted: 2,
        rejected: [
          { index: 1, code: "SCHEMA", reason: "message field 'inputs' claims 268435456 items, over the limit of 100000 per message" },
        ],
      });
      expect(rss(child.pid!) - before).toBeLessThan(128 * 1024 * 1024);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });
});
