import type { IncidentReport } from "./report.ts";

const n = (v: number) => v.toLocaleString("en-US");
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function facts(r: IncidentReport): [string, string][] {
  const s = r.summary;
  const x = s.exact;
  const time = (t: number | null) => (t === null ? "none" : `${new Date(t).toISOString().replace("T", " ").replace("Z", "")} UTC`);
  const shared = x.sharedOutside.shared
    ? `Yes: ${n(x.sharedOutside.events)} shares with external recipients carried the data of ${n(x.sharedOutside.subjects)} affected data subjects (exact; whole-table exports included).`
    : s.externalShares.carryingViolatedData === 0
      ? `No. ${n(s.externalShares.checked)} shares with external recipients were checked; none carried data with the labels of these violations.`
      : `No affected data subject's own data: ${n(s.externalShares.carryingViolatedData)} external shares read fields holding data of these labels, but none held an affected person's data at the time.`;
  const rows: [string, string][] = [
    [
      "Nature of the violation",
      `${r.rule.description || r.rule.id} (rule ${r.rule.id}, ${r.rule.severity}, ${r.rule.mode}): ${s.categories.join(", ")} collected for ${s.collectedFor.join(", ")} was used for ${s.purposes.join(", ")}.`,
    ],
    ["Categories of personal data", s.categories.join(", ") || "none"],
    ["Categories of data subjects", r.subjectTypes.join(", ") || "none"],
    ["Number of data subjects (exact, per person)", n(x.exact.users)],
  ];
  if (x.fieldLevel.users !== x.exact.users) {
    const why = [
      [x.possiblyNotExactly.reasons.deletedBefore, "deleted before the use"],
      [x.possiblyNotExactly.reasons.notCarried, "not carried by a subject-named derivation"],
      [x.possiblyNotExactly.reasons.collectedAfter, "collected after the use"],
      [x.possiblyNotExactly.reasons.noProvenance, "no provenance for that subject"],
    ] as const;
    rows.push([
      "Possibly affected (field level)",
      `${n(x.fieldLevel.users)} data subjects were named by the flagged uses; ${n(x.possiblyNotExactly.users)} of them not exactly: ${why
        .filter(([c]) => c > 0)
        .map(([c, w]) => `${n(c)} ${w}`)
        .join(", ")}.`,
    ]);
  }
  if (x.onDeclarationOnly > 0) {
    rows.push([
      "Resting on declarations only",
      `${n(x.onDeclarationOnly)} of the exact data subjects: a collection naming nobody, not evidence per person.`,
    ]);
  }
  rows.push(
    [
      "Number of personal data records (exact; subject × data category)",
      `${n(x.exact.records)}${x.fieldLevel.records !== x.exact.records ? ` (field level: ${n(x.fieldLevel.records)})` : ""}`,
    ],
    [
      "Violating uses",
      `${n(x.exact.violatingEvents)}${x.fieldLevel.violatingEvents !== x.exact.violatingEvents ? ` (flagged at field level: ${n(x.fieldLevel.violatingEvents)})` : ""}`,
    ],
    [
      "First occurrence",
      `${time(x.exact.first)}${x.fieldLevel.first !== x.exact.first ? ` (field level: ${time(x.fieldLevel.first)})` : ""}`,
    ],
    ["Last occurrence", `${time(x.exact.last)}${x.fieldLevel.last !== x.exact.last ? ` (field level: ${time(x.fieldLevel.last)})` : ""}`],
    ["Services involved", s.services.join(", ") || "none"],
    ["Jobs involved", s.jobs.join(", ") || "none"],
    ["Where the data was collected", s.origins.join(", ") || "none"],
    ["Shared with an external recipient?", shared],
  );
  return rows;
}

export function renderJson(r: IncidentReport): string {
  return JSON.stringify(r, null, 2);
}

