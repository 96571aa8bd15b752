// Vitest global setup: a real Kafka broker for the Kafka tests. Uses KAFKA_BROKERS when set
// (.ci/run starts one); otherwise starts infra/kafka/broker.sh on test ports and stops it after.
// If no broker can be had, the Kafka tests fail with the reason (they never skip).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const SCRIPT = fileURLToPath(new URL("../infra/kafka/broker.sh", import.meta.url));
const env = { ...process.env, KAFKA_PORT: "19092", KAFKA_CONTROLLER_PORT: "19093" };

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string;
    kafkaError: string;
  }
}

let started = false;

export async function setup(project: TestProject): Promise<void> {
  if (process.env["KAFKA_BROKERS"]) {
    project.provide("kafkaBrokers", process.env["KAFKA_BROKERS"]);
    project.provide("kafkaError", "");
    return;
  }
  try {
    execFileSync("bash", [SCRIPT, "start"], { env, stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 });
    started = true;
    project.provide("kafkaBrokers", "127.0.0.1:19092");
    project.provide("kafkaError", "");
  } catch (error) {
    const e = error as { stderr?: Buffer; stdout?: Buffer; message: string };
    const detail = `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}`.trim().split("\n").slice(-5).join(" | ") || e.message;
    project.provide("kafkaBrokers", "");
    project.provide("kafkaError", `could not start the Kafka broker with infra/kafka/broker.sh (needs Java 17+ and Maven): ${detail}`);
  }
}

export async function teardown(): Promise<void> {
  if (started) execFileSync("bash", [SCRIPT, "stop"], { env, stdio: "ignore", timeout: 60_000 });
}
