// The alert webhook's JSON body (docs: README "Alert webhooks"), built in one place for the
// deliverer and for `lineage-audit webhooks test`.

/** 2: `soFar` counts users exactly, per person, with the field-level counts beside it as `possiblyAffected`. */
export const PAYLOAD_VERSION = 2;
/** Bodies larger than this drop lineage paths (first all but one, then all). */
export const MAX_PAYLOAD_BYTES = 20_000;

export interface SoFar {
  /** null while the exact count is pending (`exactPending`): the field-level one is then only under `possiblyAffected`. */
  subjects: number | null;
  records: number | null;
  violatingEvents: number | null;
  /** Whether `subjects` counts people exactly (the exact model) rather than field-level. */
  exact: boolean;
  /**
   * Present, and true, when there is a policy but the exact model was still being brought up to
   * date when the alert went out (the deliverer waits for it at most `exactWaitMs`): `subjects`,
   * `records` and `violatingEvents` are then null, `exact` is false, and the field-level counts
   * are under `possiblyAffected`, as always beside the exact ones, never in their place.
   */
  exactPending?: true;
  possiblyAffected?: { subjects: number; records: number; violatingEvents: number };
  sharedOutside?: { shared: boolean; subjects: number; events: number };
  [more: string]: unknown;
}

export interface AlertPayload {
  type: "lineage_audit.violation";
  version: typeof PAYLOAD_VERSION;
  /** Present, and true, only on `webhooks test` samples. */
  test?: true;
  webhookId: string;
  rule: { id: string; severity: string; mode: string; description: string };
  service: string;
  job: { namespace: string; name: string };
  runId: string;
  purposeUsed: string[];
  collectedFor: string[];
  dataCategories: string[];
  lineagePath: { paths: unknown[]; use: unknown } | null;
  soFar: SoFar;
  window: { start: string; end: string };
  firstViolation: string | null;
  lastViolation: string | null;
  traceId: string | null;
  investigate: string;
}

/** The payload as sent: at most MAX_PAYLOAD_BYTES, dropping lineage paths to get there. */
export function serializePayload(payload: AlertPayload): string {
  const lineage = payload.lineagePath;
  let text = JSON.stringify(payload);
  if (lineage && Buffer.byteLength(text) > MAX_PAYLOAD_BYTES)
    text = JSON.stringify({ ...payload, lineagePath: { ...lineage, paths: lineage.paths.slice(0, 1) } });
  if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES) text = JSON.stringify({ ...payload, lineagePath: null });
  return text;
}

/** What `lineage-audit webhooks test` sends: an alert of the shipped rule's shape, marked `test`, counting nobody. */
export function sampleAlertPayload(webhookId: string, now: number): AlertPayload {
  const at = new Date(now).toISOString();
  const rule = "security-contact-not-for-marketing";
  return {
    type: "lineage_audit.violation",
    version: PAYLOAD_VERSION,
    test: true,
    webhookId,
    rule: { id: rule, severity: "critical", mode: "enforce", description: "A sample alert from lineage-audit webhooks test." },
    service: "partner-audiences",
    job: { namespace: "ads", name: "partner-audiences.match" },
    runId: "sample-run",
    purposeUsed: ["marketing.advertising.third_party.targeted"],
    collectedFor: ["essential.service.security"],
    dataCategories: ["user.contact.phone_number"],
    lineagePath: null,
    soFar: {
      subjects: 0,
      records: 0,
      violatingEvents: 0,
      exact: true,
      possiblyAffected: { subjects: 0, records: 0, violatingEvents: 0 },
      sharedOutside: { shared: false, subjects: 0, events: 0 },
    },
    window: { start: at, end: at },
    firstViolation: null,
    lastViolation: null,
    traceId: null,
    investigate: `lineage-audit affected --rule ${rule}`,
  };
}
