import { createHmac } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createEventCodec, loadEventSchemas, Transform, type EventCodec } from "../../../services/codec/index.ts";
import { ConfigError, SchemaError, TransportError } from "../../../services/errors/index.ts";
import {
  createEmitter,
  createInProcessTransport,
  createPseudonymizer,
  MIN_KEY_BYTES,
  uuidv7,
  type EmitInput,
  type EmitterOptions,
  type SendResult,
  type Transport,
  type OutboundMessage,
} from "../../../services/emitter/index.ts";
import { createProcessor } from "../../../services/processor/index.ts";
import { ADS, AUTHENTICATION, capturingSink, defaultPolicy, PHONE, SECURITY } from "../helpers.ts";

const KEY = "ab".repeat(32); // 32 bytes as hex
const OTHER_KEY = "cd".repeat(32);
const codec: EventCodec = createEventCodec(loadEventSchemas());

/** A transport that records every batch and answers at once. */
function recordingTransport(): Transport & { batches: Uint8Array[][]; closed: number } {
  const t = {
    batches: [] as Uint8Array[][],
    closed: 0,
    async send(messages: OutboundMessage[]): Promise<SendResult> {
      t.batches.push(messages.map((m) => m.value));
      return { accepted: messages.length, rejected: [] };
    },
    async close() {
      t.closed++;
    },
  };
  return t;
}

/** A transport whose sends stay in flight until released; tracks how many are in flight at once. */
function heldTransport(): Transport & { inFlight: number; maxInFlight: number; sends: number; releaseOne(): void; releaseAll(): void } {
  const waiting: (() => void)[] = [];
  const t = {
    inFlight: 0,
    maxInFlight: 0,
    sends: 0,
    send(messages: OutboundMessage[]): Promise<SendResult> {
      t.sends++;
      t.inFlight++;
      t.maxInFlight = Math.max(t.maxInFlight, t.inFlight);
      return new Promise<SendResult>((resolve) =>
        waiting.push(() => {
          t.inFlight--;
          resolve({ accepted: messages.length, rejected: [] });
        }),
      );
    },
    async close() {},
    releaseOne() {
      waiting.shift()?.();
    },
    releaseAll() {
      while (waiting.length > 0) waiting.shift()?.();
    },
  };
  return t;
}

const settle = async (rounds = 5) => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
};

function emitter(transport: Transport, options: Partial<EmitterOptions> = {}) {
  return createEmitter({ transport, pseudonymKey: KEY, service: "test-service", lingerMs: 60_000, ...options }, { codec });
}

const useInput = (i: number, overrides: Partial<EmitInput> = {}): EmitInput => ({
  kind: "USE",
  job: { namespace: "web", name: "login" },
  runId: "run-1",
  inputs: [{ namespace: "wh", name: "security.two_factor", fields: [{ name: "phone_number" }] }],
  purposes: [AUTHENTICATION],
  dataSubject: "customer",
  subjects: [`user-${i}`],
  ...overrides,
});

afterEach(() => {
  vi.useRealTimers();
});

