// Small DOM helpers shared by the console's pages.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, content?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (content !== undefined) e.textContent = content;
  if (className) e.className = className;
  return e;
}

export function table(caption: string, head: string[], rows: string[][]): HTMLTableElement {
  const t = el("table");
  t.append(el("caption", caption));
  const thead = el("thead");
  const tr = el("tr");
  for (const h of head) {
    const th = el("th", h);
    th.setAttribute("scope", "col");
    tr.append(th);
  }
  thead.append(tr);
  const tbody = el("tbody");
  for (const r of rows) {
    const row = el("tr");
    for (const c of r) row.append(el("td", c));
    tbody.append(row);
  }
  t.append(thead, tbody);
  return t;
}

/** A heading, then a table of the rows, or a sentence saying there are none. */
export function section(root: HTMLElement, heading: string, none: string, caption: string, head: string[], rows: string[][]): void {
  root.append(el("h3", heading), rows.length === 0 ? el("p", none) : table(caption, head, rows));
}

/** A stored time (ISO, UTC) as `YYYY-MM-DD HH:MM:SS`. */
export const clock = (iso: string): string => iso.replace("T", " ").slice(0, 19);

/** Which snapshot of the exact model the exact counts come from, in one sentence. */
export function modelNote(model: { computedAt: string | null; updating: boolean }): HTMLParagraphElement {
  const when = model.computedAt ? `${clock(model.computedAt)} UTC` : null;
  const text = when
    ? `Exact counts from the exact model computed ${when}${model.updating ? "; a newer one is being computed" : ""}. Possibly-affected counts are live.`
    : `No exact model computed yet${model.updating ? ": it is being computed" : ""}; exact counts show 0 until it is. Possibly-affected counts are live.`;
  const p = el("p", text, "desc model-state");
  p.id = "model-state";
  return p;
}

/** A one-field form: a label, an input and a submit button; `onSubmit` gets what was typed. */
export function oneFieldForm(
  spec: { formId: string; inputId: string; label: string; button: string; maxLength: number; type?: string },
  onSubmit: (value: string) => void,
): { form: HTMLFormElement; input: HTMLInputElement } {
  const form = el("form");
  form.id = spec.formId;
  const label = el("label", spec.label);
  label.htmlFor = spec.inputId;
  const input = el("input");
  input.id = spec.inputId;
  input.name = spec.inputId;
  input.maxLength = spec.maxLength;
  if (spec.type) input.type = spec.type;
  const button = el("button", spec.button, "button");
  button.type = "submit";
  form.append(label, input, button);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onSubmit(input.value);
  });
  return { form, input };
}
