import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createEventCodec, loadEventSchemas, type DataAccessEvent, type EventCodec } from "../../../services/codec/index.ts";
import {
  createProcessor,
  type AuditBatch,
  type OutboxRow,
  type ViolationRow,
  type InboundMessage,
  type Processor,
} from "../../../services/processor/index.ts";
import { StoreDataError, StoreError } from "../../../services/errors/index.ts";
import {
  ADS,
  EMAIL,
  capturingSink,
  collect,
  defaultPolicy,
  pipeline2019,
  pseudo,
  read,
  SECURITY,
  PHONE,
  use,
  type CapturingSink,
} from "../helpers.ts";

const codec: EventCodec = createEventCodec(loadEventSchemas());

function setup(): { processor: Processor; sink: CapturingSink } {
  const { policy, taxonomy } = defaultPolicy();
  const sink = capturingSink();
  return { processor: createProcessor({ policy, taxonomy, codec }, { sink }), sink };
}

const msg = (e: DataAccessEvent, source: string): InboundMessage => ({ bytes: codec.encode(e), source });
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A well-formed message whose 8-byte schema fingerprint no registered schema has. */
function unknownFingerprint(e: DataAccessEvent): Uint8Array {
  const bytes = Buffer.from(codec.encode(e));
  for (let i = 2; i < 10; i++) bytes[i] = (bytes[i] as number) ^ 0xff;
  return bytes;
}