describe("pseudonymizer", () => {
  it("is a deterministic HMAC-SHA256 of the identifier, truncated to 32 lowercase hex digits", () => {
    const p = createPseudonymizer(KEY);
    const expected = createHmac("sha256", Buffer.from(KEY, "hex")).update("alice@example.com").digest("hex").slice(0, 32);
    expect(p("alice@example.com")).toBe(expected);
    expect(p("alice@example.com")).toMatch(/^[0-9a-f]{32}$/);
    expect(createPseudonymizer(KEY)("alice@example.com")).toBe(expected);
    expect(createPseudonymizer(Buffer.from(KEY, "hex"))("alice@example.com")).toBe(expected);
    expect(p("bob@example.com")).not.toBe(expected);
  });

  it("ignores case and surrounding spaces of the identifier", () => {
    const p = createPseudonymizer(KEY);
    expect(p("  Alice@Example.COM ")).toBe(p("alice@example.com"));
  });

  it("gives different pseudonyms under different keys", () => {
    expect(createPseudonymizer(KEY)("alice@example.com")).not.toBe(createPseudonymizer(OTHER_KEY)("alice@example.com"));
  });

  it("rejects a key shorter than 32 bytes with a ConfigError telling how to generate one", () => {
    expect(MIN_KEY_BYTES).toBe(32);
    for (const [key, bytes] of [
      ["too-short", 9],
      [new Uint8Array(31), 31],
      ["ab".repeat(16), 16],
    ] as const) {
      let error: unknown;
      try {
        createPseudonymizer(key);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).code).toBe("CONFIG");
      expect((error as Error).message).toBe(
        `the pseudonymisation key must be at least 32 bytes (got ${bytes}); generate one with: openssl rand -hex 32`,
      );
    }
    expect(createPseudonymizer(new Uint8Array(32))("x")).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("emitter: encoding and validation", () => {
  it("never puts raw identifiers in the encoded bytes, only their pseudonyms", async () => {
    const t = recordingTransport();
    const e = emitter(t, { pseudonymKeyId: "k-2019" });
    const raw = ["alice@example.com", "+15551234567"];
    await e.emit(useInput(0, { subjects: raw, eventId: "00000000-0000-4000-8000-000000000001" }));
    await e.flush();

    expect(t.batches).toHaveLength(1);
    const bytes = Buffer.from(t.batches[0]?.[0] ?? new Uint8Array());
    for (const r of raw) {
      expect(bytes.includes(r)).toBe(false);
      expect(bytes.includes(r.toLowerCase())).toBe(false);
    }
    const decoded = codec.decode(bytes).event;
    const p = createPseudonymizer(KEY);
    expect(decoded.subjects).toEqual(raw.map(p));
    expect(decoded).toMatchObject({
      eventId: "00000000-0000-4000-8000-000000000001",
      service: "test-service",
      pseudonymKeyId: "k-2019",
      transform: "OTHER",
      masking: "NONE",
    });
    expect(decoded.inputs[0]?.fields).toEqual([{ name: "phone_number", categories: [] }]);
  });

  it("rejects an event without job with a SchemaError naming 'job', and sends nothing", async () => {
    const t = recordingTransport();
    const e = emitter(t);
    const { job: _job, ...noJob } = useInput(0);
    const error = await e.emit(noJob as EmitInput).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as SchemaError).message).toMatch(/^event field 'job' is not a valid .*\bJob\b/);
    expect((error as SchemaError).context.path).toBe("job");
    await e.flush();
    expect(t.batches).toEqual([]);
    expect(e.stats.emitted).toBe(0);
  });

  it("rejects an empty subject with a SchemaError naming 'subjects[1]' that does not quote the other subjects", async () => {
    const e = emitter(recordingTransport());
    const error = await e.emit(useInput(0, { subjects: ["alice@example.com", ""] })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toBe("event field 'subjects[1]' must be a non-empty string");
    expect((error as Error).message).not.toContain("alice");
  });

  it("takes occurredAt as a Date, epoch milliseconds or ISO-8601 text, and names it when it is none of these", async () => {
    const t = recordingTransport();
    const e = emitter(t);
    const at = Date.UTC(2019, 8, 17, 10, 0, 0);
    await e.emit(useInput(1, { occurredAt: new Date(at) }));
    await e.emit(useInput(2, { occurredAt: at }));
    await e.emit(useInput(3, { occurredAt: "2019-09-17T10:00:00Z" }));
    await e.flush();
    expect(t.batches.flat().map((m) => codec.decode(m).event.occurredAt)).toEqual([at, at, at]);
    const error = await e.emit(useInput(4, { occurredAt: "yesterday-ish" })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toContain("'occurredAt'");
  });

  it("rejects an unknown event kind with a SchemaError naming 'kind'", async () => {
    const e = emitter(recordingTransport());
    const error = await e.emit(useInput(0, { kind: "READ" as EmitInput["kind"] })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toMatch(/^event field 'kind' is not a valid enum \(COLLECT, DERIVE, USE, SHARE, DELETE\)$/);
  });

  it("rejects a pseudonymousSubjects entry that is not 32 hex digits", async () => {
    const e = emitter(recordingTransport());
    const error = await e
      .emit(useInput(0, { subjects: [], pseudonymousSubjects: ["a".repeat(32), "alice@example.com"] }))
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toContain("'pseudonymousSubjects[1]'");
    expect((error as Error).message).not.toContain("alice");
  });
});

describe("emitter: batching and delivery", () => {
  it("sends 7 emits with maxBatch 3 as batches of 3, 3 and 1 after flush", async () => {
    const t = recordingTransport();
    const e = emitter(t, { maxBatch: 3 });
    for (let i = 0; i < 7; i++) await e.emit(useInput(i));
    expect(t.batches.map((b) => b.length)).toEqual([3, 3]);
    await e.flush();
    expect(t.batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(e.stats).toEqual({ emitted: 7, sent: 7, rejected: 0, batches: 3 });
    const ids = t.batches.flat().map((m) => codec.decode(m).event.subjects[0]);
    expect(ids).toEqual(Array.from({ length: 7 }, (_, i) => createPseudonymizer(KEY)(`user-${i}`)));
  });

  it("never sends more than maxBatch events in one batch when emits are not awaited one by one", async () => {
    const t = recordingTransport();
    const e = emitter(t, { maxBatch: 3 });
    await Promise.all(Array.from({ length: 7 }, (_, i) => e.emit(useInput(i))));
    await e.flush();
    expect(t.batches.flat()).toHaveLength(7);
    expect(Math.max(...t.batches.map((b) => b.length))).toBeLessThanOrEqual(3);
  });

  it("sends a partial batch once lingerMs has passed, without flush", async () => {
    vi.useFakeTimers();
    const t = recordingTransport();
    const e = emitter(t, { maxBatch: 100, lingerMs: 50 });
    await e.emit(useInput(1));
    await vi.advanceTimersByTimeAsync(30);
    await e.emit(useInput(2));
    await vi.advanceTimersByTimeAsync(19);
    expect(t.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.batches.map((b) => b.length)).toEqual([2]);
    expect(e.stats.sent).toBe(2);
  });

  it("flushes on close, closes the transport once, and refuses emits afterwards", async () => {
    const t = recordingTransport();
    const e = emitter(t, { maxBatch: 10 });
    await e.emit(useInput(1));
    await e.emit(useInput(2));
    expect(t.batches).toEqual([]);
    await e.close();
    expect(t.batches.map((b) => b.length)).toEqual([2]);
    expect(t.closed).toBe(1);
    await e.close();
    expect(t.closed).toBe(1);
    const error = await e.emit(useInput(3)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toBe("the emitter is closed");
  });

  it("surfaces a transport failure of a background send on the next flush, once", async () => {
    const failure = new TransportError("auditor unreachable", { retriable: true });
    let calls = 0;
    const t: Transport = {
      async send(messages) {
        calls++;
        if (calls === 1) throw failure;
        return { accepted: messages.length, rejected: [] };
      },
      async close() {},
    };
    const e = emitter(t, { maxBatch: 2 });
    await e.emit(useInput(1));
    await e.emit(useInput(2)); // fills the batch: sent in the background, fails
    await settle();
    expect(calls).toBe(1);
    await expect(e.flush()).rejects.toBe(failure);
    await expect(e.flush()).resolves.toBeUndefined();
    await e.emit(useInput(3));
    await e.flush();
    expect(calls).toBe(2);
    expect(e.stats).toMatchObject({ emitted: 3, sent: 1, batches: 2 });
  });

  it("makes emit wait while maxInFlight batches are being sent", async () => {
    const t = heldTransport();
    const e = emitter(t, { maxBatch: 1, maxInFlight: 2 });
    await e.emit(useInput(1));
    await e.emit(useInput(2));
    expect(t.inFlight).toBe(2);

    let third = false;
    const pending = e.emit(useInput(3)).then(() => {
      third = true;
    });
    await settle();
    expect(third).toBe(false);
    expect(t.sends).toBe(2);

    t.releaseOne();
    await pending;
    expect(third).toBe(true);
    expect(t.sends).toBe(3);
    expect(t.maxInFlight).toBe(2);
    const flushed = e.flush();
    t.releaseAll();
    await flushed;
    expect(e.stats.sent).toBe(3);
    expect(t.maxInFlight).toBe(2);
  });

  it("keeps batches sent by the linger timer within maxInFlight", async () => {
    vi.useFakeTimers();
    const t = heldTransport();
    const e = emitter(t, { maxBatch: 100, lingerMs: 10, maxInFlight: 1 });
    for (let i = 0; i < 3; i++) {
      await e.emit(useInput(i));
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(t.maxInFlight).toBeLessThanOrEqual(1);
    t.releaseAll();
  });
});

describe("emitter: in-process transport into a real processor", () => {
  it("stores the emitted events, pseudonymised and audited, and reports nothing rejected", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const sink = capturingSink();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink });
    const e = emitter(createInProcessTransport(processor), { maxBatch: 100 });
    const ref = (name: string, field: string) => ({ namespace: "wh", name, field });

    await e.emit({
      kind: "COLLECT",
      job: { namespace: "web", name: "2fa-enrolment" },
      runId: "r1",
      outputs: [{ namespace: "wh", name: "security.two_factor", fields: [{ name: "phone_number", categories: [PHONE] }] }],
      purposes: [SECURITY],
      dataSubject: "customer",
      subjects: ["+15551234567"],
    });
    await e.emit({
      kind: "DERIVE",
      job: { namespace: "batch", name: "ads-keys" },
      runId: "r1",
      inputs: [{ namespace: "wh", name: "security.two_factor" }],
      outputs: [{ namespace: "wh", name: "ads.matching_keys" }],
      fieldLineage: [
        {
          output: ref("ads.matching_keys", "phone_sha256"),
          inputs: [ref("security.two_factor", "phone_number")],
          transform: Transform.hash,
        },
      ],
      transform: Transform.hash,
      dataSubject: "customer",
    });
    await e.emit({
      kind: "USE",
      job: { namespace: "ads", name: "match" },
      runId: "r1",
      inputs: [{ namespace: "wh", name: "ads.matching_keys", fields: [{ name: "phone_sha256" }] }],
      purposes: [ADS],
      dataSubject: "customer",
      subjects: ["+15551234567"],
    });
    await e.close();

    expect(e.stats).toEqual({ emitted: 3, sent: 3, rejected: 0, batches: 1 });
    expect(sink.batches).toHaveLength(1);
    const batch = sink.batches[0]!;
    expect(batch.events.map((r) => [r.kind, r.verdict ?? null])).toEqual([
      ["COLLECT", null],
      ["DERIVE", null],
      ["USE", "violation"],
    ]);
    expect(batch.events[2]?.subjects).toEqual([createPseudonymizer(KEY)("+15551234567")]);
    expect(batch.violations.map((v) => v.rule_id).sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    expect(JSON.stringify(batch)).not.toContain("+15551234567");
    expect(batch.deadLetters).toEqual([]);
  });

  it("reports events the processor rejects to onRejected with their index in the batch", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const sink = capturingSink();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink });
    const rejected: SendResult["rejected"][] = [];
    const e = emitter(createInProcessTransport(processor), { onRejected: (r) => rejected.push(r) });
    await e.emit(useInput(1));
    await e.emit(useInput(2, { purposes: ["marketing.ads"] })); // not a fideslang data use
    await e.flush();

    expect(e.stats).toMatchObject({ emitted: 2, sent: 1, rejected: 1 });
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toEqual([
      { index: 1, code: "INPUT", reason: "event USE field 'purposes[0]' is not a fideslang data use ('marketing.ads')" },
    ]);
    expect(sink.batches[0]?.deadLetters.map((d) => d.source)).toEqual(["in-process#1"]);
  });
});

describe("event ids the SDK makes", () => {
  it("are UUIDv7: version 7, RFC variant, the time in the first 48 bits, so ids made later sort later", () => {
    const at = Date.UTC(2026, 10, 29, 9, 30);
    const ids = [uuidv7(at), uuidv7(at + 1), uuidv7(at + 1000), uuidv7(at + 86_400_000)];
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(ids[0]!.replace("-", "").slice(0, 12), 16)).toBe(at);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(Array.from({ length: 1000 }, () => uuidv7(at))).size).toBe(1000);
  });
});

