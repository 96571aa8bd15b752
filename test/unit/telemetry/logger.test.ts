// One logger (issue 11, in part): adapters report through a Logger passed in and never write to
// stdout or stderr themselves; the CLI is the only place that does.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createLineLogger, silentLogger } from "../../../services/telemetry/index.ts";
import { sourceFiles } from "../source-files.ts";

const SERVICES = fileURLToPath(new URL("../../../services/", import.meta.url));

describe("logger", () => {
  it("writes one text line per message, its first line only", () => {
    const lines: string[] = [];
    const logger = createLineLogger((l) => lines.push(l));
    logger.warn("kafka warning (Connection): broker went away");
    logger.error("webhook delivery: failed\nstack line that must not appear");
    expect(lines).toEqual(["lineage-audit: kafka warning (Connection): broker went away", "lineage-audit: webhook delivery: failed"]);
  });

  it("writes one JSON object per message for log collectors", () => {
    const lines: string[] = [];
    const logger = createLineLogger(
      (l) => lines.push(l),
      "json",
      () => Date.UTC(2019, 8, 17),
    );
    logger.error('a "quoted" problem');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { time: "2019-09-17T00:00:00.000Z", level: "error", message: 'a "quoted" problem' },
    ]);
  });

  it("writes nothing by default", () => {
    expect(() => {
      silentLogger.warn("x");
      silentLogger.error("y");
    }).not.toThrow();
  });

  it("is the only way out: no module under services/ but the CLI writes to stdout or stderr", () => {
    const offenders = sourceFiles(SERVICES)
      .filter((f) => !f.includes(`${join("services", "cli")}`))
      .filter((f) => /process\.(stdout|stderr)|console\.(log|error|warn|info|debug)/.test(readFileSync(f, "utf8")));
    expect(offenders.map((f) => f.slice(SERVICES.length))).toEqual([]);
  });
});
