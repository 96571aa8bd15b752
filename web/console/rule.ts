// A rule's page: its exact and possibly-affected users (and the difference over time), the lineage
// graph of its most frequent paths (laid out by dagre: datasets' fields as nodes, hops as edges,
// the origin and the use highlighted, masking marked), services and jobs, external shares, alerts,
// and the Art. 33 report in each format.
import dagre from "@dagrejs/dagre";
import uPlot from "uplot";
import type { RuleDetail, RulePath } from "../../services/console/types.ts";
import { clock, el, modelNote, section, table } from "./dom.ts";
import { datasetLink } from "./dataset.ts";

const n = (v: number) => v.toLocaleString("en-US");
const day = (iso: string | null) => (iso ? iso.slice(0, 10) : "—");
const SVG = "http://www.w3.org/2000/svg";

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function renderRule(root: HTMLElement, id: string, detail: RuleDetail | undefined): void {
  root.replaceChildren();
  if (!detail) {
    const empty = el("div", undefined, "empty");
    empty.append(el("p", `The policy has no rule called “${id}”.`));
    const back = el("a", "Back to the overview");
    back.href = "#/";
    empty.append(back);
    root.append(empty);
    return;
  }
  const r = detail.rule;
  const head = el("section", undefined, "facts");
  head.setAttribute("aria-label", "What the rule found");
  head.append(el("p", r.description, "desc"));
  const facts = el("dl", undefined, "facts-list");
  const fact = (name: string, value: string, id?: string) => {
    const dt = el("dt", name);
    const dd = el("dd", value);
    if (id) dd.id = id;
    facts.append(dt, dd);
  };
  fact("Severity and mode", `${r.severity}, ${r.mode}`);
  fact("Exactly affected users", n(detail.exact.users), "rule-exact");
  fact("Possibly affected users (field level)", n(detail.possibly.users), "rule-possibly");
  fact("Records (user × data category), exact", n(detail.exact.records));
  fact("Violating uses and shares", n(detail.violatingEvents));
  fact(
    "Shared outside",
    detail.externalShares > 0 ? `yes: ${n(detail.externalShares)} shares to external recipients` : "no external share broke this rule",
  );
  head.append(facts, modelNote(detail.model));
  const reports = el("p", "Art. 33 incident report: ", "reports");
  for (const [format, label] of [
    ["md", "Markdown"],
    ["html", "HTML"],
    ["json", "JSON"],
  ] as const) {
    const a = el("a", label, "button");
    a.href = `/api/console/report?rule=${encodeURIComponent(r.id)}&format=${format}`;
    a.setAttribute("download", `incident-${r.id}.${format}`);
    reports.append(a, document.createTextNode(" "));
  }
  head.append(reports);
  root.append(head);

  root.append(el("h3", "Affected users over time"));
  root.append(timeline(detail));

  root.append(el("h3", "Lineage paths"));
  if (detail.paths.length === 0) root.append(el("p", "No lineage path is stored for these violations."));
  for (const p of detail.paths) root.append(pathFigure(p));

  root.append(el("h3", "Services and jobs"));
  root.append(
    table(
      "Where the violations happened",
      ["Service", "Job", "Violations"],
      detail.services.map((s) => [s.service, s.job, n(s.violations)]),
    ),
  );
  section(
    root,
    "Shares",
    "No share broke this rule.",
    "Shares that broke the rule, by recipient",
    ["Recipient", "External", "Service", "Violations", "First", "Last"],
    detail.shares.map((s) => [s.recipient, s.external ? "yes" : "no", s.service, n(s.violations), day(s.first), day(s.last)]),
  );
  section(
    root,
    "Alerts",
    "No alert was raised for this rule (no webhook subscription matched).",
    "Alerts by delivery state",
    ["State", "Alerts"],
    detail.alerts.map((a) => [a.state, n(a.alerts)]),
  );
  if (detail.alertList.length > 0) root.append(alertTable(detail.alertList));
}

const time = (iso: string | null) => (iso ? `${clock(iso)}Z` : "—");

/** The latest alerts, each with its delivery attempts: when, the receiver's status, what followed. */
function alertTable(alerts: RuleDetail["alertList"]): HTMLTableElement {
  const t = table(
    `The latest ${alerts.length} alerts and their deliveries`,
    ["Alert", "Subscription", "State", "Service, job and run", "Violations from", "Deliveries"],
    [],
  );
  t.id = "rule-alerts";
  const body = t.tBodies[0] as HTMLTableSectionElement;
  for (const a of alerts) {
    const row = el("tr");
    row.dataset["subscription"] = a.subscription;
    row.dataset["state"] = a.state;
    row.dataset["run"] = a.run;
    const id = el("td");
    id.append(el("code", a.webhookId));
    row.append(id, el("td", a.subscription), el("td", a.state, `state state-${a.state}`), el("td", `${a.service}, ${a.job}, run ${a.run}`));
    row.append(el("td", `${time(a.windowStart)} to ${time(a.windowEnd)}`));
    const cell = el("td");
    if (a.deliveries.length === 0) cell.append(el("span", "not attempted yet"));
    else {
      const list = el("ol", undefined, "deliveries");
      for (const d of a.deliveries) {
        const answer = d.status > 0 ? `HTTP ${d.status}` : "no answer";
        const item = el(
          "li",
          `attempt ${d.attempt} at ${time(d.at)}: ${answer}, ${d.outcome} (${n(d.durationMs)} ms)${d.error ? `: ${d.error}` : ""}`,
        );
        item.dataset["outcome"] = d.outcome;
        list.append(item);
      }
      cell.append(list);
    }
    row.append(cell);
    body.append(row);
  }
  return t;
}

