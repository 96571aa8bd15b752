// The intake's group commit, with a recording processor beside the real-store tests
// (test/integration/openlineage-http.test.ts): requests arriving together share a write, at most
// `maxInFlight` writes run at once, and each request gets its own outcome. Through a journal (on
// real files), as serve runs it: answered once on disk, stored behind, nothing lost.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";
import { createOpenLineageIntake } from "../../../services/openlineage/index.ts";
import { openIntakeJournal } from "../../../services/ingest/index.ts";
import { TransportError } from "../../../services/errors/index.ts";
import type { InboundEvent, ProcessResult } from "../../../services/processor/index.ts";

const taxonomy = loadFideslangTaxonomy();
const runEvent = (i: number, eventType = "COMPLETE") =>
  Buffer.from(
    JSON.stringify({
      eventType,
      eventTime: "2019-06-01T10:00:00Z",
      producer: "https://example.com/p",
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
      run: { runId: `0190d8a0-1c2b-7c3d-8e4f-${i.toString(16).padStart(12, "0")}` },
      job: { namespace: "jobs", name: `job_${i}` },
      inputs: [{ namespace: "w", name: "a" }],
      outputs: [{ namespace: "w", name: "b" }],
    }),
  );

function recorder(delayMs: number) {
  const batches: number[] = [];
  let running = 0;
  let most = 0;
  const logged: object[][] = [];
  return {
    batches,
    logged,
    most: () => most,
    processor: {
      async processEvents(events: readonly InboundEvent[]): Promise<ProcessResult> {
        running++;
        most = Math.max(most, running);
        batches.push(events.length);
        await new Promise((r) => setTimeout(r, delayMs));
        running--;
        const rejected = events
          .filter((e) => e.failure)
          .map((e) => ({ source: e.source, code: "INPUT", reason: e.failure!.message, redacted: true }));
        return { accepted: events.length - rejected.length, rejected, violations: 0, findings: 0, facts: [] };
      },
    },
    store: {
      async insert(_table: string, rows: readonly object[]) {
        logged.push([...rows]);
      },
    },
  };
}

describe("the OpenLineage intake's group commit", () => {
  it("writes requests that arrive together in shared batches, two at most at once, and answers each with its own outcome", async () => {
    const r = recorder(20);
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, lingerMs: 2, maxInFlight: 2, maxBatch: 10 });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        intake.submit({ bytes: i === 7 ? Buffer.from("{") : runEvent(i, i === 9 ? "START" : "COMPLETE"), source: `s#${i}` }),
      ),
    );
    // Events per write: the first batch of ten RunEvents holds a START (no event) and bad JSON (a dead letter).
    expect(r.batches).toEqual([9, 10, 10, 10, 10]);
    expect(r.most()).toBe(2);
    expect(outcomes.map((o) => o.source)).toEqual(Array.from({ length: 50 }, (_, i) => `s#${i}`));
    expect(outcomes[7]).toMatchObject({ stored: false, stage: "parse" });
    expect(outcomes[9]).toMatchObject({ stored: true, events: 0 });
    expect(outcomes.filter((o) => o.stored && o.events === 1)).toHaveLength(48);
    // Every RunEvent that parsed is logged once.
    expect(r.logged.flat()).toHaveLength(49);
    await intake.close();
  });

  it("close() waits for what is waiting and in flight", async () => {
    const r = recorder(30);
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, lingerMs: 1000, maxInFlight: 1 });
    let resolved = 0;
    for (let i = 0; i < 3; i++) void intake.submit({ bytes: runEvent(i), source: `s#${i}` }).then(() => resolved++);
    await intake.close();
    await Promise.resolve();
    expect(resolved).toBe(3);
    expect(r.batches).toEqual([3]);
  });

  it("stores all of a RunEvent or none of it: a purpose the taxonomy does not know refuses the DERIVE with the USE, once", async () => {
    const r = recorder(1);
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy });
    const doc = JSON.parse(runEvent(1).toString("utf8")) as { run: { facets?: unknown } };
    doc.run.facets = {
      lineageAudit_purpose: {
        _producer: "https://example.com/p",
        _schemaURL: "https://github.com/lineage-audit/lineage-audit/blob/main/schemas/openlineage/LineageAuditPurposeRunFacet.json",
        kind: "USE",
        purposes: ["marketting"],
        dataSubject: "customer",
      },
    };
    const result = await intake.ingest([{ bytes: Buffer.from(JSON.stringify(doc)), source: "s#1" }]);
    expect(result.outcomes).toEqual([
      {
        source: "s#1",
        stored: false,
        stage: "event",
        code: "INPUT",
        reason: "event USE field 'purposes[0]' is not a fideslang data use ('marketting')",
      },
    ]);
    // One dead letter (the failure alone, with the RunEvent's bytes for their length and hash), no event, no log row.
    expect(result.rejected).toHaveLength(1);
    expect(r.batches).toEqual([1]);
    expect(r.logged.flat()).toEqual([]);
  });

  it("refuses more waiting RunEvents than it may hold, as busy (retriable: HTTP 503)", async () => {
    const r = recorder(50);
    const intake = createOpenLineageIntake({
      processor: r.processor,
      store: r.store,
      taxonomy,
      maxInFlight: 1,
      maxBatch: 1,
      maxWaiting: 2,
    });
    const first = intake.submit({ bytes: runEvent(0), source: "s#0" });
    const queued = [intake.submit({ bytes: runEvent(1), source: "s#1" }), intake.submit({ bytes: runEvent(2), source: "s#2" })];
    await expect(intake.submit({ bytes: runEvent(3), source: "s#3" })).rejects.toMatchObject({ retriable: true });
    await Promise.all([first, ...queued]);
    await intake.close();
  });
});