describe("processor.processMessages", () => {
  it("stores good messages and dead-letters garbage bytes and unknown fingerprints with only length and SHA-256 (they did not decode), keeping the rest of the batch", async () => {
    const { processor, sink } = setup();
    const c = collect("security.two_factor", { phone_number: [PHONE] }, [SECURITY], { subjects: [pseudo(1)] });
    const u = use([read("security.two_factor", "phone_number")], [ADS], { subjects: [pseudo(1)] });
    const garbage = new TextEncoder().encode("definitely not avro");
    const foreign = unknownFingerprint(c);
    const truncated = codec.encode(u).slice(0, 20);

    const result = await processor.processMessages([
      msg(c, "topic/0/1"),
      { bytes: garbage, source: "topic/0/2" },
      { bytes: foreign, source: "topic/0/3" },
      { bytes: truncated, source: "topic/0/4" },
      msg(u, "topic/0/5"),
    ]);

    expect(result.accepted).toBe(2);
    expect(result.violations).toBe(2);
    expect(result.rejected.map((r) => [r.source, r.code])).toEqual([
      ["topic/0/2", "SCHEMA"],
      ["topic/0/3", "SCHEMA"],
      ["topic/0/4", "SCHEMA"],
    ]);

    expect(sink.batches).toHaveLength(1);
    const batch = sink.batches[0]!;
    expect(batch.events.map((r) => [r.event_id, r.kind, r.verdict ?? null])).toEqual([
      [c.eventId, "COLLECT", null],
      [u.eventId, "USE", "violation"],
    ]);
    expect(batch.events[0]?.schema_fingerprint).toBe(codec.writerFingerprint);
    expect(batch.violations.map((v) => v.rule_id).sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);

    const [g, f, t] = batch.deadLetters;
    expect(batch.deadLetters).toHaveLength(3);
    expect(g).toMatchObject({
      source: "topic/0/2",
      error_code: "SCHEMA",
      reason: "message is not Avro single-object encoded (no C3 01 marker) nor Confluent framed",
      payload_base64: "",
      payload_sha256: sha(garbage),
      payload_bytes: garbage.byteLength,
      redacted: 1,
    });
    expect(g?.dead_letter_id).toMatch(/^[0-9a-f]{32}$/);
    expect(f).toMatchObject({ source: "topic/0/3", error_code: "SCHEMA", payload_base64: "", payload_sha256: sha(foreign), redacted: 1 });
    expect(f?.reason).toMatch(/^message was written with an unknown schema \(fingerprint [0-9a-f]{16}\)$/);
    expect(t).toMatchObject({
      source: "topic/0/4",
      error_code: "SCHEMA",
      reason: "message body does not decode with schema version 3",
      payload_base64: "",
      payload_bytes: truncated.byteLength,
      redacted: 1,
    });

    expect(processor.stats).toEqual({ events: 2, violations: 2, deadLetters: 3, findings: 0 });
  });

  it("dead-letters a message whose subjects hold a raw email with the payload withheld and the identifier absent from the reason", async () => {
    const { processor, sink } = setup();
    const email = "alice@example.com";
    const good = collect("src", { phone: [PHONE] }, [SECURITY], { subjects: [pseudo(1)] });
    const leaky = use([read("src", "phone")], [SECURITY], { subjects: [pseudo(2), email] });
    const leakyBytes = codec.encode(leaky);
    expect(Buffer.from(leakyBytes).includes(email)).toBe(true);

    const result = await processor.processMessages([msg(good, "m/1"), { bytes: leakyBytes, source: "m/2" }]);

    expect(result.accepted).toBe(1);
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0]?.reason).not.toContain(email);
    const batch = sink.batches[0]!;
    expect(batch.events.map((r) => r.event_id)).toEqual([good.eventId]);
    expect(batch.deadLetters).toHaveLength(1);
    const dl = batch.deadLetters[0]!;
    expect(dl).toMatchObject({ source: "m/2", error_code: "INPUT", redacted: 1, payload_base64: "", payload_bytes: leakyBytes.byteLength });
    expect(dl.reason).toContain("'subjects[1]'");
    expect(dl.reason).not.toContain(email);
    expect(JSON.stringify(sink.batches)).not.toContain(email);
  });

  it("withholds the payload of a message with a raw identifier even when the event has another defect too", async () => {
    const { processor, sink } = setup();
    const email = "alice@example.com";
    // An unknown purpose AND a raw email in subjects: the raw identifier is what the dead letter reports, and the email is not stored.
    const leaky = use([read("src", "phone")], ["marketing.ads"], { subjects: [email] });
    await processor.processMessages([msg(leaky, "m/1")]);

    expect(sink.batches[0]?.deadLetters).toHaveLength(1);
    const dl = sink.batches[0]!.deadLetters[0]!;
    expect(dl.reason).toContain("'subjects[0]' is not a pseudonymous id");
    expect(Buffer.from(dl.payload_base64, "base64").includes(email)).toBe(false);
    expect(dl.payload_base64).toBe("");
    expect(dl.redacted).toBe(1);
    expect(JSON.stringify(sink.batches)).not.toContain(email);
  });

  it("keeps only length and SHA-256 of a raw e-mail as subject plus one trailing byte (it never decoded)", async () => {
    const { processor, sink } = setup();
    const email = "alice@example.com";
    const bytes = Buffer.concat([codec.encode(use([read("src", "phone")], [SECURITY], { subjects: [email] })), Buffer.from([0])]);
    const result = await processor.processMessages([{ bytes, source: "m/1" }]);

    expect(result.rejected).toEqual([
      { source: "m/1", code: "SCHEMA", reason: "message body does not decode with schema version 3", redacted: true },
    ]);
    const dl = sink.batches[0]!.deadLetters[0]!;
    expect(dl).toMatchObject({ payload_base64: "", payload_sha256: sha(bytes), payload_bytes: bytes.byteLength, redacted: 1 });
    expect(JSON.stringify(sink.batches)).not.toContain(email);
  });

  it("keeps the payload of a message that decoded and holds only pseudonyms, rejected for an unknown purpose", async () => {
    const { processor, sink } = setup();
    const e = use([read("src", "phone")], ["marketing.ads"], { subjects: [pseudo(1)] });
    const result = await processor.processMessages([msg(e, "m/1")]);

    expect(result.rejected[0]).toMatchObject({ code: "INPUT", redacted: false });
    expect(sink.batches[0]!.deadLetters[0]).toMatchObject({ payload_base64: b64(codec.encode(e)), redacted: 0 });
  });

  it("never quotes a value back in a reason unless it has the shape of a taxonomy key", async () => {
    const { processor, sink } = setup();
    const e = use([read("src", "phone")], ["+15555550123"], { subjects: [pseudo(1)], dataSubject: "bob@example.com" });
    const result = await processor.processMessages([msg(e, "m/1")]);

    expect(result.rejected[0]?.reason).toBe("event USE field 'dataSubject' is not a fideslang data subject");
    expect(JSON.stringify(sink.batches)).not.toMatch(/example\.com|5555550123/);
  });

  it.each([2 ** 52 - 1, Date.UTC(2300, 0, 1), -1])(
    "dead-letters occurredAt %d, which the store would clamp, instead of storing it",
    async (occurredAt) => {
      const { processor, sink } = setup();
      const e = collect("src", { phone: [PHONE] }, [SECURITY], { subjects: [pseudo(1)], occurredAt });
      const result = await processor.processMessages([msg(e, "m/1")]);

      expect(result.accepted).toBe(0);
      expect(result.rejected[0]?.reason).toBe(
        "event COLLECT field 'occurredAt' must be milliseconds since 1970, a time the store keeps exactly (1970-01-01T00:00:00.001Z to 2299-12-31T23:59:59.999Z)",
      );
      expect(sink.batches[0]!.events).toEqual([]);
    },
  );

  it("stores the schema version of the fingerprint for events that arrive decoded, as for messages", async () => {
    const { processor, sink } = setup();
    const e = collect("src", { phone: [PHONE] }, [SECURITY], { subjects: [pseudo(1)] });
    await processor.processEvents([{ event: e, source: "f:1" }]);
    await processor.processMessages([msg({ ...e, eventId: pseudo("other") }, "m/1")]);

    const rows = sink.batches.flatMap((b) => b.events);
    expect(rows.map((r) => [r.schema_fingerprint, r.schema_version])).toEqual([
      [codec.writerFingerprint, 3],
      [codec.writerFingerprint, 3],
    ]);
  });

  it("produces identical rows, keyed by the same ids, when the same messages are processed twice", async () => {
    const p = pipeline2019();
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1), pseudo(2)] });
    const messages = [
      ...[p.collect, p.copy, p.join, p.hash, u].map((e, i) => msg(e, `t/0/${i}`)),
      { bytes: new Uint8Array([1, 2, 3]), source: "t/0/5" },
    ];

    const { processor, sink } = setup();
    await processor.processMessages(messages);
    await processor.processMessages(messages);
    const [first, second] = sink.batches;
    expect(first?.events.map((r) => r.event_id)).toEqual([p.collect, p.copy, p.join, p.hash, u].map((e) => e.eventId));
    expect(second?.events).toEqual(first?.events);
    expect(second?.violations).toEqual(first?.violations);
    expect(second?.deadLetters).toEqual(first?.deadLetters);
    // Lineage facts, labels and paths are not written again.
    expect(first?.facts).toHaveLength(4);
    expect(second?.facts).toEqual([]);
    expect(second?.labels).toEqual([]);
    expect(second?.paths).toEqual([]);

    // A fresh processor (restart without restore) writes the same rows under the same keys.
    const fresh = setup();
    await fresh.processor.processMessages(messages);
    expect(fresh.sink.batches[0]).toEqual(first);
  });

  it("rebuilds lineage from stored facts on restore, so a use after restart is judged on it", async () => {
    const p = pipeline2019();
    const { processor, sink } = setup();
    await processor.processMessages([p.collect, p.copy, p.join, p.hash].map((e, i) => msg(e, `t/${i}`)));
    const facts = sink.batches[0]!.facts.map((f) => JSON.parse(f.fact) as DataAccessEvent);

    const restarted = setup();
    expect(await restarted.processor.restore(facts)).toBe(4);
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS]);
    const result = await restarted.processor.processMessages([msg(u, "t/9")]);
    expect(result.violations).toBe(2);
    expect(restarted.sink.batches[0]?.events[0]?.verdict).toBe("violation");
  });
});