describe("emitter options, checked at creation (as plain JavaScript passes them)", () => {
  const create = (options: unknown) => () => createEmitter(options as EmitterOptions, { codec });
  const base = () => ({ transport: recordingTransport(), pseudonymKey: KEY });

  it("names a missing pseudonymKey with what it must be, instead of a TypeError", () => {
    const { pseudonymKey: _key, ...withoutKey } = base();
    expect(create(withoutKey)).toThrow(ConfigError);
    expect(create(withoutKey)).toThrow(
      "createEmitter: option 'pseudonymKey' is required: an HMAC key of at least 32 bytes (hex, base64 or text); generate one with: openssl rand -hex 32",
    );
    expect(() => createPseudonymizer(undefined as unknown as string)).toThrow(ConfigError);
  });

  it("gives each other problem its own line, naming the option and never the key", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base(), pseudonymKey: 12345 }, "option 'pseudonymKey' must be a string (hex, base64 or text) or a Uint8Array"],
      [{ pseudonymKey: KEY }, "option 'transport' is required"],
      [
        { ...base(), transport: { send: () => undefined } },
        "option 'transport' must be a transport: an object with send(messages) and close()",
      ],
      [{ ...base(), pseudonymkey: KEY }, "option 'pseudonymkey' is not an emitter option (did you mean 'pseudonymKey'?)"],
      [{ ...base(), batchSize: 10 }, "option 'batchSize' is not an emitter option (options: transport, pseudonymKey,"],
      [{ ...base(), maxBatch: 0 }, "option 'maxBatch' must be a whole number from 1 to 100000"],
      [{ ...base(), lingerMs: "20" }, "option 'lingerMs' must be a whole number from 0 to 60000"],
      [{ ...base(), maxInFlight: 1.5 }, "option 'maxInFlight' must be a whole number from 1 to 64"],
      [{ ...base(), pseudonymKeyId: "key id with spaces" }, "option 'pseudonymKeyId' must be 1 to 64 letters, digits, '.', '_' or '-'"],
      [{ ...base(), service: " " }, "option 'service' must be a non-empty string"],
      [{ ...base(), onRejected: "log" }, "option 'onRejected' must be a function"],
    ];
    for (const [options, message] of cases) {
      let error: unknown;
      try {
        createEmitter(options as unknown as EmitterOptions, { codec });
      } catch (e) {
        error = e;
      }
      expect(error, message).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(message);
      expect((error as Error).message).not.toContain(KEY);
      expect((error as Error).message.split("\n")).toHaveLength(1);
    }
    expect(create(null)).toThrow("createEmitter: options must be an object");
  });

  it("accepts every documented option at its bounds", async () => {
    const emitter = createEmitter(
      {
        ...base(),
        pseudonymKeyId: "k-2019.1",
        service: "auth",
        maxBatch: 100_000,
        lingerMs: 0,
        maxInFlight: 64,
        pseudonymCacheSize: 0,
        onRejected: () => undefined,
      },
      { codec },
    );
    await emitter.close();
  });
});
