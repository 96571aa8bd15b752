// Alert webhooks against a real HTTP receiver on 127.0.0.1 and the real store (chDB); the
// signatures are checked with the independent `standardwebhooks` package.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type AuditBatch, type AuditSink } from "../../services/processor/index.ts";
import { createAlertPlanner, createDeliverer, parseAlertingConfig, type Subscription } from "../../services/alerting/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { core, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-webhooks-");
const { taxonomy, policy, codec } = core();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RULE = "security-contact-not-for-marketing";
const secret = () => `whsec_${randomBytes(32).toString("base64")}`;

interface Received {
  headers: Record<string, string>;
  body: string;
}

/** A receiver whose answers are scripted per request. */
async function receiver(script: (n: number, req: IncomingMessage, res: ServerResponse) => void) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString("utf8") });
      script(received.length, req, res);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received, close: () => server.close() };
}

const ok = (_n: number, _req: IncomingMessage, res: ServerResponse) => res.writeHead(200).end("ok");

function subscription(url: string, key: string, extra: Record<string, unknown> = {}): Subscription {
  const [s] = parseAlertingConfig(
    { subscriptions: [{ id: "privacy-team", url, secret: key, rules: [RULE], timeoutMs: 300, ...extra }] },
    "test",
  ).subscriptions;
  return s as Subscription;
}

const hex = (i: number) => i.toString(16).padStart(32, "0");
let seq = 0;
function event(kind: "COLLECT" | "USE", runId: string, subjects: string[], at: number): DataAccessEvent {
  const base = {
    eventId: `wh-${++seq}`,
    occurredAt: at,
    runId,
    transform: "OTHER" as const,
    fieldLineage: [],
    masking: "NONE" as const,
    dataSubject: "customer",
    subjects,
    recipient: null,
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    pseudonymKeyId: "default",
    attributes: {},
  };
  return kind === "COLLECT"
    ? {
        ...base,
        kind,
        service: "auth-service",
        job: { namespace: "web", name: "2fa-enrolment" },
        inputs: [],
        outputs: [
          {
            namespace: "warehouse",
            name: "security.two_factor",
            fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
          },
        ],
        purposes: ["essential.service.security"],
      }
    : {
        ...base,
        kind,
        service: "partner-audiences",
        job: { namespace: "ads", name: "partner-audiences.match" },
        inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number", categories: [] }] }],
        outputs: [],
        purposes: ["marketing.advertising.third_party.targeted"],
      };
}

/** A store and a processor writing to it, or to `sinkOf(store)` (e.g. writes held back, to store by hand). */
async function setup(subs: Subscription[], database = randomDatabase("wh"), sinkOf: (store: Store) => AuditSink = (store) => store) {
  const store = await openStore({ path: dir, database });
  await store.migrate();
  const processor = createProcessor({ policy, taxonomy, codec, alerts: createAlertPlanner(subs, 3_600_000) }, { sink: sinkOf(store) });
  return { store, processor };
}

/** setup() with every write held back in `held`. */
async function setupHeld(subs: Subscription[], database: string) {
  const held: AuditBatch[] = [];
  return { held, ...(await setup(subs, database, () => ({ write: async (batch) => void held.push(batch) }))) };
}

async function feed(processor: ReturnType<typeof createProcessor>, events: DataAccessEvent[]) {
  for (let i = 0; i < events.length; i += 50) {
    await processor.processMessages(events.slice(i, i + 50).map((e) => ({ bytes: codec.encode(e), source: e.eventId })));
  }
}

async function deliveries(store: Store) {
  return store.query<{ attempt: number; status_code: number; outcome: string; webhook_id: string }>(
    `SELECT attempt, status_code, outcome, webhook_id FROM ${store.database}.${Table.deliveries} ORDER BY attempt`,
  );
}

