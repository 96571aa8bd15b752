import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onTestFinished } from "vitest";
import { createEventCodec, loadEventSchemas } from "../../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../../services/rules/index.ts";
import type { EmitInput } from "../../services/emitter/index.ts";

export const HMAC_KEY = "integration-test-key-0123456789abcdef";

/** A temporary folder removed when the test (or, from beforeAll, the file) finishes. */
export function tempDir(prefix = "lineage-it-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return dir;
}

export function removeLater(dir: string): void {
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
}

export function core() {
  const taxonomy = loadFideslangTaxonomy();
  return { taxonomy, policy: loadPolicy(DEFAULT_POLICY_PATH, taxonomy), codec: createEventCodec(loadEventSchemas()) };
}

/** A random database name, so tests sharing one chDB data directory never see each other's rows. */
export function randomDatabase(prefix = "t"): string {
  return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * Kafka settings for a test against the real broker from test/kafka-setup.ts, with topics of
 * its own. Throws (the test fails, never skips) when no broker could be started.
 */
export function kafkaForTest(inject: (key: "kafkaBrokers" | "kafkaError") => string, partitions = 3) {
  const brokers = inject("kafkaBrokers");
  if (!brokers) throw new Error(`no Kafka broker: ${inject("kafkaError")}`);
  const id = Math.random().toString(36).slice(2, 8);
  return {
    brokers: brokers.split(","),
    clientId: `test-${id}`,
    partitions,
    topics: { events: `t-${id}.events`, deadLetters: `t-${id}.dlq`, lineage: `t-${id}.lineage` },
  };
}

/** The environment that makes a spawned `serve` consume a kafkaForTest() configuration's topics. */
export function kafkaServeEnv(config: ReturnType<typeof kafkaForTest>): Record<string, string> {
  return {
    KAFKA_BROKERS: config.brokers.join(","),
    KAFKA_GROUP_ID: `g-${config.clientId}`,
    KAFKA_TOPIC_EVENTS: config.topics.events,
    KAFKA_TOPIC_DLQ: config.topics.deadLetters,
    KAFKA_TOPIC_LINEAGE: config.topics.lineage,
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000, what = "condition"): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The 2019 case as the emitter's inputs: a second factor collected for account security… */
export function twoFactorCollect(at: number, subject: string, field: "phone_number" | "email" = "phone_number"): EmitInput {
  return {
    kind: "COLLECT",
    occurredAt: at,
    service: "auth-service",
    job: { namespace: "web", name: "2fa-enrolment" },
    runId: "r",
    outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: field, categories: [`user.contact.${field}`] }] }],
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    subjects: [subject],
  };
}

/** …then matched for advertising by an audiences job. */
export function adsMatch(at: number, subject: string, runId: string, field: "phone_number" | "email" = "phone_number"): EmitInput {
  return {
    kind: "USE",
    occurredAt: at,
    service: field === "email" ? "tailored-audiences" : "partner-audiences",
    job: { namespace: "ads", name: field === "email" ? "tailored-audiences.match" : "partner-audiences.match" },
    runId,
    inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: field }] }],
    purposes: ["marketing.advertising.third_party.targeted"],
    dataSubject: "customer",
    subjects: [subject],
  };
}

/** Debian's headless Chromium for the tests of what people look at (CHROMIUM_PATH overrides). */
export const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";

/** Launches it as the browser tests do; throws (never skips) when it is missing. */
export async function launchChromium(): Promise<import("playwright-core").Browser> {
  const { existsSync } = await import("node:fs");
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (as .ci/run does)`);
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
