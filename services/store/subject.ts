import type { Store } from "./store.ts";
import { Table } from "./store.ts";

/** One thing that touched a subject's data, for answering an access request. */
export interface SubjectAccess {
  occurredAt: string;
  kind: string;
  service: string;
  job: string;
  runId: string;
  datasets: string[];
  fields: string[];
  categories: string[];
  purposes: string[];
  collectedFor: string[];
  recipient: string | null;
  verdict: string;
  violations: string[];
  eventId: string;
}

/** Every collection, derivation, use, share and deletion that named this pseudonymous subject, in time order. */
export async function subjectHistory(store: Store, subjectId: string): Promise<SubjectAccess[]> {
  const db = store.database;
  const rows = await store.query<{
    event_id: string;
    occurred_at: string;
    kind: string;
    service: string;
    job: string;
    run_id: string;
    datasets: string[];
    fields: string[];
    categories: string[];
    purposes: string[];
    collected_for: string[];
    recipient: string;
    recipient_external: number;
    verdict: string;
    violations: string[];
  }>(
    `SELECT e.event_id AS event_id, toString(e.occurred_at) AS occurred_at, e.kind AS kind, e.service AS service,
            concat(e.job_namespace, '/', e.job_name) AS job, e.run_id AS run_id,
            if(e.kind IN ('COLLECT', 'DERIVE'), e.outputs, e.inputs) AS datasets,
            if(e.kind IN ('COLLECT', 'DERIVE'), e.output_fields, e.input_fields) AS fields,
            e.categories AS categories, e.purposes AS purposes, e.collected_for AS collected_for,
            e.recipient AS recipient, e.recipient_external AS recipient_external, e.verdict AS verdict,
            arraySort(v.rules) AS violations
     FROM (SELECT *, inputs, outputs FROM ${db}.${Table.events} FINAL
           WHERE event_id IN (SELECT event_id FROM ${db}.${Table.subjects} WHERE subject_id = {subject:String})) AS e
     LEFT JOIN (SELECT event_id, groupUniqArray(rule_id) AS rules FROM ${db}.${Table.violationSubjects}
                WHERE subject_id = {subject:String} GROUP BY event_id) AS v ON v.event_id = e.event_id
     ORDER BY e.occurred_at, e.event_id`,
    { subject: subjectId },
  );
  return rows.map((r) => ({
    occurredAt: r.occurred_at,
    kind: r.kind,
    service: r.service,
    job: r.job,
    runId: r.run_id,
    datasets: r.datasets,
    fields: r.fields,
    categories: r.categories,
    purposes: r.purposes,
    collectedFor: r.collected_for,
    recipient: r.recipient ? `${r.recipient}${r.recipient_external ? " (external)" : " (internal)"}` : null,
    verdict: r.verdict,
    violations: r.violations,
    eventId: r.event_id,
  }));
}