/** Exactly affected users so far beside possibly affected so far: the difference is the gap between the lines. */
function timeline(detail: RuleDetail): HTMLElement {
  const holder = el("div", undefined, "chart");
  holder.id = "rule-chart";
  const last = detail.timeline[detail.timeline.length - 1];
  holder.setAttribute("role", "img");
  holder.setAttribute(
    "aria-label",
    last
      ? `From ${detail.timeline[0]?.day} to ${last.day}: ${n(last.exactSoFar)} users exactly affected so far, ${n(last.possiblySoFar)} possibly affected (field level)`
      : "No affected users",
  );
  if (detail.timeline.length === 0) return holder;
  const xs = detail.timeline.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000);
  queueMicrotask(() => {
    new uPlot(
      {
        width: Math.min(900, holder.clientWidth || 900),
        height: 260,
        series: [
          {},
          { label: "Exactly affected so far", stroke: "#b42318", width: 2 },
          { label: "Possibly affected so far (field level)", stroke: "#475467", width: 2, dash: [6, 4] },
          { label: "Exactly affected that day", stroke: "#f79009", width: 1 },
        ],
        scales: { x: { time: true } },
      },
      [xs, detail.timeline.map((d) => d.exactSoFar), detail.timeline.map((d) => d.possiblySoFar), detail.timeline.map((d) => d.exactDay)],
      holder,
    );
  });
  return holder;
}

const NODE_W = 230;
const NODE_H = 54;

/** One lineage path as a graph laid out by dagre, and the same path as a list for screen readers. */
function pathFigure(p: RulePath): HTMLElement {
  const figure = el("figure", undefined, "path");
  figure.dataset["path"] = p.pathId;
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes: { id: string; title: string; sub: string; kind: "origin" | "hop" | "use" }[] = [];
  p.hops.forEach((h, i) => {
    nodes.push({
      id: `h${i}`,
      title: `${h.dataset}#${h.field}`,
      sub: i === 0 ? `collected by ${h.service}` : `${h.transform ?? "DERIVE"} by ${h.service}`,
      kind: i === 0 ? "origin" : "hop",
    });
  });
  const use = p.use;
  nodes.push({
    id: "use",
    title: `${use.kind} by ${use.service}`,
    sub: use.recipient ? `to ${use.recipient.name}${use.recipient.external ? " (external)" : ""}` : `for ${use.purposes.join(", ")}`,
    kind: "use",
  });
  for (const node of nodes) g.setNode(node.id, { width: NODE_W, height: NODE_H });
  for (let i = 1; i < nodes.length; i++) g.setEdge((nodes[i - 1] as { id: string }).id, (nodes[i] as { id: string }).id);
  dagre.layout(g);
  const size = g.graph() as { width?: number; height?: number };
  const width = Math.ceil(size.width ?? 0);
  const height = Math.ceil(size.height ?? 0);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  root.setAttribute("aria-label", `Lineage path: ${nodes.map((x) => `${x.title} (${x.sub})`).join(", then ")}`);
  const defs = svg("defs", {});
  const marker = svg("marker", {
    id: `arrow-${p.pathId}`,
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    orient: "auto",
  });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#475467" }));
  defs.append(marker);
  root.append(defs);
  g.edges().forEach((e, i) => {
    const points = (g.edge(e) as { points?: { x: number; y: number }[] }).points ?? [];
    const d = points.map((pt, k) => `${k === 0 ? "M" : "L"}${pt.x},${pt.y}`).join(" ");
    const hop = p.hops[i + 1];
    const masked = hop?.masking !== undefined && hop.masking !== "NONE";
    const edge = svg("path", { d, class: `edge${masked ? " masked" : ""}`, "marker-end": `url(#arrow-${p.pathId})` });
    root.append(edge);
    if (masked) {
      const mid = points[Math.floor(points.length / 2)];
      if (mid) {
        const label = svg("text", { x: mid.x, y: mid.y - 6, class: "edge-label", "text-anchor": "middle" });
        label.textContent = hop?.masking ?? "";
        root.append(label);
      }
    }
  });
  for (const node of nodes) {
    const at = g.node(node.id) as unknown as { x: number; y: number };
    const group = svg("g", { class: `node ${node.kind}`, transform: `translate(${at.x - NODE_W / 2},${at.y - NODE_H / 2})` });
    group.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
    const title = svg("text", { x: 10, y: 22, class: "node-title" });
    title.textContent = node.title.length > 34 ? `${node.title.slice(0, 33)}…` : node.title;
    const sub = svg("text", { x: 10, y: 42, class: "node-sub" });
    sub.textContent = node.sub.length > 36 ? `${node.sub.slice(0, 35)}…` : node.sub;
    const tip = svg("title", {});
    tip.textContent = `${node.title}: ${node.sub}`;
    group.append(tip, title, sub);
    root.append(group);
  }
  const caption = el("figcaption", `${n(p.violations)} violations: ${p.category}, collected for ${p.collectedFor.join(", ")}`);
  const list = el("ol", undefined, "path-steps");
  for (const node of nodes) {
    const li = el("li");
    // Each field's dataset opens its page: labels, readers, upstream and downstream.
    if (node.kind !== "use")
      li.append(datasetLink(node.title.slice(0, node.title.lastIndexOf("#")), node.title), document.createTextNode(`: ${node.sub}`));
    else li.append(document.createTextNode(`${node.title}: ${node.sub}`));
    list.append(li);
  }
  // Scrolls sideways when wide: reachable by keyboard.
  const scroller = el("div", undefined, "graph");
  scroller.tabIndex = 0;
  scroller.setAttribute("role", "region");
  scroller.setAttribute("aria-label", `Lineage graph of ${n(p.violations)} violations`);
  scroller.append(root);
  figure.append(caption, scroller, list);
  return figure;
}