describe("the OpenLineage intake through a journal (as serve runs it)", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const journalDir = () => {
    const d = mkdtempSync(join(tmpdir(), "intake-journal-"));
    dirs.push(d);
    return d;
  };
  /** The sources of the RunEvents logged (stored), in order. */
  const loggedSources = (r: ReturnType<typeof recorder>) => r.logged.flat().map((row) => (row as { source: string }).source);

  it("answers once a RunEvent is in the journal and stores behind it in batches that grow under load, in order", async () => {
    const r = recorder(40);
    const journal = await openIntakeJournal({ dir: journalDir() });
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, journal, maxBatch: 50 });
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => intake.submit({ bytes: i === 7 ? Buffer.from("{") : runEvent(i), source: `s#${i}` })),
    );
    // Answered with what each became, known before it is stored; bad JSON answered as such (and dead-lettered).
    expect(outcomes[7]).toMatchObject({ stored: false, stage: "parse" });
    expect(outcomes.filter((o) => o.stored && o.events === 1)).toHaveLength(199);
    expect(journal.syncs).toBeLessThan(200); // appends that arrive together share one write and fdatasync
    await intake.settled();
    expect(intake.backlog()).toBe(0);
    // Every RunEvent that parsed logged once, in arrival order; the bad one went to the processor as a failure.
    expect(loggedSources(r)).toEqual(Array.from({ length: 200 }, (_, i) => `s#${i}`).filter((s) => s !== "s#7"));
    expect(r.batches.reduce((a, b) => a + b, 0)).toBe(200);
    // The first batch starts at once; what arrives while it is stored makes the next ones larger.
    expect(r.batches.length).toBeLessThan(20);
    expect(Math.max(...r.batches)).toBe(50);
    expect(journal.pendingBytes).toBe(0);
    await intake.close();
  });

  it("tries a batch the store refuses again until it is stored, telling onError, and loses nothing", async () => {
    const r = recorder(1);
    let failures = 2;
    const processor = { ...r.processor };
    r.processor.processEvents = async (events) => {
      if (failures-- > 0) throw new TransportError("the store is down", { retriable: true });
      return processor.processEvents(events);
    };
    const errors: unknown[] = [];
    const journal = await openIntakeJournal({ dir: journalDir() });
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, journal, onError: (e) => errors.push(e) });
    await Promise.all(Array.from({ length: 5 }, (_, i) => intake.submit({ bytes: runEvent(i), source: `s#${i}` })));
    await intake.settled();
    expect(errors).toHaveLength(2);
    expect(loggedSources(r).sort()).toEqual(["s#0", "s#1", "s#2", "s#3", "s#4"]);
    await intake.close();
  });

  it("stores at start what an earlier process journaled and never stored, checking each RunEvent again", async () => {
    const dir = journalDir();
    const before = await openIntakeJournal({ dir });
    await before.append([
      { source: "old#0", bytes: runEvent(100) },
      { source: "old#1", bytes: Buffer.from("not json") },
      { source: "old#2", bytes: runEvent(102, "START") },
    ]);
    await before.close(); // as a crash leaves it: appended, never done

    const r = recorder(1);
    const journal = await openIntakeJournal({ dir });
    expect(journal.recovered.records).toBe(3);
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, journal });
    expect(intake.backlog()).toBe(3);
    await intake.submit({ bytes: runEvent(103), source: "new#0" });
    await intake.settled();
    // The recovered ones first, in order; the one that is not JSON dead-lettered (sent as a failure), not logged.
    expect(loggedSources(r)).toEqual(["old#0", "old#2", "new#0"]);
    expect(r.batches.reduce((a, b) => a + b, 0)).toBe(3); // old#0 and new#0 one event each, old#1 its dead letter
    await intake.close();
    const again = await openIntakeJournal({ dir });
    expect(again.recovered.records).toBe(0);
    await again.close();
  });

  it("close() stores what is journaled first; while the store fails, it leaves it journaled for the next start", async () => {
    const r = recorder(5);
    const dir = journalDir();
    const intake = createOpenLineageIntake({ processor: r.processor, store: r.store, taxonomy, journal: await openIntakeJournal({ dir }) });
    await Promise.all(Array.from({ length: 30 }, (_, i) => intake.submit({ bytes: runEvent(i), source: `s#${i}` })));
    await intake.close();
    expect(loggedSources(r)).toHaveLength(30);
    await expect(intake.submit({ bytes: runEvent(99), source: "late" })).rejects.toMatchObject({ retriable: true });

    const down = recorder(1);
    down.processor.processEvents = async () => {
      throw new TransportError("the store is down", { retriable: true });
    };
    const second = createOpenLineageIntake({
      processor: down.processor,
      store: down.store,
      taxonomy,
      journal: await openIntakeJournal({ dir }),
      onError: () => {},
    });
    await Promise.all(Array.from({ length: 4 }, (_, i) => second.submit({ bytes: runEvent(200 + i), source: `t#${i}` })));
    await second.close(); // returns although nothing could be stored
    const reopened = await openIntakeJournal({ dir });
    expect(reopened.recovered.records).toBe(4);
    expect(reopened.take(10).map((rec) => rec.source)).toEqual(["t#0", "t#1", "t#2", "t#3"]);
    await reopened.close();
  });
});
