// A person's history (an access request): the identifier is sent in a POST body, pseudonymised in
// the server, and never kept in the page's address, the browser's history, or anything stored.
import type { PersonView } from "../../services/console/types.ts";
import { el, oneFieldForm } from "./dom.ts";

const stored = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);

export function renderPersonForm(root: HTMLElement, csrf: string): void {
  root.replaceChildren();
  const out = el("div");
  out.id = "person";
  out.setAttribute("aria-live", "polite");
  const { form, input } = oneFieldForm(
    {
      formId: "person-form",
      inputId: "identifier",
      label: "Identifier of the person (e-mail, phone number or user id)",
      button: "Look up",
      maxLength: 320,
    },
    (identifier) => void lookUp(identifier, csrf, out),
  );
  form.setAttribute("autocomplete", "off");
  input.required = true;
  input.setAttribute("autocomplete", "off");
  form.append(el("p", "It is pseudonymised in the server with your organisation's key; it is not stored or logged.", "desc"));
  root.append(form, out);
}

async function lookUp(identifier: string, csrf: string, out: HTMLElement): Promise<void> {
  out.replaceChildren(el("p", "Looking up…"));
  const res = await fetch("/api/console/person", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf, accept: "application/json" },
    body: JSON.stringify({ identifier }),
  });
  if (!res.ok) {
    const { error } = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as { error: string };
    out.replaceChildren(el("p", `Cannot look this person up: ${error}.`, "empty"));
    return;
  }
  renderPerson(out, (await res.json()) as PersonView);
}

function renderPerson(out: HTMLElement, p: PersonView): void {
  out.replaceChildren();
  if (p.events.length === 0) {
    out.append(el("p", `Nothing stored concerns this person (pseudonym ${p.subject}).`, "empty"));
    return;
  }
  out.append(el("h3", `History of pseudonym ${p.subject}: ${p.events.length} events`));
  const t = el("table");
  t.id = "person-history";
  t.append(el("caption", "Everything stored that touched this person's data, oldest first"));
  const head = el("tr");
  for (const h of ["When (UTC)", "What", "Service (job)", "Data", "Purposes", "Violation"]) {
    const th = el("th", h);
    th.setAttribute("scope", "col");
    head.append(th);
  }
  const thead = el("thead");
  thead.append(head);
  const body = el("tbody");
  for (const e of p.events) {
    const row = el("tr");
    row.append(
      el("td", e.occurredAt, "date"),
      el("td", `${e.kind}${e.recipient ? ` to ${e.recipient}` : ""}`),
      el("td", `${e.service} (${e.job})`),
      el("td", (e.fields.length > 0 ? e.fields : e.datasets).join(", ")),
      el("td", e.purposes.join(", ") || "—"),
      el("td", e.violations.join(", ") || "—", e.violations.length > 0 ? "now" : ""),
    );
    body.append(row);
  }
  t.append(thead, body);
  out.append(t);
  if (p.violations.length === 0) return;
  out.append(el("h3", "Violations, and the evidence for this person"));
  const list = el("ol", undefined, "evidence");
  list.id = "person-violations";
  for (const v of p.violations) {
    const item = el("li");
    const verdict = v.exact ? "exactly affected" : `possibly affected only (${v.reason ?? "no reason recorded"})`;
    item.append(
      el(
        "p",
        `${stored(v.occurredAt)}: ${v.kind} ${v.eventId}${v.wholeTable ? " (names nobody: a whole-table use)" : ""}, rule ${v.ruleId}: ${verdict}`,
        v.exact ? "exact-verdict" : "",
      ),
    );
    const chain = el("ul");
    for (const e of v.evidence) {
      chain.append(
        el(
          "li",
          e.collected
            ? `collected ${e.collected.occurredAt} at ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by ${e.collected.service} (${e.collected.job}), event ${e.collected.eventId}`
            : `declared at ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by a collection naming nobody`,
        ),
      );
      for (const h of e.hops)
        chain.append(
          el("li", `⇒ ${h.transform ?? h.kind} → ${h.dataset}#${h.field} by ${h.service} (${h.job}), from ${stored(h.occurredAt)}`),
        );
    }
    item.append(chain);
    list.append(item);
  }
  out.append(list);
}
