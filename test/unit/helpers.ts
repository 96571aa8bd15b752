// Shared factories for unit tests: small, explicit builders of DataAccessEvents and the
// default policy/taxonomy, so each test states only what matters to it.

import { createHash } from "node:crypto";
import {
  EventKind,
  Masking,
  Transform,
  type DataAccessEvent,
  type Dataset,
  type FieldMapping,
  type FieldRef,
  type Recipient,
} from "../../services/codec/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy, type Policy } from "../../services/rules/index.ts";
import { loadFideslangTaxonomy, type Taxonomy } from "../../services/taxonomy/index.ts";
import type { AuditBatch, AuditSink } from "../../services/processor/index.ts";

export const NS = "wh";

let counter = 0;
/** A fresh, UUID-shaped, deterministic-per-run event id. */
export function nextEventId(): string {
  counter++;
  return `00000000-0000-4000-8000-${counter.toString(16).padStart(12, "0")}`;
}

/** A valid pseudonymous subject id (32 lowercase hex digits) derived from `seed`. */
export function pseudo(seed: string | number): string {
  return createHash("sha256").update(String(seed)).digest("hex").slice(0, 32);
}

/** `wh/<name>` */
export function dsId(name: string): string {
  return `${NS}/${name}`;
}

/** A dataset; `fields` maps field name to its categories (empty list = no categories). */
export function ds(name: string, fields: Record<string, string[]> = {}): Dataset {
  return { namespace: NS, name, fields: Object.entries(fields).map(([n, categories]) => ({ name: n, categories })) };
}

/** A dataset read by a use, naming fields without categories. */
export function read(name: string, ...fields: string[]): Dataset {
  return { namespace: NS, name, fields: fields.map((f) => ({ name: f, categories: [] })) };
}

export function ref(name: string, field: string): FieldRef {
  return { namespace: NS, name, field };
}

/** Column-level mapping `output <- inputs` with a transform. */
export function map(output: FieldRef, inputs: FieldRef[], transform: Transform = Transform.copy): FieldMapping {
  return { output, inputs, transform };
}

function base(kind: EventKind, overrides: Partial<DataAccessEvent>): DataAccessEvent {
  return {
    eventId: nextEventId(),
    kind,
    occurredAt: Date.UTC(2019, 5, 1, 12, 0, 0),
    service: "test-service",
    job: { namespace: "test", name: `${kind.toLowerCase()}-job` },
    runId: "run-1",
    inputs: [],
    outputs: [],
    transform: Transform.other,
    fieldLineage: [],
    masking: Masking.none,
    purposes: [],
    dataSubject: "customer",
    subjects: [],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
    ...overrides,
  };
}

/** COLLECT of `fields` (name -> categories) into `dataset` for `purposes`. */
export function collect(
  dataset: string,
  fields: Record<string, string[]>,
  purposes: string[],
  overrides: Partial<DataAccessEvent> = {},
): DataAccessEvent {
  return base(EventKind.collect, { outputs: [ds(dataset, fields)], purposes, service: "collector", ...overrides });
}

/**
 * Column-level DERIVE: inputs and outputs are the datasets named by the mappings (without
 * fields), the event transform is the first mapping's.
 */
export function deriveFields(mappings: FieldMapping[], overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  const inputs = [...new Set(mappings.flatMap((m) => m.inputs.map((i) => i.name)))].map((n) => ds(n));
  const outputs = [...new Set(mappings.map((m) => m.output.name))].map((n) => ds(n));
  return base(EventKind.derive, {
    inputs,
    outputs,
    fieldLineage: mappings,
    transform: mappings[0]?.transform ?? Transform.other,
    service: "deriver",
    ...overrides,
  });
}

/** Dataset-level DERIVE (no column lineage): every input's labels reach every output. */
export function deriveDatasets(
  inputs: string[],
  outputs: string[],
  transform: Transform,
  overrides: Partial<DataAccessEvent> = {},
): DataAccessEvent {
  return base(EventKind.derive, {
    inputs: inputs.map((n) => ds(n)),
    outputs: outputs.map((n) => ds(n)),
    transform,
    service: "deriver",
    ...overrides,
  });
}

export function use(inputs: Dataset[], purposes: string[], overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  return base(EventKind.use, { inputs, purposes, service: "user-service", ...overrides });
}

export function share(
  inputs: Dataset[],
  purposes: string[],
  recipient: Recipient | null,
  overrides: Partial<DataAccessEvent> = {},
): DataAccessEvent {
  return base(EventKind.share, { inputs, purposes, recipient, service: "sharer", ...overrides });
}

let defaults: { taxonomy: Taxonomy; policy: Policy } | undefined;
/** The shipped fideslang taxonomy and rules/default.yaml, loaded once per test file. */
export function defaultPolicy(): { taxonomy: Taxonomy; policy: Policy } {
  if (!defaults) {
    const taxonomy = loadFideslangTaxonomy();
    defaults = { taxonomy, policy: loadPolicy(DEFAULT_POLICY_PATH, taxonomy) };
  }
  return defaults;
}

/** An in-memory AuditSink that records every batch it is given. */
export interface CapturingSink extends AuditSink {
  batches: AuditBatch[];
}

export function capturingSink(): CapturingSink {
  const batches: AuditBatch[] = [];
  return {
    batches,
    async write(batch) {
      batches.push(structuredClone(batch));
    },
  };
}

/** The 2019 case's category and purposes. */
export const PHONE = "user.contact.phone_number";
export const EMAIL = "user.contact.email";
export const SECURITY = "essential.service.security";
export const AUTHENTICATION = "essential.service.authentication";
export const ADS = "marketing.advertising.third_party.targeted";

/**
 * The 2019 pipeline: 2FA phone collected for security/authentication, copied to profile
 * contact points, joined into the identity graph, hashed into advertising matching keys.
 */
export function pipeline2019(): { collect: DataAccessEvent; copy: DataAccessEvent; join: DataAccessEvent; hash: DataAccessEvent } {
  return {
    collect: collect("security.two_factor", { phone_number: [PHONE] }, [SECURITY, AUTHENTICATION], { service: "auth-service" }),
    copy: deriveFields([map(ref("profile.contact_points", "phone_number"), [ref("security.two_factor", "phone_number")], Transform.copy)], {
      service: "profile-sync",
    }),
    join: deriveFields([map(ref("identity.graph", "security_phone"), [ref("profile.contact_points", "phone_number")], Transform.join)], {
      service: "identity-graph",
    }),
    hash: deriveFields([map(ref("ads.matching_keys", "phone_sha256"), [ref("identity.graph", "security_phone")], Transform.hash)], {
      service: "ads-identity",
    }),
  };
}
