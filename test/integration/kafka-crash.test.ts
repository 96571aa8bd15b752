// A processor killed with SIGKILL in the middle of a stream, three times, and restarted: the
// store ends with exactly the events produced, none lost and none counted twice.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { openStore, affectedSummary, Table } from "../../services/store/index.ts";
import { createEmitter } from "../../services/emitter/index.ts";
import { emptyGroundTruth, generateScenario, SCENARIO_RULE } from "../../services/demo/index.ts";
import { createKafka, createKafkaTransport, ensureTopics, type KafkaConfig } from "../../services/kafka/index.ts";
import { core, HMAC_KEY, kafkaForTest, tempDir, waitFor } from "./helpers.ts";

const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
const dir = tempDir("lineage-crash-");
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function serve(config: KafkaConfig, group: string): ChildProcess {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
    env: {
      PATH: process.env["PATH"] ?? "",
      LINEAGE_AUDIT_DATA: join(dir, "store"),
      LINEAGE_AUDIT_DATABASE: "crash",
      KAFKA_BROKERS: config.brokers.join(","),
      KAFKA_GROUP_ID: group,
      KAFKA_SESSION_TIMEOUT_MS: "6000",
      KAFKAJS_NO_PARTITIONER_WARNING: "1",
      LINEAGE_AUDIT_INSTANCE_ID: "crashy",
      KAFKA_TOPIC_EVENTS: config.topics?.events ?? "",
      KAFKA_TOPIC_DLQ: config.topics?.deadLetters ?? "",
      KAFKA_TOPIC_LINEAGE: config.topics?.lineage ?? "",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function consuming(child: ChildProcess): Promise<void> {
  let log = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("lineage-audit serve: consuming")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`serve exited (${code}) before consuming: ${log.slice(-500)}`)));
  });
}

describe("crash safety", () => {
  it("stores exactly the events produced when the processor is SIGKILLed three times mid-stream", async () => {
    const config = kafkaForTest(inject, 3);
    const group = `crash-${config.clientId}`;
    const kafka = createKafka(config);
    await ensureTopics(kafka, config);
    const { codec } = core();
    const truth = emptyGroundTruth();
    const events = [...generateScenario({ users: 4000, seed: 99 }, truth)];
    const emitter = createEmitter(
      { transport: createKafkaTransport(config), pseudonymKey: HMAC_KEY, maxBatch: 250, lingerMs: 2 },
      { codec },
    );

    let child = serve(config, group);
    await consuming(child);
    const slice = Math.ceil(events.length / 4);
    for (let round = 0; round < 4; round++) {
      for (const input of events.slice(round * slice, (round + 1) * slice)) await emitter.emit(input);
      await emitter.flush();
      if (round === 3) break;
      // Let it get into the middle of the stream, then kill it without warning and start again.
      await new Promise((r) => setTimeout(r, 700));
      child.kill("SIGKILL");
      await once(child, "exit");
      child = serve(config, group);
      await consuming(child);
    }
    await emitter.close();

    // Wait until the group has committed everything, then stop it gracefully.
    const admin = kafka.admin();
    await admin.connect();
    await waitFor(
      async () => {
        const ends = await admin.fetchTopicOffsets(config.topics.events);
        const [committed] = await admin.fetchOffsets({ groupId: group, topics: [config.topics.events] });
        return ends.every((e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high);
      },
      120_000,
      "the consumer group to commit every offset",
    );
    await admin.disconnect();
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number];
    expect(code).toBe(0);

    const store = await openStore({ path: join(dir, "store"), database: "crash" });
    try {
      const [row] = await store.query<{ ids: string; rows: string }>(
        `SELECT uniqExact(event_id) AS ids, (SELECT count() FROM crash.${Table.events} FINAL) AS rows FROM crash.${Table.events}`,
      );
      expect(Number(row?.ids)).toBe(truth.events);
      expect(Number(row?.rows)).toBe(truth.events);
      const summary = await affectedSummary(store, { ruleId: SCENARIO_RULE });
      // When it fails, which way: uses stored with each verdict, uses whose row says violation
      // without a violation row, uses flagged in rows that are older than their newest row.
      const verdicts = await store.query<{ verdict: string; n: string }>(
        `SELECT verdict, toString(count()) AS n FROM crash.${Table.events} FINAL WHERE kind IN ('USE', 'SHARE') GROUP BY verdict ORDER BY verdict`,
      );
      const [split] = await store.query<{ without_row: string; stale: string; violations: string }>(
        `SELECT toString(countIf(verdict = 'violation' AND event_id NOT IN (SELECT event_id FROM crash.${Table.violations}))) AS without_row,
                toString(countIf(verdict != 'violation' AND event_id IN (SELECT event_id FROM crash.${Table.violations}))) AS stale,
                toString((SELECT uniqExact(event_id) FROM crash.${Table.violations} WHERE rule_id = {rule:String})) AS violations
         FROM crash.${Table.events} FINAL WHERE kind IN ('USE', 'SHARE')`,
        { rule: SCENARIO_RULE },
      );
      // Subjects as violations_v1 holds them against what its materialized view (violation_subjects_v1)
      // holds: a kill between the two inserts of one write would leave the second short.
      const [subjects] = await store.query<{ in_violations: string; in_view: string }>(
        `SELECT toString((SELECT uniqExact(s) FROM crash.${Table.violations} ARRAY JOIN subjects AS s WHERE rule_id = {rule:String})) AS in_violations,
                toString((SELECT uniqExact(subject_id) FROM crash.${Table.violationSubjects} WHERE rule_id = {rule:String})) AS in_view`,
        { rule: SCENARIO_RULE },
      );
      const why = `subjects in violations_v1 ${subjects?.in_violations}, in violation_subjects_v1 ${subjects?.in_view}; uses by verdict ${verdicts.map((v) => `${v.verdict || "-"}: ${v.n}`).join(", ")}; flagged without a violation row ${split?.without_row}; with a violation row but not flagged ${split?.stale}; uses with a violation of the rule ${split?.violations} (expected ${truth.violatingEvents})`;
      expect(summary.subjects, why).toBe(truth.affectedUsers);
      expect(summary.records).toBe(truth.affectedRecords);
      expect(summary.violationEvents).toBe(truth.violatingEvents);
    } finally {
      await store.close();
    }
  });
});
