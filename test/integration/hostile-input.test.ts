// Hostile input through the real intakes (the HTTP server on 127.0.0.1, NDJSON and Avro container
// files, the in-process SDK) into the real store (chDB): bounded decoding, oversize messages,
// out-of-range times, and a redaction scan of every dead letter kept.
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import {
  createEmitter,
  createEventBuilder,
  createHttpTransport,
  createInProcessTransport,
  createPseudonymizer,
  type EmitInput,
} from "../../services/emitter/index.ts";
import { startIngestServer, type IngestServer } from "../../services/api/index.ts";
import { ingestFiles } from "../../services/ingest/index.ts";
import {
  AVRO_SCHEMA_DIR,
  EVENT_BATCH_MEDIA_TYPE,
  frameBatch,
  writeContainerFile,
  type DataAccessEvent,
} from "../../services/codec/index.ts";
import { arrayLengthBomb, avroLong } from "../unit/codec/hostile.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir("lineage-hostile-");
const { taxonomy, policy, codec } = core();
let store: Store;
let processor: Processor;
let server: IngestServer;
const MB = 1024 * 1024;
const EMAIL = "alice@example.com";
const PHONE = "+15555550123";

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("hostile") });
  await store.migrate();
  processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  server = await startIngestServer(processor, { port: 0 });
});
afterAll(async () => {
  await server.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function event(overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  n++;
  return {
    eventId: `hostile-${n}`,
    kind: "COLLECT",
    occurredAt: Date.parse("2019-03-01T00:00:00Z"),
    service: "auth-service",
    job: { namespace: "web", name: "2fa-enrolment" },
    runId: "r",
    inputs: [],
    outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
    transform: "OTHER",
    fieldLineage: [],
    masking: "NONE",
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    subjects: ["0123456789abcdef0123456789abcdef"],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
    ...overrides,
  };
}

async function post(messages: Uint8Array[]) {
  const res = await fetch(`${server.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": EVENT_BATCH_MEDIA_TYPE },
    body: frameBatch(messages),
  });
  return {
    status: res.status,
    body: (await res.json()) as { accepted: number; rejected: { index: number; code: string; reason: string }[] },
  };
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The dead letter kept for the message with this SHA-256. */
async function letter(sha: string) {
  return store.query<{ redacted: number; payload_base64: string; payload_bytes: number }>(
    `SELECT redacted, payload_base64, payload_bytes FROM ${store.database}.${Table.deadLetters} FINAL WHERE payload_sha256 = {sha:String}`,
    { sha },
  );
}

async function stored(ids: string[]): Promise<string[]> {
  const rows = await store.query<{ event_id: string }>(
    `SELECT event_id FROM ${store.database}.${Table.events} WHERE event_id IN {ids:Array(String)} ORDER BY event_id`,
    { ids },
  );
  return rows.map((r) => r.event_id);
}

describe("hostile messages through the HTTP intake", () => {
  it("dead-letters the 166-byte array-length bomb with its reason and stores the good messages around it, memory unchanged", async () => {
    const [a, b] = [event(), event()];
    const before = process.memoryUsage().rss;
    const { status, body } = await post([codec.encode(a), arrayLengthBomb(codec), codec.encode(b)]);
    expect(process.memoryUsage().rss - before).toBeLessThan(128 * MB);
    expect(status).toBe(200);
    expect(body).toEqual({
      accepted: 2,
      rejected: [
        { index: 1, code: "SCHEMA", reason: "message field 'inputs' claims 268435456 items, over the limit of 100000 per message" },
      ],
    });
    expect(await stored([a.eventId, b.eventId])).toEqual([a.eventId, b.eventId].sort());
  });

  it("dead-letters a 10 MB message alone with its reason and stores the two good ones around it", async () => {
    const [a, b] = [event(), event()];
    const big = Buffer.concat([Buffer.from(codec.encode(event())), Buffer.alloc(10_000_000, 0x61)]);
    const { status, body } = await post([codec.encode(a), big, codec.encode(b)]);
    expect(status).toBe(200);
    expect(body).toEqual({
      accepted: 2,
      rejected: [{ index: 1, code: "SCHEMA", reason: `message is ${big.length} bytes, over the 1048576-byte message limit` }],
    });
    expect(await stored([a.eventId, b.eventId])).toEqual([a.eventId, b.eventId].sort());
  });

  it("dead-letters occurredAt 2^52-1 instead of storing it as 9999-12-31", async () => {
    const far = event({ occurredAt: 2 ** 52 - 1 });
    const { body } = await post([codec.encode(far)]);
    expect(body.accepted).toBe(0);
    expect(body.rejected[0]?.reason).toMatch(/field 'occurredAt' must be milliseconds since 1970, a time the store keeps exactly/);
    expect(await stored([far.eventId])).toEqual([]);
  });

  it("keeps no byte of a raw e-mail as subject plus one trailing byte", async () => {
    const leaky = Buffer.concat([Buffer.from(codec.encode(event({ subjects: [EMAIL] }))), Buffer.from([0])]);
    const { body } = await post([leaky]);
    expect(body.rejected).toEqual([{ index: 0, code: "SCHEMA", reason: "message body does not decode with schema version 3" }]);
    expect(await letter(sha256(leaky))).toEqual([{ redacted: 1, payload_base64: "", payload_bytes: leaky.length }]);
  });
});

describe("the SDK keeps under the limits", () => {
  it("refuses at emit() an event over the 1 MiB message limit, with a clear error, and sends nothing", async () => {
    const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, service: "sdk" }, { codec });
    await expect(emitter.emit({ ...line0(), eventId: "sdk-huge", attributes: { note: "x".repeat(MB) } })).rejects.toThrow(
      /^event is \d+ bytes encoded, over the 1048576-byte message limit; split it into smaller events$/,
    );
    await emitter.close();
    expect(emitter.stats).toMatchObject({ emitted: 0, batches: 0 });
    expect(await stored(["sdk-huge"])).toEqual([]);
  });

  it("splits a batch over the intake's body limit into requests under it, and every event is stored", async () => {
    const small = await startIngestServer(processor, { port: 0, maxBodyBytes: 64 * 1024 });
    onTestFinished(() => small.close());
    const emitter = createEmitter(
      {
        transport: createHttpTransport({ url: small.url, maxBodyBytes: 64 * 1024 }),
        pseudonymKey: HMAC_KEY,
        service: "sdk",
        maxBatch: 500,
        lingerMs: 5,
      },
      { codec },
    );
    const ids = Array.from({ length: 500 }, (_, i) => `split-${i}`);
    // ~600 bytes each: one batch of 500 is ~300 KB, over the server's 64 KiB.
    for (const id of ids) await emitter.emit({ ...line0(), eventId: id, attributes: { pad: "p".repeat(400) } });
    await emitter.close();
    expect(emitter.stats).toMatchObject({ emitted: 500, sent: 500, rejected: 0, batches: 1 });
    expect(await stored(ids)).toHaveLength(500);
  });

  it("reads a container file record that claims 2^28 items as the break, with the records before it stored", async () => {
    const file = join(dir, "bomb.avro");
    const v2 = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v2.avsc"), "utf8")) as object;
    await writeContainerFile(file, v2, [event({ eventId: "before-bomb" })]);
    const good = readFileSync(file);
    // A second block holding the 166-byte bomb's body (its inputs claim 2^28 items), with the file's sync marker.
    const body = arrayLengthBomb(codec).subarray(10);
    writeFileSync(file, Buffer.concat([good, avroLong(1), avroLong(body.length), body, good.subarray(good.length - 16)]));
    const before = process.memoryUsage().rss;
    await expect(
      ingestFiles([file], {
        processor,
        codec,
        buildEvent: () => createEventBuilder({ pseudonymize: createPseudonymizer(HMAC_KEY), pseudonymKeyId: "default" }),
      }),
    ).rejects.toThrow(
      /bomb\.avro: record 1 cannot be read: message field 'inputs' claims 268435456 items, over the limit of 100000 per message \(block 1, byte \d+, after 1 records\); the 1 records before it were ingested \(1 stored, 0 dead-lettered\)$/,
    );
    expect(process.memoryUsage().rss - before).toBeLessThan(128 * MB);
    expect(await stored(["before-bomb"])).toEqual(["before-bomb"]);
  });
});

describe("hostile files", () => {
  const build = () => createEventBuilder({ pseudonymize: createPseudonymizer(HMAC_KEY), pseudonymKeyId: "default" });
  const line = (o: Partial<EmitInput> & Record<string, unknown>) =>
    JSON.stringify({
      kind: "COLLECT",
      occurredAt: "2019-03-01T10:00:00Z",
      service: "auth-service",
      job: { namespace: "web", name: "2fa-enrolment" },
      runId: "r",
      outputs: [
        {
          namespace: "warehouse",
          name: "security.two_factor",
          fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
        },
      ],
      purposes: ["essential.service.security"],
      dataSubject: "customer",
      ...o,
    });

  it("keeps no byte of an NDJSON line with a raw e-mail in pseudonymousSubjects, nor of an Avro record with a raw e-mail and occurredAt -1", async () => {
    const ndjson = join(dir, "leaky.ndjson");
    writeFileSync(
      ndjson,
      `${line({ eventId: "nd-leaky", pseudonymousSubjects: [EMAIL] })}\n${line({ eventId: "nd-phone", pseudonymousSubjects: [PHONE] })}\n`,
    );
    const avro = join(dir, "leaky.avro");
    const v2 = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v2.avsc"), "utf8")) as object;
    await writeContainerFile(avro, v2, [event({ eventId: "avro-leaky", subjects: [EMAIL], occurredAt: -1 })]);

    const result = await ingestFiles([ndjson, avro], { processor, codec, buildEvent: build });
    expect(result).toMatchObject({ records: 3, accepted: 0, rejected: 3 });
    const rows = await store.query<{ source: string; redacted: number; payload_base64: string }>(
      `SELECT source, redacted, payload_base64 FROM ${store.database}.${Table.deadLetters} WHERE source LIKE '%leaky%' ORDER BY source`,
    );
    expect(rows.map((r) => [r.source.slice(dir.length + 1), r.redacted, r.payload_base64])).toEqual([
      ["leaky.avro#0", 1, ""],
      ["leaky.ndjson:1", 1, ""],
      ["leaky.ndjson:2", 1, ""],
    ]);
  });

  it("reads an NDJSON time without an offset as UTC, whatever the machine's zone", async () => {
    const zone = process.env["TZ"];
    process.env["TZ"] = "Pacific/Auckland";
    onTestFinished(() => {
      if (zone === undefined) delete process.env["TZ"];
      else process.env["TZ"] = zone;
    });
    const file = join(dir, "times.ndjson");
    writeFileSync(
      file,
      `${line({ eventId: "nd-utc", occurredAt: "2019-01-31T12:00", pseudonymousSubjects: ["0123456789abcdef0123456789abcdef"] })}\n`,
    );
    await ingestFiles([file], { processor, codec, buildEvent: build });
    const [row] = await store.query<{ t: string }>(
      `SELECT toString(occurred_at) AS t FROM ${store.database}.${Table.events} WHERE event_id = 'nd-utc'`,
    );
    expect(row?.t).toBe("2019-01-31 12:00:00.000");
  });
});

describe("what is stored", () => {
  it("stores the schema version of each event's fingerprint, from every intake", async () => {
    const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, service: "sdk" }, { codec });
    await emitter.emit({ ...line0(), eventId: "sdk-1" });
    await emitter.close();
    const v1 = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v1.avsc"), "utf8")) as object;
    const file = join(dir, "v1.avro");
    const { pseudonymKeyId: _k, attributes: _a, ...v1Event } = event({ eventId: "avro-v1" });
    await writeContainerFile(file, v1, [v1Event]);
    await ingestFiles([file], {
      processor,
      codec,
      buildEvent: () => createEventBuilder({ pseudonymize: createPseudonymizer(HMAC_KEY), pseudonymKeyId: "default" }),
    });

    const rows = await store.query<{ event_id: string; schema_fingerprint: string; schema_version: number }>(
      `SELECT event_id, schema_fingerprint, schema_version FROM ${store.database}.${Table.events} FINAL ORDER BY event_id`,
    );
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) expect([r.event_id, r.schema_version]).toEqual([r.event_id, codec.versionOf(r.schema_fingerprint)]);
    expect(rows.find((r) => r.event_id === "avro-v1")?.schema_version).toBe(1);
    expect(rows.find((r) => r.event_id === "nd-utc")?.schema_version).toBe(3);
    expect(rows.find((r) => r.event_id === "sdk-1")?.schema_version).toBe(3);
  });

  it("redaction scan: no dead letter holds raw e-mail or phone bytes; a payload is kept only when it decoded and holds only pseudonyms", async () => {
    const rows = await store.query<{
      source: string;
      reason: string;
      payload_base64: string;
      payload_bytes: number;
      payload_sha256: string;
      redacted: number;
    }>(`SELECT source, reason, payload_base64, payload_bytes, payload_sha256, redacted FROM ${store.database}.${Table.deadLetters} FINAL`);
    // Every hostile message of this file: bomb, 10 MB, 2^52-1, e-mail + byte, two NDJSON lines, the Avro record.
    expect(rows.length).toBeGreaterThanOrEqual(7);
    for (const r of rows) {
      const everything = `${JSON.stringify(r)}\n${Buffer.from(r.payload_base64, "base64").toString("latin1")}`;
      expect(everything).not.toContain(EMAIL);
      expect(everything).not.toContain("example.com");
      expect(everything).not.toContain("5555550123");
      expect(r.payload_sha256).toMatch(/^[0-9a-f]{64}$/);
      if (r.redacted === 1) expect(r.payload_base64).toBe("");
      else expect(codec.holdsOnlyPseudonyms(codec.decode(Buffer.from(r.payload_base64, "base64")).event)).toBe(true);
    }
    // Only the out-of-range time decoded with pseudonyms only: its payload is kept.
    expect(rows.filter((r) => r.redacted === 0).map((r) => r.reason)).toEqual([expect.stringMatching(/'occurredAt'/)]);
    expect(rows.find((r) => r.payload_bytes > 10_000_000)).toMatchObject({ redacted: 1, payload_base64: "" });
  });
});

function line0(): EmitInput {
  return {
    kind: "COLLECT",
    occurredAt: "2019-03-01T10:00:00Z",
    job: { namespace: "web", name: "2fa-enrolment" },
    runId: "r",
    outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    subjects: [EMAIL],
  };
}
