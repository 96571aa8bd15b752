// The command table: each command's usage, and how to load it. Loading is lazy, so `--help`,
// `--version` and a usage error load none of chDB, kafkajs or the ClickHouse client.
import type { AppConfig } from "../../config/index.ts";

export type Run = (argv: string[], config: AppConfig) => Promise<number>;

export interface Command {
  usage: string;
  load(): Promise<{ run: Run }>;
}

export const COMMANDS: Record<string, Command> = {
  demo: {
    usage: `demo [--users N] [--events-per-user N] [--json] [--quiet]
    Generate the 2019 two-factor-contact misuse, stream it through the auditor into the
    embedded store, and answer: how many users, which data, since when, through which
    systems, shared outside? (uses database "demo", recreated each run)`,
    load: () => import("./demo.ts"),
  },
  ingest: {
    usage: `ingest FILE... [--json]
    Read Avro object container files or NDJSON (one emit() input, or one OpenLineage RunEvent,
    per line) into the store.`,
    load: () => import("./ingest.ts"),
  },
  affected: {
    usage: `affected --rule ID [--from DATE] [--to DATE] [--category KEY] [--json] [--fast]
    Who and what a rule's violations concern, from the store.`,
    load: () => import("./affected.ts"),
  },
  sql: {
    usage: `sql "SELECT ..." [--json]
    Run a read-only query against the store: only reads of its database, under fixed limits
    (docs/sql.md, "What analysts may run"); anything else is refused with one line.`,
    load: () => import("./sql.ts"),
  },
  replay: {
    usage: `replay --rules FILE [--from DATE] [--to DATE] [--dry-run] [--engine sql|stream] [--json]
    Evaluate new or changed rules over the stored history (retroactive findings; resumable).
    In ClickHouse by default; --dry-run prints the compiled SQL and what it would write.`,
    load: () => import("./replay.ts"),
  },
  report: {
    usage: `report --rule ID [--from DATE] [--to DATE] [--format md|json|html] [-o FILE]
    An incident report shaped like a GDPR Art. 33 notification, with the lineage path and a chart.`,
    load: () => import("./report.ts"),
  },
  subject: {
    usage: `subject ID [--json] [--pseudonymous]
    Everything stored that touched one person's data (ID is pseudonymised with the key first).`,
    load: () => import("./subject.ts"),
  },
  webhooks: {
    usage: `webhooks test URL [--secret whsec_…]
    Send a signed sample alert, so an operator can check a receiver.`,
    load: () => import("./webhooks.ts"),
  },
  serve: {
    usage: `serve [--port N] [--host H]
    Take events over HTTP (POST /v1/events) and, with KAFKA_BROKERS set, from Kafka as a
    member of a consumer group, into the store until stopped.`,
    load: () => import("./serve.ts"),
  },
};

export function usage(only?: string): string {
  const entries = Object.entries(COMMANDS).filter(([name]) => only === undefined || name === only);
  const lines = entries.map(([, c]) => `  lineage-audit ${c.usage}`).join("\n");
  if (only !== undefined) return `Usage:\n${lines}\n\nSettings come from the environment: lineage-audit --help lists them.\n`;
  return `lineage-audit: an event-streaming data lineage auditor

Usage:
${lines}
  lineage-audit --version

Environment (README, "Configuration"):
  LINEAGE_AUDIT_DATA, LINEAGE_AUDIT_DATABASE, LINEAGE_AUDIT_RULES, LINEAGE_AUDIT_HMAC_KEY
  CLICKHOUSE_URL, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD   a ClickHouse server instead of the embedded one
  LINEAGE_AUDIT_PORT, LINEAGE_AUDIT_INGEST_TOKEN, LINEAGE_AUDIT_WEBHOOKS, LINEAGE_AUDIT_LOG   for serve
  LINEAGE_AUDIT_ANALYST_PASSWORD [_USER, _PORT]   serve's read-only ClickHouse HTTP interface
  KAFKA_BROKERS, KAFKA_GROUP_ID, KAFKA_TOPIC_*, KAFKA_SASL_*, KAFKA_SSL*   Kafka for serve
`;
}