describe("processor: a failed write", () => {
  it("writes the rows that exist only once (facts, labels, paths) with the retry, so nothing is lost", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const written: AuditBatch[] = [];
    let fail = true;
    const processor = createProcessor(
      { policy, taxonomy, codec },
      {
        sink: {
          async write(batch) {
            if (fail) {
              fail = false;
              throw new StoreError("down", { retriable: true });
            }
            written.push(structuredClone(batch));
          },
        },
      },
    );
    const p = pipeline2019();
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1)] });
    const messages = [p.collect, p.copy, p.join, p.hash, u].map((e, i) => msg(e, `m/${i}`));
    await expect(processor.processMessages(messages)).rejects.toBeInstanceOf(StoreError);
    await processor.processMessages(messages);
    expect(written).toHaveLength(1);
    expect(written[0]?.facts).toHaveLength(4);
    expect(written[0]?.labels.length).toBeGreaterThan(0);
    expect(written[0]?.paths.length).toBeGreaterThan(0);
    expect(written[0]?.events.map((r) => r.event_id)).toEqual([p.collect, p.copy, p.join, p.hash, u].map((e) => e.eventId));
    expect(written[0]?.violations.map((v) => v.rule_id).sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
  });
});

describe("processor: writes from several intakes", () => {
  it("keeps the facts, labels and paths of a failed write when another intake's write succeeds meanwhile", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const written: AuditBatch[] = [];
    let releaseFirst!: () => void;
    const firstMayFail = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstFailed!: () => void;
    const failedBefore = new Promise<void>((resolve) => (firstFailed = resolve));
    let calls = 0;
    const processor = createProcessor(
      { policy, taxonomy, codec },
      {
        sink: {
          async write(batch) {
            if (calls++ === 0) {
              await firstMayFail;
              firstFailed();
              throw new StoreError("down", { retriable: true });
            }
            // The other intake's write finishes only after the first one failed.
            await failedBefore;
            written.push(structuredClone(batch));
          },
        },
      },
    );
    const p = pipeline2019();
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1)] });
    const fromKafka = [p.collect, p.copy, p.join, p.hash, u].map((e, i) => msg(e, `topic/0/${i}`));
    const other = collect("crm.contacts", { email: [EMAIL] }, [SECURITY], { subjects: [pseudo(2)] });

    const kafkaWrite = processor.processMessages(fromKafka);
    const httpWrite = processor.processMessages([msg(other, "http 127.0.0.1:1 #0")]);
    releaseFirst();
    await expect(kafkaWrite).rejects.toBeInstanceOf(StoreError);
    await httpWrite;
    // Kafka retries its batch: the once-only rows made by its first attempt must still reach the store.
    await processor.processMessages(fromKafka);

    const stored = (table: keyof AuditBatch) => written.flatMap((b) => b[table] as unknown[]);
    expect(stored("facts")).toHaveLength(5);
    expect(stored("labels").length).toBeGreaterThan(0);
    expect(stored("paths").length).toBeGreaterThan(0);
    const ids = new Set(stored("events").map((r) => (r as { event_id: string }).event_id));
    for (const e of [p.collect, p.copy, p.join, p.hash, u, other]) expect(ids.has(e.eventId)).toBe(true);
  });
});

