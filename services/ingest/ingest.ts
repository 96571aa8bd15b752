import { createReadStream, openSync, readSync, closeSync } from "node:fs";
import { createInterface } from "node:readline";
import { ConfigError, InputError, LineageAuditError, SchemaError } from "../errors/index.ts";
import { defaultDecodeLimits, readContainerFile, type EventCodec } from "../codec/index.ts";
import type { EmitInput } from "../emitter/index.ts";
import type { InboundEvent, Processor, Rejection } from "../processor/index.ts";
import { isOpenLineageShape, type OpenLineageIntake, type OpenLineageItem } from "../openlineage/index.ts";

export interface IngestOptions {
  processor: Pick<Processor, "processEvents">;
  codec: EventCodec;
  /** Builds an event from an NDJSON line (the emitter's builder, with the pseudonymisation key). */
  buildEvent: () => (input: EmitInput) => unknown;
  /** Events per batch handed to the processor. @default 5000 */
  batchSize?: number;
  onProgress?: (file: string, records: number) => void;
  /** Called for each rejected record as it happens. */
  onRejected?: (rejection: Rejection) => void;
  /** Takes NDJSON lines shaped as OpenLineage RunEvents (docs/openlineage.md); without it they are dead-lettered. */
  openLineage?: Pick<OpenLineageIntake, "ingest">;
}

export interface IngestResult {
  files: number;
  records: number;
  accepted: number;
  rejected: number;
  violations: number;
}

const AVRO_CONTAINER_MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]); // "Obj" 1

/**
 * Reads Avro object container files (records of any registered schema version) and NDJSON files
 * (one `emit()` input per line) into the processor. A bad record is dead-lettered and reported
 * with file and line; the rest go on.
 */
export async function ingestFiles(paths: readonly string[], options: IngestOptions): Promise<IngestResult> {
  const result: IngestResult = { files: 0, records: 0, accepted: 0, rejected: 0, violations: 0 };
  const batchSize = options.batchSize ?? 5000;
  let batch: InboundEvent[] = [];
  let runEvents: OpenLineageItem[] = [];
  const count = (r: { accepted: number; violations: number; rejected: Rejection[] }) => {
    result.accepted += r.accepted;
    result.violations += r.violations;
    result.rejected += r.rejected.length;
    for (const rejection of r.rejected) options.onRejected?.(rejection);
  };
  // Our events and RunEvents are written in the order the file gives them: a batch of one kind
  // is written before a record of the other is taken.
  const flushEvents = async () => {
    if (batch.length === 0) return;
    const r = await options.processor.processEvents(batch);
    batch = [];
    count(r);
  };
  const flushRunEvents = async () => {
    if (runEvents.length === 0 || !options.openLineage) return;
    const r = await options.openLineage.ingest(runEvents);
    runEvents = [];
    // Counted per RunEvent (one record each), whatever number of events it became.
    const refused = r.outcomes.filter((o) => !o.stored);
    count({
      accepted: r.outcomes.length - refused.length,
      violations: r.violations,
      rejected: refused.map((o) => ({ source: o.source, code: o.code, reason: o.reason, redacted: true })),
    });
  };
  const flush = async () => {
    await flushEvents();
    await flushRunEvents();
  };
  const push = async (event: InboundEvent) => {
    await flushRunEvents();
    batch.push(event);
    result.records++;
    if (batch.length >= batchSize) {
      await flushEvents();
      options.onProgress?.(currentFile, result.records);
    }
  };
  const pushRunEvent = async (item: OpenLineageItem) => {
    if (!options.openLineage) {
      const failure = new InputError("line is an OpenLineage RunEvent, but no OpenLineage intake is configured");
      return push({ event: { __invalid: true }, source: item.source, failure });
    }
    await flushEvents();
    runEvents.push(item);
    result.records++;
    if (runEvents.length >= batchSize) {
      await flushRunEvents();
      options.onProgress?.(currentFile, result.records);
    }
  };
  let currentFile = "";

  for (const path of paths) {
    currentFile = path;
    result.files++;
    const before = { records: result.records, accepted: result.accepted, rejected: result.rejected };
    try {
      if (isAvroContainer(path)) await readContainer(path, options.codec, push);
      else await readNdjson(path, options.buildEvent(), push, pushRunEvent);
    } catch (error) {
      // The records before the break are stored (or dead-lettered) and said so.
      await flush();
      if (!(error instanceof InputError) || error.context["file"] !== path || error.context["records"] === undefined) throw error;
      const records = result.records - before.records;
      throw new InputError(
        `${error.message}; the ${records} records before it were ingested (${result.accepted - before.accepted} stored, ${result.rejected - before.rejected} dead-lettered)`,
        { cause: error.cause, context: { ...error.context, accepted: result.accepted - before.accepted } },
      );
    }
    await flush();
    options.onProgress?.(path, result.records);
  }
  return result;
}

