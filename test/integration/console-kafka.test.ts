// The console's operations page when serve consumes Kafka: the consumer lag of each partition it
// reads, from a real broker, shown in real Chromium while a backlog is worked off and after.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createKafka, ensureTopics } from "../../services/kafka/index.ts";
import { collect } from "../unit/helpers.ts";
import { core, kafkaForTest, kafkaServeEnv, launchChromium, tempDir, waitFor } from "./helpers.ts";

const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
const PASSWORD = "console-kafka-password-0123";
const dir = tempDir("lineage-console-kafka-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const enrolment = (i: number) =>
  collect("security.two_factor", { phone_number: ["user.contact.phone_number"] }, ["essential.service.security"], {
    eventId: `lag-${i}`,
    occurredAt: Date.parse("2019-03-01T00:00:00Z") + i,
  });

interface Lag {
  topic: string;
  partition: number;
  lag: number;
}

describe("the console's operations page with Kafka", () => {
  it("shows the consumer lag of each partition serve reads, down to zero once the backlog is stored", async () => {
    const config = kafkaForTest(inject, 2);
    const kafka = createKafka(config);
    await ensureTopics(kafka, config);
    // A backlog before serve starts: it is read in batches, each reporting what is left behind it.
    const { codec } = core();
    const total = 30_000;
    const producer = kafka.producer();
    await producer.connect();
    for (let b = 0; b < total; b += 5000) {
      await producer.send({
        topic: config.topics.events,
        messages: Array.from({ length: 5000 }, (_, k) => ({ partition: (b + k) % 2, value: Buffer.from(codec.encode(enrolment(b + k))) })),
      });
    }
    await producer.disconnect();

    const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
      env: {
        PATH: process.env["PATH"] ?? "",
        LINEAGE_AUDIT_DATA: join(dir, "store"),
        LINEAGE_AUDIT_ANALYST_PASSWORD: PASSWORD,
        LINEAGE_AUDIT_ANALYST_PORT: "0",
        ...kafkaServeEnv(config),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
    const browser = await launchChromium();
    try {
      await waitFor(async () => /investigation console at http:\/\/\S+\//.test(log), 60_000, "serve to start");
      const url = /investigation console at (http:\/\/\S+)\//.exec(log)![1]!;
      const basic = { authorization: `Basic ${Buffer.from(`analyst:${PASSWORD}`).toString("base64")}` };
      const lagNow = async () =>
        ((await (await fetch(`${url}/api/console/operations`, { headers: basic })).json()) as { lag: Lag[] | null }).lag;
      // While the backlog is read, some batch reports messages still behind the end of its partition.
      const seen: Lag[] = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          seen.push(...((await lagNow()) ?? []));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      await waitFor(
        async () => {
          const lag = (await lagNow()) ?? [];
          seen.push(...lag);
          const ofEvents = lag.filter((l) => l.topic === config.topics.events);
          return ofEvents.length === 2 && ofEvents.every((l) => l.lag === 0);
        },
        120_000,
        "the backlog to be consumed",
      );
      watching = false;
      await watcher;
      expect(
        seen.some((l) => l.topic === config.topics.events && l.lag > 0),
        JSON.stringify(seen.slice(0, 12)),
      ).toBe(true);
      expect(Math.max(...seen.map((l) => l.lag))).toBeLessThan(total);

      const page = await browser.newPage();
      await page.goto(`${url}/login`);
      await page.getByLabel("User").fill("analyst");
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForSelector("#overview");
      await page.goto(`${url}/#/operations`);
      const rows = page.locator("table", { hasText: "Messages not stored yet, per partition" }).locator("tbody tr");
      await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(2);
      const text = await rows.allTextContents();
      expect(text).toContain(`${config.topics.events}00`);
      expect(text).toContain(`${config.topics.events}10`);
      expect(await page.getByText("This serve consumes no Kafka topic").count()).toBe(0);
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number];
      expect(code, log).toBe(0);
    } finally {
      await browser.close();
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