/** A planner raising one alert per violation, `w-<violation id>`. */
const alertPerViolation = {
  plan: (violations: readonly ViolationRow[]) =>
    violations.map((v) => ({ webhook_id: `w-${v.violation_id}`, subscription_id: "s" }) as unknown as OutboxRow),
};

describe("processor: one write per batch", () => {
  it("writes a batch that the store takes as one write of every message's rows, with the alerts it raises", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const writes: AuditBatch[] = [];
    const processor = createProcessor(
      { policy, taxonomy, codec, alerts: alertPerViolation },
      { sink: { write: async (batch) => void writes.push(structuredClone(batch)) } },
    );
    const p = pipeline2019();
    const uses = [1, 2, 3].map((n) => use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(n)] }));
    const events = [p.collect, p.copy, p.join, p.hash, ...uses];
    const result = await processor.processMessages(events.map((e, i) => msg(e, `t/0/${i}`)));

    expect(result.violations).toBe(6);
    expect(writes).toHaveLength(1);
    const [batch] = writes as [AuditBatch];
    expect(batch.events.map((r) => r.event_id)).toEqual(events.map((e) => e.eventId));
    expect(batch.facts).toHaveLength(4);
    expect(batch.violations).toHaveLength(6);
    expect(batch.outbox.map((r) => r.webhook_id).sort()).toEqual(batch.violations.map((v) => `w-${v.violation_id}`).sort());
  });
});

