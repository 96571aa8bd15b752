// For refill.test.ts: writes violations (eight people each) into a chDB store until it is killed.
// argv: <data path> <round> (each round's ids and people are its own).
import { openStore, Table } from "../../services/store/index.ts";

const [path, round] = process.argv.slice(2) as [string, string];
const store = await openStore({ path, database: "killed" });
await store.migrate();
process.stdout.write("writing\n");
for (let batch = 0; ; batch++) {
  const base = (Number(round) * 10_000 + batch) * 2_000;
  const rows = Array.from({ length: 2_000 }, (_, i) => ({
    violation_id: `v${base + i}:purpose-limitation`,
    event_id: `v${base + i}`,
    rule_id: "purpose-limitation",
    basis: "purpose-limitation",
    severity: "high",
    mode: "enforce",
    kind: "USE",
    occurred_at: Date.UTC(2019, 5, 1) + (base + i) * 1000,
    service: "partner-audiences",
    datasets: ["warehouse/security.two_factor"],
    purposes: ["marketing.advertising.third_party.targeted"],
    categories: ["user.contact.phone_number", "user.contact.email"],
    subjects: Array.from({ length: 8 }, (_, k) => `s${(base + i) * 8 + k}`),
    data_subject: "customer",
    reason: "killed mid-write",
  }));
  await store.insert(Table.violations, rows);
}