export function renderMarkdown(r: IncidentReport): string {
  const lines = [`# Incident report: ${r.rule.id}`, "", `Generated ${r.generatedAt} by lineage-audit from the audit store.`, ""];
  lines.push("| | |", "|---|---|", ...facts(r).map(([k, v]) => `| ${k} | ${v.replace(/\|/g, "\\|")} |`), "");
  if (r.path.length > 0) {
    lines.push("## Lineage path", "", "```mermaid", "flowchart TD");
    // Mermaid reads `#…;` as an entity, so '#' is written as one.
    r.path.forEach((hop, i) => lines.push(`  h${i}["${hop.label.replace(/"/g, "'").replace(/#/g, "#35;")}"]`));
    for (let i = 1; i < r.path.length; i++) lines.push(`  h${i - 1} --> h${i}`);
    lines.push("```", "");
  }
  lines.push("## Affected subjects over time (exact)", "", "| week | newly affected | total |", "|---|---:|---:|");
  for (const w of r.timeline) lines.push(`| ${w.week} | ${n(w.newSubjects)} | ${n(w.totalSubjects)} |`);
  lines.push("", `Investigate: \`lineage-audit affected --rule ${r.rule.id}\``, "");
  return lines.join("\n");
}

function chartSvg(r: IncidentReport): string {
  const w = 720;
  const h = 220;
  const pad = 40;
  const max = Math.max(1, ...r.timeline.map((t) => t.totalSubjects));
  const step = r.timeline.length > 0 ? (w - 2 * pad) / r.timeline.length : 0;
  const bars = r.timeline
    .map((t, i) => {
      const bh = ((h - 2 * pad) * t.totalSubjects) / max;
      return `<rect x="${(pad + i * step).toFixed(1)}" y="${(h - pad - bh).toFixed(1)}" width="${Math.max(1, step - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="#c0392b"><title>${esc(t.week)}: ${n(t.totalSubjects)} subjects</title></rect>`;
    })
    .join("");
  const first = r.timeline[0]?.week ?? "";
  const last = r.timeline[r.timeline.length - 1]?.week ?? "";
  return `<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="Affected subjects over time">
<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#333"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#333"/>
${bars}<text x="${pad}" y="${h - 10}" font-size="12">${esc(first)}</text><text x="${w - pad}" y="${h - 10}" font-size="12" text-anchor="end">${esc(last)}</text>
<text x="${pad + 4}" y="${pad - 8}" font-size="12">${n(max)} subjects</text></svg>`;
}

function pathSvg(r: IncidentReport): string {
  const boxH = 44;
  const gap = 26;
  const w = 720;
  const h = Math.max(1, r.path.length) * (boxH + gap);
  const boxes = r.path
    .map((hop, i) => {
      const y = i * (boxH + gap);
      const colour = hop.kind === "COLLECT" ? "#2e86c1" : hop.kind === "USE" || hop.kind === "SHARE" ? "#c0392b" : "#7f8c8d";
      const label = hop.label.length > 94 ? `${hop.label.slice(0, 93)}…` : hop.label; // what a 700 px box holds in 12 px monospace
      const arrow = i > 0 ? `<line x1="${w / 2}" y1="${y - gap}" x2="${w / 2}" y2="${y - 4}" stroke="#333" marker-end="url(#arrow)"/>` : "";
      return `${arrow}<rect x="4" y="${y}" width="${w - 8}" height="${boxH}" rx="6" fill="white" stroke="${colour}" stroke-width="2"/><text x="14" y="${y + 27}" font-size="12" font-family="monospace">${esc(label)}</text>`;
    })
    .join("");
  return `<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="Lineage path">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>${boxes}</svg>`;
}

/** One self-contained file: inline CSS and SVG, no script, nothing fetched. */
export function renderHtml(r: IncidentReport): string {
  const rows = facts(r)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident report: ${esc(r.rule.id)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}th{text-align:left;vertical-align:top;padding:.3rem 1rem .3rem 0;width:22rem}td{padding:.3rem 0}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}</style>
</head><body>
<h1>Incident report: ${esc(r.rule.id)}</h1>
<p>Generated ${esc(r.generatedAt)} by lineage-audit from the audit store.</p>
<table id="facts">
${rows}
</table>
<h2>Lineage path</h2>
${pathSvg(r)}
<h2>Affected subjects over time (exact, cumulative, by week)</h2>
${chartSvg(r)}
<p>Investigate: <code>lineage-audit affected --rule ${esc(r.rule.id)}</code></p>
</body></html>
`;
}