describe("processor: the store refuses a record", () => {
  it("halves the batch until the refused message is found, dead-letters it with the store's reason and stores the others", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const stored: AuditBatch[] = [];
    let attempts = 0;
    const processor = createProcessor(
      { policy, taxonomy, codec },
      {
        sink: {
          async write(batch) {
            attempts++;
            if (batch.events.some((r) => r.service === "poison")) {
              throw new StoreDataError("writing 1 rows to t.events_v1 failed: ClickHouse error 469 (VIOLATED_CONSTRAINT)");
            }
            stored.push(structuredClone(batch));
          },
        },
      },
    );
    const p = pipeline2019();
    const poison = collect("other", { phone: [PHONE] }, [SECURITY], { service: "poison", subjects: [pseudo(3)] });
    const events = [p.collect, p.copy, poison, p.join, p.hash];
    const result = await processor.processMessages(events.map((e, i) => msg(e, `t/0/${i}`)));

    expect(result.accepted).toBe(4);
    expect(result.rejected).toEqual([
      {
        source: "t/0/2",
        code: "STORE",
        reason: "writing 1 rows to t.events_v1 failed: ClickHouse error 469 (VIOLATED_CONSTRAINT)",
        redacted: false,
      },
    ]);
    const rows = (table: keyof AuditBatch) => stored.flatMap((b) => b[table] as { event_id?: string; source?: string }[]);
    expect(
      rows("events")
        .map((r) => r.event_id)
        .sort(),
    ).toEqual([p.collect, p.copy, p.join, p.hash].map((e) => e.eventId).sort());
    expect(
      rows("facts")
        .map((r) => r.event_id)
        .sort(),
    ).toEqual([p.collect, p.copy, p.join, p.hash].map((e) => e.eventId).sort());
    expect(rows("deadLetters").map((r) => [r.source, (r as { error_code?: string }).error_code])).toEqual([["t/0/2", "STORE"]]);
    expect(attempts).toBeLessThan(10);

    // The next batch is not held back by the refused record.
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1)] });
    expect((await processor.processMessages([msg(u, "t/0/5")])).violations).toBe(2);
  });

  it("writes the alerts of a halved batch no later than the violations that raise them", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const stored: AuditBatch[] = [];
    const processor = createProcessor(
      { policy, taxonomy, codec, alerts: alertPerViolation },
      {
        sink: {
          async write(batch) {
            if (batch.events.some((r) => r.service === "poison")) {
              throw new StoreDataError("writing 1 rows to t.events_v1 failed: ClickHouse error 469 (VIOLATED_CONSTRAINT)");
            }
            stored.push(structuredClone(batch));
          },
        },
      },
    );
    const p = pipeline2019();
    const poison = collect("other", { phone: [PHONE] }, [SECURITY], { service: "poison", subjects: [pseudo(3)] });
    const uses = [1, 2].map((n) => use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(n)] }));
    const events = [p.collect, p.copy, p.join, p.hash, poison, ...uses];
    const result = await processor.processMessages(events.map((e, i) => msg(e, `t/0/${i}`)));
    expect(result.violations).toBe(4);
    expect(stored.length).toBeGreaterThan(1);
    // Each violation's alert is in its write or an earlier one (the store writes a write's alerts first).
    const alertWrite = new Map(stored.flatMap((b, i) => b.outbox.map((o) => [o.webhook_id, i] as const)));
    const violationWrites = stored.flatMap((b, i) => b.violations.map((v) => [v.violation_id, i] as const));
    expect(violationWrites).toHaveLength(4);
    for (const [id, i] of violationWrites) expect(alertWrite.get(`w-${id}`), id).toBeLessThanOrEqual(i);
  });
});