function isAvroContainer(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (cause) {
    throw new InputError(`${path}: cannot open (${(cause as NodeJS.ErrnoException).code ?? "unreadable"})`, {
      cause,
      context: { file: path },
    });
  }
  try {
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && head.equals(AVRO_CONTAINER_MAGIC);
  } finally {
    closeSync(fd);
  }
}

async function readNdjson(
  path: string,
  build: (input: EmitInput) => unknown,
  push: (e: InboundEvent) => Promise<void>,
  pushRunEvent: (item: OpenLineageItem) => Promise<void>,
): Promise<void> {
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === "") continue;
    const source = `${path}:${lineNo}`;
    let parsed: unknown;
    let event: unknown;
    try {
      // Bounded before it is parsed, as a message is: an NDJSON record over the message limit.
      if (line.length > defaultDecodeLimits.maxMessageBytes || Buffer.byteLength(line) > defaultDecodeLimits.maxMessageBytes)
        throw new InputError(`line is over the ${defaultDecodeLimits.maxMessageBytes.toLocaleString("en-US")}-byte message limit`);
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new InputError("line is not valid JSON");
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new InputError("line must be a JSON object (one event)");
      // An OpenLineage RunEvent: the intake checks its bytes and schema itself.
      if (isOpenLineageShape(parsed)) event = RUN_EVENT;
      else
        try {
          event = build(parsed as EmitInput);
        } catch (error) {
          if (error instanceof LineageAuditError) throw error;
          throw new SchemaError("event is malformed: check that subjects, inputs and outputs are arrays and job is an object");
        }
    } catch (error) {
      // A missing key is the operator's to fix, not this line's: stop (what was stored stays).
      if (error instanceof ConfigError) throw error;
      // Hand the failure to the processor too, so it is dead-lettered like any other bad record.
      event = { __invalid: true };
      await push({ event, source, raw: redactable(parsed, line), failure: error as LineageAuditError });
      continue;
    }
    if (event === RUN_EVENT) await pushRunEvent({ bytes: Buffer.from(line), source });
    else await push({ event, source, raw: redactable(parsed, line) });
  }
}

/** Marks an NDJSON line recognised as an OpenLineage RunEvent. */
const RUN_EVENT = Symbol("OpenLineage RunEvent");

/** NDJSON lines may carry raw identifiers in `subjects`: those are never kept in a dead letter. */
function redactable(parsed: unknown, line: string): Uint8Array | undefined {
  if (parsed && typeof parsed === "object" && !("subjects" in parsed)) return Buffer.from(line);
  return undefined;
}

async function readContainer(path: string, codec: EventCodec, push: (e: InboundEvent) => Promise<void>): Promise<void> {
  for await (const { record, index, writer } of readContainerFile(path, codec)) {
    await push({ event: record, source: `${path}#${index}`, meta: writer, raw: Buffer.from(JSON.stringify(record)) });
  }
}
