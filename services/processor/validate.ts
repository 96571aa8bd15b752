import { InputError } from "../errors/index.ts";
import { EVENT_TIME_RANGE, EventKind, PSEUDONYM_PATTERN, type DataAccessEvent } from "../codec/index.ts";
import { TaxonomyKind, type Taxonomy } from "../taxonomy/index.ts";
import { parseTraceparent as parseW3C } from "../telemetry/index.ts";

/** Raised when a subject id is not pseudonymous: the payload must then not be kept anywhere. */
export class RawIdentifierError extends InputError {}

/**
 * Checks what the Avro schema cannot: taxonomy keys exist, each kind has what it needs, subject
 * ids are pseudonymous. Throws an InputError naming the field; never quotes values that may be
 * personal data.
 */
export function validateEvent(e: DataAccessEvent, taxonomy: Taxonomy): void {
  // Plain loops and no closures: this runs for every event.
  // First: a message carrying raw identifiers must be recognised as such whatever else is wrong,
  // so that its payload is never kept.
  for (let i = 0; i < e.subjects.length; i++) {
    if (!PSEUDONYM_PATTERN.test(e.subjects[i] as string)) {
      throw new RawIdentifierError(
        `event ${e.kind} field 'subjects[${i}]' is not a pseudonymous id (32 hex digits from the emitter's keyed HMAC); the message was not stored`,
        {
          context: { path: `subjects[${i}]`, kind: e.kind },
        },
      );
    }
  }
  if (e.eventId.length === 0 || e.eventId.length > 128) failed(e, "eventId", "must be 1 to 128 characters");
  if (!Number.isInteger(e.occurredAt) || e.occurredAt < EVENT_TIME_RANGE.min || e.occurredAt > EVENT_TIME_RANGE.max)
    failed(e, "occurredAt", `must be milliseconds since 1970, a time the store keeps exactly (${EVENT_TIME_RANGE.text})`);
  if (e.service === "") failed(e, "service", "must not be empty");
  if (e.job.name === "") failed(e, "job.name", "must not be empty");
  if (!taxonomy.has(TaxonomyKind.dataSubject, e.dataSubject))
    failed(e, "dataSubject", `is not a fideslang data subject${quoted(e.dataSubject)}`);
  for (let i = 0; i < e.purposes.length; i++) {
    const p = e.purposes[i] as string;
    if (!taxonomy.has(TaxonomyKind.dataUse, p)) failed(e, `purposes[${i}]`, `is not a fideslang data use${quoted(p)}`);
  }
  checkCategories(e, "inputs", e.inputs, taxonomy);
  checkCategories(e, "outputs", e.outputs, taxonomy);
  switch (e.kind) {
    case EventKind.collect:
      if (e.outputs.length === 0) failed(e, "outputs", "must name the dataset the data is collected into");
      if (!e.outputs.some((d) => d.fields.some((f) => f.categories.length > 0)))
        failed(e, "outputs", "must give at least one field its data categories");
      if (e.purposes.length === 0) failed(e, "purposes", "must list the purposes the data is collected for");
      break;
    case EventKind.derive:
      if (e.inputs.length === 0 && e.fieldLineage.length === 0) failed(e, "inputs", "must name what the derivation reads");
      if (e.outputs.length === 0 && e.fieldLineage.length === 0) failed(e, "outputs", "must name what the derivation writes");
      break;
    case EventKind.use:
      if (e.inputs.length === 0) failed(e, "inputs", "must name the dataset used");
      if (e.purposes.length === 0) failed(e, "purposes", "must declare the purpose of the use");
      break;
    case EventKind.share:
      if (e.inputs.length === 0) failed(e, "inputs", "must name the dataset shared");
      if (e.purposes.length === 0) failed(e, "purposes", "must declare the purpose of the share");
      if (!e.recipient) failed(e, "recipient", "is required for SHARE");
      break;
    case EventKind.delete:
      if (e.inputs.length === 0) failed(e, "inputs", "must name the dataset deleted from");
      break;
  }
}

function failed(e: DataAccessEvent, path: string, problem: string): never {
  throw new InputError(`event ${e.kind} field '${path}' ${problem}`, { context: { path, kind: e.kind } });
}

function checkCategories(e: DataAccessEvent, side: "inputs" | "outputs", list: DataAccessEvent["inputs"], taxonomy: Taxonomy): void {
  for (let i = 0; i < list.length; i++) {
    const fields = (list[i] as DataAccessEvent["inputs"][number]).fields;
    for (let j = 0; j < fields.length; j++) {
      const categories = (fields[j] as (typeof fields)[number]).categories;
      for (let k = 0; k < categories.length; k++) {
        const c = categories[k] as string;
        if (!taxonomy.has(TaxonomyKind.dataCategory, c))
          failed(e, `${side}[${i}].fields[${j}].categories[${k}]`, `is not a fideslang data category${quoted(c)}`);
      }
    }
  }
}

// A value is quoted back only when it has the shape of a taxonomy key (lowercase words and dots):
// whatever else a producer put there (an e-mail, a phone number) must not reach a dead letter.
const KEY_SHAPE = /^[a-z][a-z_]*(\.[a-z][a-z_]*)*$/;
export function quoted(value: string): string {
  return KEY_SHAPE.test(value) && value.length <= 100 ? ` ('${value}')` : "";
}

/** The trace and span ids of a W3C traceparent, or empty strings when absent or malformed. */
export function parseTraceparent(value: string | null): { traceId: string; spanId: string } {
  const parsed = parseW3C(value);
  return parsed ? { traceId: parsed.traceId, spanId: parsed.spanId } : { traceId: "", spanId: "" };
}
