// `serve` (the compiled CLI as a process) answers an OpenLineage RunEvent 201 once it is in the
// intake journal, and stores it behind. Killed with SIGKILL while RunEvents it answered are not
// yet stored, and started again on the same data directory, it stores every one of them: a 201 is
// durable. /healthz says how many answered RunEvents are not yet stored. In process: a journal as
// full as it may be answers 503 until what it holds is stored.
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "../../services/store/index.ts";
import { startIngestServer } from "../../services/api/index.ts";
import { openIntakeJournal } from "../../services/ingest/index.ts";
import { createOpenLineageIntake } from "../../services/openlineage/index.ts";
import { loadFideslangTaxonomy } from "../../services/taxonomy/index.ts";
import { runEventBytes } from "../../scripts/openlineage-runevents.ts";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const dir = tempDir("lineage-ol-journal-");
const store = join(dir, "store");
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function startServe(): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
    env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: store, LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString("utf8");
      const m = /POST (http:\/\/[^ ]+)\/v1\/events/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  return { child, url, log: () => err };
}

/** RunEvent i as the bench makes it: a COMPLETE with column lineage of 20 fields (one DERIVE, every fifth mapping masking). */
const FIELDS = 20;
const runEvent = (i: number) => runEventBytes(i).toString("utf8");

async function notYetStored(url: string): Promise<number> {
  const health = (await (await fetch(`${url}/healthz`)).json()) as { openLineage?: { notYetStored: number } };
  return health.openLineage?.notYetStored ?? Number.NaN;
}

/** Posts RunEvents from..to-1 over `clients` connections; the indexes answered 201. */
async function post(url: string, from: number, to: number, clients: number): Promise<number[]> {
  const answered: number[] = [];
  let next = from;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < to) {
        const i = next++;
        const res = await fetch(`${url}/api/v1/lineage`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: runEvent(i),
        });
        await res.arrayBuffer();
        if (res.status === 201) answered.push(i);
      }
    }),
  );
  return answered;
}

describe("serve's OpenLineage intake journal", () => {
  it("stores after a SIGKILL every RunEvent it had answered 201 but not yet stored", async () => {
    const first = await startServe();
    expect(await notYetStored(first.url)).toBe(0);
    // Rounds of RunEvents until some answered ones are still waiting to be stored, then the kill.
    const answered: number[] = [];
    let waiting = 0;
    for (let round = 0; round < 20 && waiting === 0; round++) {
      answered.push(...(await post(first.url, round * 600, (round + 1) * 600, 48)));
      waiting = await notYetStored(first.url);
    }
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    expect(waiting, "the store kept up with every round: nothing was left to recover").toBeGreaterThan(0);
    expect(answered.length % 600).toBe(0); // every RunEvent posted was answered 201

    const second = await startServe();
    for (let i = 0; i < 600 && (await notYetStored(second.url)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await notYetStored(second.url)).toBe(0);
    second.child.kill("SIGTERM");
    expect(await new Promise((r) => second.child.once("exit", r))).toBe(0);

    const s = await openStore({ path: store });
    try {
      const [logged] = await s.query<{ runs: string; derives: string }>(
        `SELECT toString(uniqExact(run_id)) AS runs, toString((SELECT uniqExact(run_id) FROM lineage.events_v1 WHERE kind = 'DERIVE')) AS derives
         FROM lineage.openlineage_events_v1`,
      );
      expect(Number(logged?.runs)).toBe(answered.length);
      expect(Number(logged?.derives)).toBe(answered.length);
      const [edges] = await s.query<{ n: string }>(`SELECT toString(count()) AS n FROM lineage.lineage_edges_v1 FINAL`);
      expect(Number(edges?.n)).toBe(answered.length * FIELDS);
      const dead = await s.query<{ reason: string }>(`SELECT reason FROM lineage.dead_letters_v1`);
      expect(dead).toEqual([]);
    } finally {
      await s.close();
    }
  }, 300_000);

  it("answers 503 (retry) when the journal holds as much as it may, and 201 again once that is stored", async () => {
    const journalDir = join(dir, "small-journal");
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const stored: string[] = [];
    const intake = createOpenLineageIntake({
      processor: {
        async processEvents(events) {
          await gate; // the store is slow: nothing journaled is stored until released
          stored.push(...events.map((e) => e.source));
          return { accepted: events.length, rejected: [], violations: 0, findings: 0, facts: [] };
        },
      },
      store: { insert: async () => {} },
      taxonomy: loadFideslangTaxonomy(),
      journal: await openIntakeJournal({ dir: journalDir, maxRecordBytes: 16_384, maxPendingBytes: 16_384 }),
    });
    const server = await startIngestServer(
      { processMessages: () => Promise.reject(new Error("not used")) },
      { port: 0, openLineage: intake },
    );
    try {
      const statuses: number[] = [];
      const bodies: string[] = [];
      for (let i = 0; i < 8; i++) {
        const res = await fetch(`${server.url}/api/v1/lineage`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: runEvent(5000 + i),
        });
        statuses.push(res.status);
        bodies.push(await res.text());
      }
      // RunEvents of about 4.5 KiB: what fits in 16 KiB is taken, the rest refused until it is stored.
      const taken = statuses.indexOf(503);
      expect(taken).toBeGreaterThan(1);
      expect(statuses).toEqual([...Array<number>(taken).fill(201), ...Array<number>(8 - taken).fill(503)]);
      expect(JSON.parse(bodies[taken]!)).toEqual({
        error: expect.stringMatching(/^the intake journal holds \d+ bytes not yet stored; retry$/),
      });
      release();
      await intake.settled();
      expect(new Set(stored).size).toBe(taken); // its RunEvents (each one DERIVE)
      const again = await fetch(`${server.url}/api/v1/lineage`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: runEvent(5003),
      });
      expect(again.status).toBe(201);
    } finally {
      release();
      await intake.close();
      await server.close();
    }
  });
});
