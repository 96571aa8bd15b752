import { createHash } from "node:crypto";
import type { OutboxRow, ViolationRow } from "../processor/index.ts";
import type { Subscription } from "./subscriptions.ts";

/**
 * Decides which alerts a batch's violations raise: one per (subscription, rule, job run, time
 * window), however many events and subjects the job touches. Pure; remembers the alerts it
 * decided so a long job raises its alert once (and a replay after a restart decides the same
 * webhook id again, which the outbox keeps once).
 */
export interface AlertPlanner {
  plan(violations: readonly ViolationRow[]): OutboxRow[];
}

export function createAlertPlanner(subscriptions: readonly Subscription[], windowMs: number): AlertPlanner {
  const decided = new Map<string, number>(); // webhook id -> window end
  let lastPrune = 0;
  return {
    plan(violations) {
      const out: OutboxRow[] = [];
      for (const v of violations) {
        const windowStart = Math.floor(v.occurred_at / windowMs) * windowMs;
        for (const s of subscriptions) {
          if (!s.enabled) continue;
          if (v.mode === "shadow" && !s.shadow) continue;
          if (s.rules && !s.rules.includes(v.rule_id)) continue;
          if (s.severities && !s.severities.includes(v.severity as (typeof s.severities)[number])) continue;
          if (s.services && !s.services.includes(v.service)) continue;
          const webhookId = `msg_${createHash("sha256")
            .update([s.id, v.rule_id, v.job_namespace, v.job_name, v.run_id, windowStart].join("\u0000"))
            .digest("hex")
            .slice(0, 32)}`;
          if (decided.has(webhookId)) continue;
          decided.set(webhookId, windowStart + windowMs);
          out.push({
            webhook_id: webhookId,
            subscription_id: s.id,
            rule_id: v.rule_id,
            severity: v.severity,
            mode: v.mode,
            service: v.service,
            job_namespace: v.job_namespace,
            job_name: v.job_name,
            run_id: v.run_id,
            window_start: windowStart,
            window_end: windowStart + windowMs,
            first_violation_id: v.violation_id,
            version: 1,
          });
        }
      }
      // Forget windows long closed (event time), so memory stays bounded.
      if (decided.size > 100_000 && violations.length > 0 && Date.now() - lastPrune > 60_000) {
        lastPrune = Date.now();
        const newest = Math.max(...violations.map((v) => v.occurred_at));
        for (const [id, end] of decided) if (end < newest - 24 * windowMs) decided.delete(id);
      }
      return out;
    },
  };
}
