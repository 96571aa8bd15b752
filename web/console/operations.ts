// Operations: what did not go in (dead letters, with their reasons), how far behind Kafka the
// consumer and the OpenLineage journal are, and what did not go out (webhook endpoints, failed
// deliveries).
import type { OperationsView } from "../../services/console/types.ts";
import { clock, el, section } from "./dom.ts";

const n = (v: number) => v.toLocaleString("en-US");

export function renderOperations(root: HTMLElement, ops: OperationsView): void {
  root.replaceChildren();
  root.append(el("p", `${n(ops.deadLetters.total)} dead letter${ops.deadLetters.total === 1 ? "" : "s"} stored.`, "desc"));
  section(
    root,
    "Dead letters by reason",
    "Nothing was refused.",
    "Refused input, by error code and reason (most frequent first)",
    ["Code", "Reason", "Count"],
    ops.deadLetters.byReason.map((r) => [r.code, r.reason, n(r.count)]),
  );
  section(
    root,
    "Latest dead letters",
    "Nothing was refused.",
    "The 20 most recent, newest first (bytes withheld when they may identify a person)",
    ["Received (UTC)", "Source", "Code", "Reason", "Bytes"],
    ops.deadLetters.latest.map((d) => [clock(d.at), d.source, d.code, d.reason, `${n(d.bytes)}${d.redacted ? " (withheld)" : ""}`]),
  );
  if (ops.lag === null)
    root.append(el("h3", "Consumer lag"), el("p", "This serve consumes no Kafka topic (events come over HTTP and from files)."));
  else
    section(
      root,
      "Consumer lag",
      "No batch consumed yet.",
      "Messages not stored yet, per partition: from the next to store to the end of the partition",
      ["Topic", "Partition", "Lag"],
      ops.lag.map((l) => [l.topic, String(l.partition), n(l.lag)]),
    );
  if (ops.openLineage !== null) {
    const waiting = ops.openLineage.notYetStored;
    root.append(
      el("h3", "OpenLineage over HTTP"),
      el(
        "p",
        waiting === 0
          ? "Every RunEvent answered 201 is stored."
          : `${n(waiting)} RunEvent${waiting === 1 ? "" : "s"} answered 201 and not yet stored (in the intake journal; stored in order, in batches).`,
      ),
    );
  }
  if (ops.endpoints === null)
    root.append(el("h3", "Webhook endpoints"), el("p", "No alert subscriptions are configured (LINEAGE_AUDIT_WEBHOOKS)."));
  else
    section(
      root,
      "Webhook endpoints",
      "No subscription.",
      "Alert subscriptions and whether they are delivered to",
      ["Subscription", "Endpoint", "State"],
      ops.endpoints.map((e) => [e.id, e.target, e.enabled ? "enabled" : `disabled: ${e.disabledBy ?? ""}`]),
    );
  section(
    root,
    "Failed deliveries",
    "No delivery failed.",
    "The 20 most recent attempts that did not deliver, newest first",
    ["When (UTC)", "Subscription", "Webhook id", "Attempt", "Status", "Outcome", "Error"],
    ops.failedDeliveries.map((f) => [
      clock(f.at),
      f.subscription,
      f.webhookId,
      String(f.attempt),
      f.status === 0 ? "no answer" : String(f.status),
      f.outcome,
      f.error,
    ]),
  );
}
