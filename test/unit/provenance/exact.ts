// The exact answer of docs/tables.md ("The issue-9 model") computed in memory over the rows, as the
// store's query computes it in SQL: the unit tests check the rows against the reference evaluator
// through it, without an engine.
import { OPEN_END, type HoldingRow, type ProvenanceRows } from "../../../services/provenance/index.ts";
import type { Counts, TimeWindow } from "../../reference/provenance.ts";

export interface Reasons {
  deletedBefore: number;
  notCarried: number;
  collectedAfter: number;
  noProvenance: number;
}

export interface RowsAnswer {
  exact: Counts;
  fieldLevel: Counts;
  /** Subjects named by flagged uses but never exactly affected in the window, by first reason. */
  possiblyNotExactly: { users: number; reasons: Reasons };
  sharedOutside: { shared: boolean; subjects: number; events: number };
  onDeclarationOnly: number;
}

export function answerFromRows(rows: ProvenanceRows, ruleId: string, window: TimeWindow = {}): RowsAnswer {
  const users = new Set<string>();
  const records = new Set<string>();
  const times: number[] = [];
  const sharedSubjects = new Set<string>();
  let sharedEvents = 0;
  const declared = new Set<string>();
  const notDeclared = new Set<string>();
  const field = { users: new Set<string>(), records: new Set<string>(), times: [] as number[] };
  /** subject -> best (lowest) reason code among flagged uses where it was not exact. */
  const reasonOf = new Map<string, number>();
  const uses = new Map<string, { at: number; whole: boolean; external: boolean; subjects: string[]; fields: Set<string> }>();
  for (const r of rows.reads) {
    if ((window.from !== undefined && r.occurred_at < window.from) || (window.to !== undefined && r.occurred_at >= window.to)) continue;
    const u = uses.get(r.event_id) ?? {
      at: r.occurred_at,
      whole: r.whole_table === 1,
      external: r.external === 1,
      subjects: r.subjects,
      fields: new Set<string>(),
    };
    uses.set(r.event_id, u);
    u.fields.add(r.field);
  }
  for (const [id, u] of uses) {
    const forbidden = new Map(
      rows.forbidden.filter((f) => f.event_id === id && f.rule_id === ruleId).map((f) => [f.label_key, f.category]),
    );
    if (forbidden.size === 0) continue;
    // Field level: the use is flagged; every subject it names, with every forbidden category.
    field.times.push(u.at);
    for (const s of u.subjects) {
      field.users.add(s);
      for (const c of new Set(forbidden.values())) field.records.add(`${s}|${c}`);
    }
    const bad = (h: HoldingRow, variant: number, s: string) =>
      h.variant === variant && h.subject === s && u.fields.has(h.field) && forbidden.has(h.label_key);
    const at = (h: HoldingRow) => h.valid_from <= u.at && u.at < h.valid_to;
    for (const s of u.subjects) {
      const code = rows.holdings.some((h) => bad(h, 0, s) && at(h))
        ? 0
        : rows.holdings.some((h) => bad(h, 1, s) && at(h))
          ? 1
          : rows.holdings.some((h) => bad(h, 2, s) && at(h))
            ? 2
            : rows.holdings.some((h) => bad(h, 2, s) && h.valid_to === OPEN_END)
              ? 3
              : 4;
      if (code > 0) reasonOf.set(s, Math.min(code, reasonOf.get(s) ?? 5));
    }
    const per = new Map<string, { evidence: boolean; categories: Set<string>; declaredOnly: boolean }>();
    for (const h of rows.holdings) {
      if (h.variant !== 0) continue;
      if (!u.fields.has(h.field) || h.valid_from > u.at || u.at >= h.valid_to) continue;
      if (!u.whole && !u.subjects.includes(h.subject)) continue;
      const p = per.get(h.subject) ?? { evidence: false, categories: new Set<string>(), declaredOnly: true };
      per.set(h.subject, p);
      p.evidence ||= h.evidence === 1;
      const category = forbidden.get(h.label_key);
      if (category === undefined) continue;
      p.categories.add(category);
      p.declaredOnly &&= h.declaration === 1;
    }
    let any = false;
    for (const [s, p] of per) {
      if (p.categories.size === 0 || (u.whole && !p.evidence)) continue;
      any = true;
      users.add(s);
      for (const c of p.categories) records.add(`${s}|${c}`);
      if (u.external) sharedSubjects.add(s);
      (p.declaredOnly ? declared : notDeclared).add(s);
    }
    if (!any) continue;
    times.push(u.at);
    if (u.external) sharedEvents++;
  }
  const reasons: Reasons = { deletedBefore: 0, notCarried: 0, collectedAfter: 0, noProvenance: 0 };
  const keys = ["deletedBefore", "notCarried", "collectedAfter", "noProvenance"] as const;
  let possibly = 0;
  for (const [s, code] of reasonOf) {
    if (users.has(s)) continue;
    possibly++;
    reasons[keys[code - 1] as keyof Reasons]++;
  }
  return {
    fieldLevel: {
      users: field.users.size,
      records: field.records.size,
      violatingEvents: field.times.length,
      first: field.times.length > 0 ? Math.min(...field.times) : null,
      last: field.times.length > 0 ? Math.max(...field.times) : null,
    },
    possiblyNotExactly: { users: possibly, reasons },
    exact: {
      users: users.size,
      records: records.size,
      violatingEvents: times.length,
      first: times.length > 0 ? Math.min(...times) : null,
      last: times.length > 0 ? Math.max(...times) : null,
    },
    sharedOutside: { shared: sharedEvents > 0, subjects: sharedSubjects.size, events: sharedEvents },
    onDeclarationOnly: [...declared].filter((s) => !notDeclared.has(s)).length,
  };
}

/** The exact counts alone. */
export function exactFromRows(rows: ProvenanceRows, ruleId: string, window: TimeWindow = {}): Counts {
  return answerFromRows(rows, ruleId, window).exact;
}
