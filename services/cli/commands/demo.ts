import { defaultScenarioOptions, expectedEvents, runDemo, SCENARIO_RULE } from "../../demo/index.ts";
import { openStore } from "../../store/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, out, positiveInt, text, UsageError } from "../args.ts";
import { hmacKeyOrEphemeral, openAuditor } from "../context.ts";
import { formatSummary, storedTime } from "../format.ts";
import { createProgress, refreshProgress } from "../progress.ts";

const DATABASE = "demo";

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    { users: { type: "string" }, "events-per-user": { type: "string" }, json: { type: "boolean" }, quiet: { type: "boolean" } },
    false,
  );
  const users = positiveInt(text(values, "users"), "--users", defaultScenarioOptions.users);
  const eventsPerUser = positiveInt(text(values, "events-per-user"), "--events-per-user", defaultScenarioOptions.eventsPerUser);
  if (eventsPerUser < 2) throw new UsageError("--events-per-user must be at least 2 (sign-up, enrolment and matching need them)");
  const json = values.json === true;
  const quiet = values.quiet === true || json;
  // A fresh demo database each run, so the answers are this run's alone.
  {
    const store = await openStore({ ...config.store, database: DATABASE });
    try {
      await store.command(`DROP DATABASE IF EXISTS ${DATABASE} SYNC`);
    } finally {
      await store.close();
    }
  }
  const ctx = await openAuditor(config, { database: DATABASE });
  try {
    const total = expectedEvents({ users, eventsPerUser });
    if (!quiet) {
      process.stderr.write(
        `lineage-audit demo: the 2019 two-factor contact misuse, ${users.toLocaleString("en-US")} users, ~${total.toLocaleString("en-US")} events, January to October 2019\n`,
      );
      process.stderr.write(`store: ${ctx.store.location} (database ${DATABASE}); rules: ${ctx.policy.source}\n`);
    }
    const progress = createProgress("events", total, process.stderr, json);
    const model = refreshProgress(json);
    let streamed = false;
    const result = await runDemo(
      { ...ctx, hmacKey: hmacKeyOrEphemeral(config) },
      { users, eventsPerUser },
      (done) => progress.update(done),
      (phase, done, all) => {
        if (!streamed) progress.finish(); // the events are all in: the model's own progress follows
        streamed = true;
        model.onProgress(phase, done, all);
      },
    );
    if (!streamed) progress.finish();
    model.finish();
    progress.finish();
    const agrees = Object.values(result.agrees).every(Boolean);
    if (json) {
      out(
        JSON.stringify(
          {
            rule: SCENARIO_RULE,
            answers: result.summary,
            groundTruth: result.groundTruth,
            agrees: result.agrees,
            events: result.events,
            elapsedMs: Math.round(result.elapsedMs),
            eventsPerSecond: result.eventsPerSecond,
          },
          null,
          2,
        ),
      );
    } else {
      const rule = ctx.policy.rules.find((r) => r.id === SCENARIO_RULE);
      out("");
      if (rule) out(`${rule.description}`);
      out(
        formatSummary(result.summary, {
          exact: {
            users: result.groundTruth.exact.users,
            records: result.groundTruth.exact.records,
            events: result.groundTruth.exact.violatingEvents,
          },
          fieldLevel: {
            users: result.groundTruth.affectedUsers,
            records: result.groundTruth.affectedRecords,
            events: result.groundTruth.violatingEvents,
          },
        }),
      );
      const x = result.summary.exact;
      const both = x.fieldLevel.users - x.possiblyNotExactly.users;
      const n = (v: number) => v.toLocaleString("en-US");
      out(
        `Exactly affected: ${n(x.exact.users)} users. The field-level reading names ${n(x.fieldLevel.users)}: ${n(x.possiblyNotExactly.users)} of them were not exactly affected, and ${n(x.exact.users - both)} exactly affected users were named by no use (whole-table exports).`,
      );
      out("");
      out(
        `The misuse stopped after the fix of ${defaultScenarioOptions.fixDate}: last exact violation ${storedTime(x.exact.last) ?? "none"} UTC.`,
      );
      out(
        `Processed ${n(result.events)} events in ${(result.elapsedMs / 1000).toFixed(1)} s (${n(result.eventsPerSecond)} events/s); the exact per-person model took ${(result.summary.provenance.refreshedMs / 1000).toFixed(1)} s more.`,
      );
      out(
        `Ask more: lineage-audit affected --rule ${SCENARIO_RULE} --category user.contact.phone_number   (with LINEAGE_AUDIT_DATABASE=demo)`,
      );
      out(
        `          LINEAGE_AUDIT_DATABASE=demo lineage-audit sql "SELECT service, uniqExact(subject_id) FROM violation_subjects_v1 GROUP BY service"`,
      );
    }
    if (!agrees) {
      const differ = Object.entries(result.agrees)
        .filter(([, ok]) => !ok)
        .map(([k]) => k);
      process.stderr.write(`lineage-audit: the store's answers differ from the planted ground truth: ${differ.join(", ")}\n`);
      return 1;
    }
    return 0;
  } finally {
    await ctx.close();
  }
}
