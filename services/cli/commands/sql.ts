import { existsSync, readFileSync } from "node:fs";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { ConfigError, StoreError } from "../../errors/index.ts";
import { openStore } from "../../store/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, out, UsageError } from "../args.ts";
import { serveFile } from "../context.ts";
import { formatTable } from "../format.ts";

interface Answer {
  format: string;
  body: Buffer;
}

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" } }, true);
  if (positionals.length !== 1)
    throw new UsageError('sql takes one quoted statement, e.g. lineage-audit sql "SELECT count() FROM events_v1"');
  const statement = positionals[0] as string;
  const answer = (await queryThroughServe(config, statement)) ?? (await queryOwnStore(config, statement));
  if (answer.format !== "JSONEachRow") {
    // The statement named its own FORMAT: its output as it is.
    process.stdout.write(answer.body);
    return 0;
  }
  const rows = answer.body
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  out(values.json ? JSON.stringify(rows) : formatTable(rows));
  return 0;
}

/** The statement on the store's analyst session (read-only, limited): this process holds the store. */
async function queryOwnStore(config: AppConfig, statement: string): Promise<Answer> {
  const store = await openStore(config.store);
  try {
    await store.migrate();
    return await store.analystQuery({ sql: statement, defaultFormat: "JSONEachRow" });
  } finally {
    await store.close();
  }
}

/**
 * An embedded store belongs to one process: when `serve` holds it, `sql` asks that process over
 * its read-only HTTP interface instead (undefined when no live serve holds the store).
 */
async function queryThroughServe(config: AppConfig, sql: string): Promise<Answer | undefined> {
  const file = serveFile(config);
  if (!file || !existsSync(file)) return undefined;
  const held = JSON.parse(readFileSync(file, "utf8")) as { pid: number; analystUrl?: string; user?: string };
  try {
    process.kill(held.pid, 0);
  } catch {
    return undefined; // a stale file: that serve is gone
  }
  if (!held.analystUrl)
    throw new ConfigError(
      `the store is held by a running serve (pid ${held.pid}) without its analyst interface: start it with LINEAGE_AUDIT_ANALYST_PASSWORD to query while it runs`,
    );
  if (!config.analyst)
    throw new ConfigError(
      `the store is held by a running serve (pid ${held.pid}): set LINEAGE_AUDIT_ANALYST_PASSWORD (and _USER) to query through ${held.analystUrl}`,
    );
  // The client would log the failure itself; the CLI says it once, in its own line.
  const client = createClient({
    url: held.analystUrl,
    username: config.analyst.user,
    password: config.analyst.password,
    log: { level: ClickHouseLogLevel.OFF },
  });
  try {
    const result = await client.exec({ query: sql, clickhouse_settings: { default_format: "JSONEachRow" } });
    const chunks: Buffer[] = [];
    for await (const chunk of result.stream) chunks.push(Buffer.from(chunk as Uint8Array));
    const format = result.response_headers["x-clickhouse-format"];
    return { format: typeof format === "string" ? format : "JSONEachRow", body: Buffer.concat(chunks) };
  } catch (cause) {
    // The client keeps the sentence's full stop from "… DB::Exception: <line>. (NAME)".
    throw new StoreError((cause as Error).message.split("\n")[0]?.trim().replace(/\.$/, "") || "query failed", { cause });
  } finally {
    await client.close();
  }
}
