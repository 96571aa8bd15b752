// What the commands share: the auditor's parts opened from the configuration, and the checks
// `serve` makes before it listens.
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { ConfigError } from "../errors/index.ts";
import { defaults, type AppConfig } from "../config/index.ts";
import { createEventCodec, loadEventSchemas, type EventCodec } from "../codec/index.ts";
import { loadFideslangTaxonomy, type Taxonomy } from "../taxonomy/index.ts";
import { loadPolicy, type Policy } from "../rules/index.ts";
import { openStore, refillViews, type RefillReport, type Store } from "../store/index.ts";
import { createProcessor, defaultAuditorOptions, type Processor, type ProcessorConfig } from "../processor/index.ts";
import { createOpenLineageIntake, loadClassification, type OpenLineageIntake } from "../openlineage/index.ts";
import { openIntakeJournal } from "../ingest/index.ts";

/** The shortest ingest token or analyst password `serve` accepts when it listens beyond loopback. */
export const MIN_EXPOSED_SECRET_LENGTH = 16;

/** Whether `host` is an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/**
 * `serve` beyond loopback (e.g. 0.0.0.0 in a container) is reachable by anyone on the network: it
 * must not start without an ingest token, nor with the analyst interface on without a password.
 */
export function checkExposure(host: string, config: Pick<AppConfig, "ingestToken" | "analyst">): void {
  if (isLoopback(host)) return;
  const min = MIN_EXPOSED_SECRET_LENGTH;
  if (!config.ingestToken)
    throw new ConfigError(
      `refusing to listen on ${host} without LINEAGE_AUDIT_INGEST_TOKEN: anyone who reaches it could write events (set a token of at least ${min} characters, or listen on 127.0.0.1)`,
    );
  if (config.ingestToken.length < min)
    throw new ConfigError(`LINEAGE_AUDIT_INGEST_TOKEN must be at least ${min} characters when serve listens on ${host}`);
  if (config.analyst && config.analyst.password.length < min)
    throw new ConfigError(
      `refusing to open the analyst interface on ${host}: LINEAGE_AUDIT_ANALYST_PASSWORD must be at least ${min} characters there`,
    );
}

export interface AuditorContext {
  codec: EventCodec;
  taxonomy: Taxonomy;
  policy: Policy;
  store: Store;
  processor: Processor;
  /** OpenLineage RunEvents into the same processor (HTTP, Kafka, files). */
  openLineage: OpenLineageIntake;
  /** Rows given to materialized views again at open: a write before was cut short between a table's insert and its views'. */
  refilled: RefillReport[];
  close(): Promise<void>;
}

/** Opens the store (migrating it), loads taxonomy and rules, and rebuilds lineage from stored facts. */
export async function openAuditor(
  config: AppConfig,
  overrides: {
    database?: string;
    alerts?: ProcessorConfig["alerts"];
    /** `serve`: OpenLineage RunEvents over HTTP go through the journal (answered once on disk, stored behind). */
    openLineageJournal?: boolean;
    /** Told of a journaled batch that could not be stored yet (it is tried again). */
    onError?: (error: unknown) => void;
  } = {},
): Promise<AuditorContext> {
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(config.rulesPath, taxonomy);
  const codec = createEventCodec(loadEventSchemas());
  // A bad classification file is found before the store is opened, with its line.
  const classification = config.classificationPath ? loadClassification(config.classificationPath, taxonomy) : undefined;
  const store = await openStore({ ...config.store, ...(overrides.database ? { database: overrides.database } : {}) });
  try {
    await store.migrate();
    // Before anything reads "is it stored?": a process killed between a table's insert and its
    // views' left rows the views never received (services/store/refill.ts).
    const refilled = await refillViews(store);
    const processor = createProcessor(
      { policy, taxonomy, codec, ...(overrides.alerts ? { alerts: overrides.alerts } : {}) },
      // The lineage graph is a bounded cache of the store: memory stays flat however long it runs.
      { sink: store, lineage: store },
    );
    await processor.restore(store.lineageFacts(), await store.recentUses(defaultAuditorOptions.recheckWindow));
    // The journal is opened after the store: what it still holds from before a crash is stored first.
    const journal = overrides.openLineageJournal ? await openIntakeJournal({ dir: openLineageJournalDir(config) }) : undefined;
    const openLineage = createOpenLineageIntake({
      processor,
      store,
      taxonomy,
      classification,
      ...(journal ? { journal } : {}),
      ...(overrides.onError ? { onError: overrides.onError } : {}),
    });
    return {
      codec,
      taxonomy,
      policy,
      store,
      processor,
      openLineage,
      refilled,
      close: async () => {
        await openLineage.close();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** Where `serve` journals OpenLineage RunEvents: LINEAGE_AUDIT_OPENLINEAGE_JOURNAL, else inside the store's directory. */
function openLineageJournalDir(config: AppConfig): string {
  return resolve(config.openLineageJournalPath ?? join(config.store.path ?? defaults.storePath, "openlineage-journal"));
}

/** The configured key, or for the demo a fresh random one (pseudonyms then differ per run). */
export function hmacKeyOrEphemeral(config: AppConfig): string {
  return config.hmacKey ?? randomBytes(32).toString("hex");
}

export function requireHmacKey(config: AppConfig): string {
  if (!config.hmacKey) {
    throw new ConfigError(
      "LINEAGE_AUDIT_HMAC_KEY is not set: raw subject identifiers must be pseudonymised with your organisation's key (at least 32 bytes, e.g. openssl rand -hex 32)",
    );
  }
  return config.hmacKey;
}

/** Where a running `serve` says analysts can reach the embedded store it holds (none for a server store). */
export function serveFile(config: AppConfig): string | undefined {
  return config.store.url ? undefined : join(resolve(config.store.path ?? defaults.storePath), "serve.json");
}
