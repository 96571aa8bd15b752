// The exact count of docs/tables.md ("The issue-9 model") computed in memory over the rows, as the
// store's query computes it in SQL: the unit tests check the rows against the reference evaluator
// through it, without an engine.
import type { ProvenanceRows } from "../../../services/provenance/index.ts";
import type { Counts, TimeWindow } from "../../reference/provenance.ts";

export function exactFromRows(rows: ProvenanceRows, ruleId: string, window: TimeWindow = {}): Counts {
  const users = new Set<string>();
  const records = new Set<string>();
  const times: number[] = [];
  const uses = new Map<string, { at: number; whole: boolean; subjects: string[]; fields: Set<string> }>();
  for (const r of rows.reads) {
    if ((window.from !== undefined && r.occurred_at < window.from) || (window.to !== undefined && r.occurred_at >= window.to)) continue;
    const u = uses.get(r.event_id) ?? { at: r.occurred_at, whole: r.whole_table === 1, subjects: r.subjects, fields: new Set() };
    uses.set(r.event_id, u);
    u.fields.add(r.field);
  }
  for (const [id, u] of uses) {
    const forbidden = new Map(
      rows.forbidden.filter((f) => f.event_id === id && f.rule_id === ruleId).map((f) => [f.label_key, f.category]),
    );
    if (forbidden.size === 0) continue;
    const per = new Map<string, { evidence: boolean; categories: Set<string> }>();
    for (const h of rows.holdings) {
      if (!u.fields.has(h.field) || h.valid_from > u.at || u.at >= h.valid_to) continue;
      if (!u.whole && !u.subjects.includes(h.subject)) continue;
      const p = per.get(h.subject) ?? { evidence: false, categories: new Set<string>() };
      per.set(h.subject, p);
      p.evidence ||= h.evidence === 1;
      const category = forbidden.get(h.label_key);
      if (category !== undefined) p.categories.add(category);
    }
    let any = false;
    for (const [s, p] of per) {
      if (p.categories.size === 0 || (u.whole && !p.evidence)) continue;
      any = true;
      users.add(s);
      for (const c of p.categories) records.add(`${s}|${c}`);
    }
    if (any) times.push(u.at);
  }
  return {
    users: users.size,
    records: records.size,
    violatingEvents: times.length,
    first: times.length > 0 ? Math.min(...times) : null,
    last: times.length > 0 ? Math.max(...times) : null,
  };
}
