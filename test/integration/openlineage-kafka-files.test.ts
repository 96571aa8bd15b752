// OpenLineage RunEvents by the other two intakes: a Kafka topic (the OpenLineage Kafka
// transport's JSON values) on the real broker, consumed by the same group, bad ones to the
// dead-letter topic with the JSON path; and NDJSON files through `lineage-audit ingest`, mixed
// with our own emit() inputs.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { startKafkaProcessor, DeadLetterHeader, createKafka, type KafkaProcessor } from "../../services/kafka/index.ts";
import { createOpenLineageIntake } from "../../services/openlineage/index.ts";
import { core, HMAC_KEY, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURES = join(ROOT, "test/fixtures/openlineage/python-client");
const fixture = (name: string) => JSON.stringify(JSON.parse(readFileSync(join(FIXTURES, name), "utf8")));
const dir = tempDir("lineage-ol-kafka-");
const { taxonomy, policy, codec } = core();
let store: Store;
const running: KafkaProcessor[] = [];

beforeAll(async () => {
  store = await openStore({ path: join(dir, "kafka-store"), database: randomDatabase("olkafka") });
  await store.migrate();
});
afterAll(async () => {
  for (const p of running) await p.close().catch(() => undefined);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A processor instance on fresh topics, the OpenLineage topic included, consuming into the store: its configuration. */
async function consumeOpenLineage(instanceId: string) {
  const base = kafkaForTest(inject, 1);
  const config = { ...base, topics: { ...base.topics, openLineage: `${base.topics.events}.openlineage` } };
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
  const openLineage = createOpenLineageIntake({ processor, store, taxonomy });
  running.push(
    await startKafkaProcessor(config, { instanceId, groupId: `g-${config.clientId}` }, { processor, codec, store, openLineage }),
  );
  return config;
}

describe("OpenLineage on Kafka", () => {
  it("consumes the OpenLineage topic in the same group: RunEvents are stored, a bad one goes to the dead-letter topic with its JSON path", async () => {
    const config = await consumeOpenLineage("a");
    const bad = JSON.parse(fixture("002.json")) as { run: { runId: string } };
    bad.run.runId = "not-a-uuid";
    const kafka = createKafka(config);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: config.topics.openLineage,
      messages: [
        { key: "warehouse-jobs/ads.identity-graph", value: fixture("001.json") },
        { key: "warehouse-jobs/ads.identity-graph", value: fixture("002.json") },
        { key: "warehouse-jobs/ads.identity-graph", value: JSON.stringify(bad) },
        { key: "warehouse-jobs/ads.partner-export", value: fixture("004.json") },
      ],
    });
    await producer.disconnect();
    const count = async () =>
      Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${store.database}.${Table.openLineage} FINAL`))[0]?.n);
    await waitFor(async () => (await count()) === 3, 60_000, "three RunEvents logged");
    const derives = await store.query<{ kind: string; n: string }>(
      `SELECT kind, toString(count()) AS n FROM ${store.database}.${Table.events} FINAL GROUP BY kind ORDER BY kind`,
    );
    // The COMPLETE's masked and unmasked columns are one DERIVE (masking per mapping).
    expect(derives.map((r) => [r.kind, r.n])).toEqual([
      ["DERIVE", "1"],
      ["SHARE", "1"],
    ]);

    // The bad one: on the dead-letter topic, with the JSON path and where it came from.
    const consumer = kafka.consumer({ groupId: `dlq-${config.clientId}` });
    await consumer.connect();
    await consumer.subscribe({ topic: config.topics.deadLetters, fromBeginning: true });
    const letters: { reason: string; topic: string; offset: string }[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        letters.push({
          reason: message.headers?.[DeadLetterHeader.reason]?.toString() ?? "",
          topic: message.headers?.[DeadLetterHeader.topic]?.toString() ?? "",
          offset: message.headers?.[DeadLetterHeader.offset]?.toString() ?? "",
        });
      },
    });
    await waitFor(async () => letters.length === 1, 60_000, "the dead letter");
    await consumer.disconnect();
    expect(letters).toEqual([
      { reason: 'OpenLineage event: /run/runId must match format "uuid"', topic: config.topics.openLineage, offset: "2" },
    ]);
  });
});

describe("compressed batches on Kafka", () => {
  it("takes batches a Java producer compressed with gzip, snappy, lz4 and zstd", async () => {
    const config = await consumeOpenLineage("z");
    const codecs = ["gzip", "snappy", "lz4", "zstd"];
    for (const [i, compression] of codecs.entries()) {
      // Kafka's own console producer (the broker's jars), one RunEvent of a job named after the codec.
      const event = JSON.parse(fixture("001.json")) as { run: { runId: string }; job: { namespace: string; name: string } };
      event.run.runId = `01a22817-2518-7059-bdd4-f2b7beb72b9${i}`;
      event.job = { namespace: "compressed-jobs", name: compression };
      const sent = spawnSync(
        "java",
        [
          "-Xmx256m",
          "-XX:TieredStopAtLevel=1",
          `-Dlog4j2.configurationFile=${join(ROOT, "infra/kafka/log4j2-tools.properties")}`,
          "-cp",
          join(ROOT, "infra/kafka/lib/*"),
          "org.apache.kafka.tools.ConsoleProducer",
          "--bootstrap-server",
          config.brokers[0]!,
          "--topic",
          config.topics.openLineage,
          "--compression-codec",
          compression,
        ],
        { input: `${JSON.stringify(event)}\n`, encoding: "utf8", timeout: 60_000 },
      );
      expect(sent.status, sent.stderr).toBe(0);
    }
    const logged = async () =>
      (
        await store.query<{ job_name: string }>(
          `SELECT job_name FROM ${store.database}.${Table.openLineage} FINAL WHERE job_namespace = 'compressed-jobs' ORDER BY job_name`,
        )
      ).map((r) => r.job_name);
    await waitFor(async () => (await logged()).length === codecs.length, 60_000, "a RunEvent of each codec logged");
    expect(await logged()).toEqual([...codecs].sort());
  });
});

describe("OpenLineage in NDJSON files", () => {
  it("lineage-audit ingest recognises RunEvent lines beside our own inputs, in file order, and names a bad one by file:line", () => {
    const file = join(dir, "mixed.ndjson");
    const collect = {
      kind: "COLLECT",
      occurredAt: "2019-01-01T00:00:00Z",
      service: "auth-service",
      job: { namespace: "web", name: "2fa-enrolment" },
      runId: "r1",
      outputs: [
        {
          namespace: "warehouse",
          name: "profile.contact_points",
          fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
        },
      ],
      purposes: ["essential.service.security"],
      dataSubject: "customer",
      subjects: ["+15555550100"],
    };
    const bad = JSON.parse(fixture("002.json")) as { eventTime: string; run: { runId: string } };
    bad.run.runId = "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e0f";
    bad.eventTime = "yesterday";
    // Static metadata (a DatasetEvent: no job, no run) is recognised as OpenLineage too.
    const datasetEvent = {
      eventTime: "2019-01-02T00:00:00Z",
      producer: "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python",
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
      dataset: { namespace: "warehouse", name: "profile.contact_points" },
    };
    writeFileSync(
      file,
      [
        JSON.stringify(collect),
        fixture("001.json"),
        fixture("002.json"),
        JSON.stringify(bad),
        fixture("004.json"),
        JSON.stringify(datasetEvent),
        "",
      ].join("\n"),
    );
    const env = {
      PATH: process.env["PATH"] ?? "",
      HOME: dir,
      LINEAGE_AUDIT_DATA: join(dir, "cli-store"),
      LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY,
    };
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [join(ROOT, "bin/lineage-audit.mjs"), ...args], { cwd: dir, env, encoding: "utf8" });
    const r = cli("ingest", file, "--json");
    expect(r.stderr.trim().split("\n")).toEqual([
      `lineage-audit: ${file}:4: OpenLineage event: /eventTime must match format "date-time" (dead-lettered)`,
    ]);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: 1, records: 6, rejected: 1 });
    const kinds = cli("sql", "SELECT event_kind, dataset FROM openlineage_events_v1 FINAL WHERE event_kind != 'RunEvent'", "--json");
    expect(JSON.parse(kinds.stdout)).toEqual([{ event_kind: "DatasetEvent", dataset: "warehouse/profile.contact_points" }]);
    const rows = cli("sql", "SELECT kind, count() AS n FROM events_v1 FINAL GROUP BY kind ORDER BY kind", "--json");
    expect(JSON.parse(rows.stdout)).toEqual([
      { kind: "COLLECT", n: 1 },
      { kind: "DERIVE", n: 1 },
      { kind: "SHARE", n: 1 },
    ]);
    const flagged = cli("sql", "SELECT rule_id FROM violations_v1 WHERE rule_id = 'security-contact-not-for-marketing'", "--json");
    expect(JSON.parse(flagged.stdout)).toEqual([{ rule_id: "security-contact-not-for-marketing" }]);
  });
});