describe("alert webhooks", () => {
  it("sends exactly one alert for a violation, signed so that standardwebhooks verifies it", async () => {
    const r = await receiver(ok);
    const key = secret();
    const sub = subscription(r.url, key);
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-01T10:00:00Z");
    await feed(processor, [
      event("COLLECT", "c", [hex(1), hex(2)], at),
      event("USE", "run-1", [hex(1)], at + 1000),
      event("USE", "run-1", [hex(2)], at + 2000),
    ]);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10, ruleDescriptions: { [RULE]: "no security contacts for ads" } });
    await deliverer.runOnce();
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    const [msg] = r.received;
    const verified = new Webhook(key).verify(msg!.body, msg!.headers) as Record<string, unknown>;
    expect(verified).toMatchObject({
      type: "lineage_audit.violation",
      version: 2,
      rule: { id: RULE, severity: "critical", mode: "enforce", description: "no security contacts for ads" },
      service: "partner-audiences",
      job: { namespace: "ads", name: "partner-audiences.match" },
      runId: "run-1",
      purposeUsed: ["marketing.advertising.third_party.targeted"],
      collectedFor: ["essential.service.security"],
      dataCategories: ["user.contact.phone_number"],
      soFar: { subjects: 2, records: 2, violatingEvents: 2, exact: false },
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect((verified["investigate"] as string).startsWith(`lineage-audit affected --rule ${RULE} --from 2019-04-01`)).toBe(true);
    expect(msg!.headers["webhook-id"]).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(() => new Webhook(secret()).verify(msg!.body, msg!.headers)).toThrow();
    expect(msg!.body).not.toContain(hex(1));
    expect(Buffer.byteLength(msg!.body)).toBeLessThan(20_000);
    r.close();
    await store.close();
  });

  it("counts soFar exactly per person, with the field-level count beside it as possibly affected", async () => {
    const r = await receiver(ok);
    const key = secret();
    const sub = subscription(r.url, key);
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-01T10:00:00Z");
    await feed(processor, [
      event("COLLECT", "c", [hex(1)], at),
      // hex(2) is named by the match but enrols only afterwards; hex(3) was never collected.
      event("USE", "run-1", [hex(1), hex(2), hex(3)], at + 1000),
      event("COLLECT", "c", [hex(2)], at + 5000),
    ]);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10, policy });
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    const body = new Webhook(key).verify(r.received[0]!.body, r.received[0]!.headers) as { version: number; soFar: unknown };
    expect(body.version).toBe(2);
    expect(body.soFar).toEqual({
      subjects: 1,
      records: 1,
      violatingEvents: 1,
      exact: true,
      possiblyAffected: { subjects: 3, records: 3, violatingEvents: 1 },
      sharedOutside: { shared: false, subjects: 0, events: 0 },
    });
    r.close();
  });

  it("does not hold an alert for the exact model past exactWaitMs: sent marked exactPending, the field-level counts beside", async () => {
    const r = await receiver(ok);
    const key = secret();
    const sub = subscription(r.url, key);
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-10T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(11)], at), event("USE", "run-10", [hex(11), hex(12), hex(13)], at + 1000)]);
    // The model must be rebuilt from the new events (several queries): a wait of 0 ms is always shorter.
    const first = createDeliverer(store, [sub], { backoffMs: 10, policy, exactWaitMs: 0 });
    await first.runOnce();
    await first.close(); // waits for the refresh it started
    expect(r.received).toHaveLength(1);
    const pending = new Webhook(key).verify(r.received[0]!.body, r.received[0]!.headers) as { soFar: unknown };
    expect(pending.soFar).toEqual({
      subjects: null,
      records: null,
      violatingEvents: null,
      exact: false,
      exactPending: true,
      possiblyAffected: { subjects: 3, records: 3, violatingEvents: 1 },
    });
    // A later run's alert, the model waited for: counted exactly.
    await feed(processor, [event("USE", "run-11", [hex(11), hex(12)], at + 2000)]);
    const second = createDeliverer(store, [sub], { backoffMs: 10, policy });
    await second.runOnce();
    expect(r.received).toHaveLength(2);
    const exact = new Webhook(key).verify(r.received[1]!.body, r.received[1]!.headers) as { soFar: unknown };
    expect(exact.soFar).toMatchObject({ subjects: 1, exact: true, possiblyAffected: { subjects: 2 } });
    r.close();
    await store.close();
  });

  it("retries a receiver that is down, then fails, then is slow, and delivers once with the same webhook-id", async () => {
    const r = await receiver((n, req, res) => {
      if (n === 1)
        req.socket.destroy(); // down: no answer at all
      else if (n === 2) res.writeHead(500).end();
      else if (n === 3)
        setTimeout(() => res.writeHead(200).end(), 1000); // slower than the 300 ms timeout
      else res.writeHead(200).end();
    });
    const key = secret();
    const sub = subscription(r.url, key);
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-02T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(3)], at), event("USE", "run-2", [hex(3)], at + 1000)]);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 20, pollMs: 20 });
    deliverer.start();
    await waitFor(async () => (await deliveries(store)).some((d) => d.outcome === "delivered"), 20_000, "delivery");
    await deliverer.close();
    const attempts = await deliveries(store);
    expect(attempts.map((a) => [a.attempt, a.status_code, a.outcome])).toEqual([
      [1, 0, "retry"],
      [2, 500, "retry"],
      [3, 0, "retry"],
      [4, 200, "delivered"],
    ]);
    expect(new Set(r.received.map((m) => m.headers["webhook-id"])).size).toBe(1);
    for (const m of r.received) expect(() => new Webhook(key).verify(m.body, m.headers)).not.toThrow();
    r.close();
    await store.close();
  });

  it("honours Retry-After on 503, and disables the endpoint on 410", async () => {
    const r = await receiver((n, _req, res) => {
      if (n === 1) res.writeHead(503, { "retry-after": "1" }).end();
      else res.writeHead(410).end();
    });
    const sub = subscription(r.url, secret());
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-03T10:00:00Z");
    await feed(processor, [
      event("COLLECT", "c", [hex(4)], at),
      event("USE", "run-3", [hex(4)], at + 1000),
      event("USE", "run-4", [hex(4)], at + 2000),
    ]);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10, pollMs: 20 });
    deliverer.start();
    await waitFor(async () => (await deliveries(store)).some((d) => d.outcome === "disabled"), 20_000, "the endpoint disabled");
    await new Promise((res) => setTimeout(res, 300));
    await deliverer.close();
    const times = await store.query<{ ms: string }>(
      `SELECT toUnixTimestamp64Milli(at) AS ms FROM ${store.database}.${Table.deliveries} ORDER BY at`,
    );
    expect(Number(times[1]?.ms) - Number(times[0]?.ms)).toBeGreaterThanOrEqual(900);
    // Two alerts (two runs) were due: after the 410 the second is not sent.
    expect(r.received).toHaveLength(2);
    const [endpoint] = await store.query<{ disabled: number }>(`SELECT disabled FROM ${store.database}.${Table.endpoints} FINAL`);
    expect(endpoint?.disabled).toBe(1);
    const states = await store.query<{ state: string }>(`SELECT state FROM ${store.database}.${Table.outbox} FINAL ORDER BY state`);
    expect(states.map((s) => s.state)).toEqual(["disabled", "disabled"]);
    r.close();
    await store.close();
  });

  it("keeps delivering to one endpoint while another, rate-limited, has many alerts due before it", async () => {
    const busy = await receiver(ok);
    const quiet = await receiver(ok);
    const subs = [
      subscription(busy.url, secret(), { id: "a-busy", ratePerMinute: 1, services: ["partner-audiences"] }),
      subscription(quiet.url, secret(), { id: "b-quiet", services: ["crm-export"] }),
    ];
    const { store, processor } = await setup(subs);
    const at = Date.parse("2019-04-05T10:00:00Z");
    // First 150 job runs alerting the busy endpoint (one a minute), then 5 alerting the quiet one.
    await feed(processor, [
      event("COLLECT", "c", [hex(9)], at),
      ...Array.from({ length: 150 }, (_, i) => event("USE", `busy-${i}`, [hex(9)], at + 1000 + i)),
    ]);
    await feed(
      processor,
      Array.from({ length: 5 }, (_, i) => ({ ...event("USE", `quiet-${i}`, [hex(9)], at + 5000 + i), service: "crm-export" })),
    );
    const deliverer = createDeliverer(store, subs, { backoffMs: 10 });
    await deliverer.runOnce();
    await deliverer.runOnce();
    // The busy endpoint took its one a minute; the quiet one is not held behind its queue.
    expect(busy.received).toHaveLength(1);
    expect(quiet.received).toHaveLength(5);
    busy.close();
    quiet.close();
    await store.close();
  });

  it("records a delivery to a receiver that answers 200 with a 1 GiB body, reading only the start of it", async () => {
    const huge = 1024 ** 3;
    let sent = 0;
    const r = await receiver((_n, _req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": huge });
      const chunk = Buffer.alloc(1 << 20, 0x61);
      let closed = false;
      res.on("close", () => (closed = true));
      const pump = () => {
        while (!closed && sent < huge) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        if (!closed) res.end();
      };
      pump();
    });
    const sub = subscription(r.url, secret(), { timeoutMs: 60_000 });
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-06T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(6)], at), event("USE", "run-6", [hex(6)], at + 1000)]);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10 });
    const rssBefore = process.memoryUsage().rss;
    await deliverer.runOnce();
    const grown = process.memoryUsage().rss - rssBefore;
    expect((await deliveries(store)).map((d) => [d.attempt, d.status_code, d.outcome])).toEqual([[1, 200, "delivered"]]);
    // The rest of the body was dropped with the connection: the receiver could not send it all.
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(grown).toBeLessThan(256 * 1024 * 1024);
    r.close();
    await store.close();
  });

  it("raises one alert for a job run that touches a million subjects", async () => {
    const r = await receiver(ok);
    const sub = subscription(r.url, secret());
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-04T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(0)], at)]);
    const subjectsPerEvent = 10_000;
    for (let batch = 0; batch < 100; batch++) {
      const subjects = Array.from({ length: subjectsPerEvent }, (_, i) => hex(batch * subjectsPerEvent + i + 1));
      await feed(processor, [event("USE", "big-run", subjects, at + 1000 + batch)]);
    }
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10 });
    await deliverer.runOnce();
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    const body = JSON.parse(r.received[0]!.body) as { soFar: { subjects: number; violatingEvents: number } };
    expect(body.soFar).toMatchObject({ subjects: 1_000_000, violatingEvents: 100 });
    const [outbox] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${store.database}.${Table.outbox} FINAL`);
    expect(Number(outbox?.n)).toBe(1);
    r.close();
    await store.close();
  });

  it("stores a batch's alerts before its violations: when the alert cannot be stored, neither are they", async () => {
    const r = await receiver(ok);
    const sub = subscription(r.url, secret());
    const { store, processor, held } = await setupHeld([sub], randomDatabase("order"));
    const at = Date.parse("2019-04-07T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(7)], at), event("USE", "run-7", [hex(7)], at + 1000)]);
    const batch = held.find((b) => b.outbox.length > 0)!;
    expect(batch.violations.length).toBeGreaterThan(0);
    // The alert's row is refused (a window that is no time): the write stops before the violations.
    const refused = { ...batch, outbox: batch.outbox.map((o) => ({ ...o, window_start: "not a time" as unknown as number })) };
    await expect(store.write(refused)).rejects.toThrow();
    const count = async (table: string) =>
      Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${store.database}.${table}`))[0]?.n);
    expect(await count(Table.outbox)).toBe(0);
    expect(await count(Table.violations)).toBe(0);
    // Written again whole (as a retry or a redelivery writes it), the alert goes out with its violation.
    await store.write(batch);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10 });
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    expect(JSON.parse(r.received[0]!.body)).toMatchObject({ runId: "run-7", soFar: { subjects: 1, violatingEvents: 1 } });
    r.close();
    await store.close();
  });

  it("holds back an alert whose violations are not stored yet, then sends it once they are", async () => {
    const r = await receiver(ok);
    const sub = subscription(r.url, secret());
    const { store, processor, held } = await setupHeld([sub], randomDatabase("early"));
    const at = Date.parse("2019-04-08T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(8), hex(9)], at), event("USE", "run-8", [hex(8), hex(9)], at + 1000)]);
    const batch = held.find((b) => b.outbox.length > 0)!;
    // The alert's row is stored and its violations not yet (a write in progress, or cut short by a crash).
    await store.insert(Table.outbox, batch.outbox);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10, violationWaitMs: 60_000 });
    await deliverer.runOnce();
    expect(r.received).toHaveLength(0);
    expect(await deliveries(store)).toEqual([]);
    await store.write(batch);
    await new Promise((resolve) => setTimeout(resolve, 50)); // past the deferral
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    expect(JSON.parse(r.received[0]!.body)).toMatchObject({
      runId: "run-8",
      purposeUsed: ["marketing.advertising.third_party.targeted"],
      soFar: { subjects: 2, violatingEvents: 1 },
    });
    r.close();
    await store.close();
  });

  it("sends an alert whose violations never come once it has waited violationWaitMs, so no alert is lost", async () => {
    const r = await receiver(ok);
    const sub = subscription(r.url, secret());
    const { store, processor } = await setup([sub]);
    const at = Date.parse("2019-04-09T10:00:00Z");
    await feed(processor, [event("COLLECT", "c", [hex(10)], at), event("USE", "run-9", [hex(10)], at + 1000)]);
    // As if only the violations had been lost.
    await store.command(`TRUNCATE TABLE ${store.database}.${Table.violations}`);
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10, violationWaitMs: 300 });
    await deliverer.runOnce();
    expect(r.received).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    expect(JSON.parse(r.received[0]!.body)).toMatchObject({ runId: "run-9", soFar: { violatingEvents: 0 } });
    r.close();
    await store.close();
  });

  it("delivers after a restart an alert decided before it, once", async () => {
    const r = await receiver(ok);
    const sub = subscription(r.url, secret());
    const database = randomDatabase("restart");
    const first = await setup([sub], database);
    const at = Date.parse("2019-04-05T10:00:00Z");
    await feed(first.processor, [event("COLLECT", "c", [hex(5)], at), event("USE", "run-5", [hex(5)], at + 1000)]);
    await first.store.close(); // the auditor stops after deciding, before any delivery

    const store = await openStore({ path: dir, database });
    await store.migrate();
    const deliverer = createDeliverer(store, [sub], { backoffMs: 10 });
    await deliverer.runOnce();
    // The same events again after the restart (a replay): no new alert, no second delivery.
    const processor = createProcessor({ policy, taxonomy, codec, alerts: createAlertPlanner([sub], 3_600_000) }, { sink: store });
    await feed(processor, [
      event("COLLECT", "c", [hex(5)], at),
      { ...event("USE", "run-5", [hex(5)], at + 1000), eventId: `wh-${seq - 2}` },
    ]);
    await deliverer.runOnce();
    expect(r.received).toHaveLength(1);
    r.close();
    await store.close();
  });
});
