// The intake's group commit, with a recording processor beside the real-store tests
// (test/integration/openlineage-http.test.ts): requests arriving together share a write, at most
// `maxInFlight` writes run at once, and each request gets its own outcome.
import { describe, expect, it } from "vitest";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";
import { createOpenLineageIntake } from "../../../services/openlineage/index.ts";
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
