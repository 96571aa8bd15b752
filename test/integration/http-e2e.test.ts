// End to end on the embedded default: services emit through the SDK's HTTP transport to a real
// auditor on 127.0.0.1, which evaluates and stores into the real ClickHouse engine (chDB).
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, affectedSummary, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import { createEmitter, createHttpTransport } from "../../services/emitter/index.ts";
import { startIngestServer, type IngestServer } from "../../services/api/index.ts";
import { emptyGroundTruth, generateScenario, SCENARIO_RULE } from "../../services/demo/index.ts";
import { EVENT_BATCH_MEDIA_TYPE, frameBatch } from "../../services/codec/index.ts";
import { TransportError } from "../../services/errors/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir();
const { taxonomy, policy, codec } = core();
let store: Store;
let processor: Processor;
let server: IngestServer;
const TOKEN = "ingest-token-for-tests";

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("http") });
  await store.migrate();
  processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  server = await startIngestServer(processor, { port: 0, token: TOKEN });
});
afterAll(async () => {
  await server.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("emitter → HTTP → processor → chDB", () => {
  it("answers how many users were affected, equal to the planted ground truth", async () => {
    const truth = emptyGroundTruth();
    const emitter = createEmitter(
      { transport: createHttpTransport({ url: server.url, token: TOKEN }), pseudonymKey: HMAC_KEY, maxBatch: 2000, lingerMs: 5 },
      { codec },
    );
    for (const input of generateScenario({ users: 4000, seed: 11 }, truth)) await emitter.emit(input);
    await emitter.close();
    expect(emitter.stats.sent).toBe(truth.events);
    expect(emitter.stats.rejected).toBe(0);

    const summary = await affectedSummary(store, { ruleId: SCENARIO_RULE });
    expect(summary.subjects).toBe(truth.affectedUsers);
    expect(summary.records).toBe(truth.affectedRecords);
    expect(summary.violationEvents).toBe(truth.violatingEvents);
    expect(new Date(`${summary.firstViolation?.replace(" ", "T")}Z`).toISOString()).toBe(truth.firstViolation);
    expect(new Date(`${summary.lastViolation?.replace(" ", "T")}Z`).toISOString()).toBe(truth.lastViolation);
    expect(summary.categories).toEqual(truth.categories);
    expect(summary.services).toEqual(truth.services);
    expect(summary.externalShares.carryingViolatedData).toBe(truth.externalSharesOfViolatedData);
  });

  it("dead-letters a bad message with its reason and stores the rest of the batch", async () => {
    const good = codec.encode({
      eventId: "http-good-1",
      kind: "USE",
      occurredAt: Date.parse("2019-05-05T00:00:00Z"),
      service: "login-service",
      job: { namespace: "web", name: "login.sms-code" },
      runId: "r",
      inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number", categories: [] }] }],
      outputs: [],
      transform: "OTHER",
      fieldLineage: [],
      masking: "NONE",
      purposes: ["essential.service.authentication"],
      dataSubject: "customer",
      subjects: ["0123456789abcdef0123456789abcdef"],
      recipient: null,
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      pseudonymKeyId: "default",
      attributes: {},
    });
    const garbage = Buffer.from("not avro at all");
    const res = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": EVENT_BATCH_MEDIA_TYPE, authorization: `Bearer ${TOKEN}` },
      body: frameBatch([good, garbage]),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: number; rejected: { index: number; code: string; reason: string }[] };
    expect(body.accepted).toBe(1);
    expect(body.rejected).toEqual([{ index: 1, code: "SCHEMA", reason: expect.stringContaining("not Avro single-object encoded") }]);
    const [stored] = await store.query<{ verdict: string; trace_id: string }>(
      `SELECT verdict, trace_id FROM ${store.database}.${Table.events} WHERE event_id = 'http-good-1'`,
    );
    expect(stored).toEqual({ verdict: "ok", trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" });
    const letters = await store.query<{ reason: string; payload_base64: string; payload_bytes: number; redacted: number; source: string }>(
      `SELECT reason, payload_base64, payload_bytes, redacted, source FROM ${store.database}.${Table.deadLetters}`,
    );
    expect(letters).toHaveLength(1);
    // It never decoded, so it may hold anything: only its length and SHA-256 are kept.
    expect(letters[0]).toMatchObject({ payload_base64: "", payload_bytes: garbage.length, redacted: 1 });
    expect(letters[0]?.source).toMatch(/^http 127\.0\.0\.1:\d+ #1$/);
  });

  it("refuses requests without the token, with the wrong media type, or to unknown paths", async () => {
    const post = (headers: Record<string, string>, path = "/v1/events") =>
      fetch(`${server.url}${path}`, { method: "POST", headers, body: frameBatch([]) });
    expect((await post({ "content-type": EVENT_BATCH_MEDIA_TYPE })).status).toBe(401);
    expect((await post({ "content-type": "application/json", authorization: `Bearer ${TOKEN}` })).status).toBe(415);
    expect((await post({ "content-type": EVENT_BATCH_MEDIA_TYPE, authorization: `Bearer ${TOKEN}` }, "/nope")).status).toBe(404);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("gives a transport error naming the auditor when it cannot be reached, after retrying", async () => {
    const transport = createHttpTransport({ url: "http://127.0.0.1:9", maxAttempts: 2, backoffMs: 1, timeoutMs: 500 });
    const error = await transport.send([{ value: Buffer.from("x"), key: "k", eventId: "e", traceparent: null }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).message).toContain("cannot reach the auditor at http://127.0.0.1:9/v1/events");
    expect((error as TransportError).retriable).toBe(true);
  });
});
