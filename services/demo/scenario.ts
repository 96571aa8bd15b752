// The 2019 case as a synthetic, deterministic event stream: phone numbers and email addresses
// collected for two-factor authentication flow through profile and identity-graph stores into
// hashed matching keys, which the Tailored Audiences and Partner Audiences jobs match against
// advertisers' lists until the fix on 2019-09-17. The generator knows exactly whom it misused:
// that is the ground truth the auditor's answers are checked against.

import { EventKind, Masking, Transform } from "../codec/index.ts";
import type { EmitInput } from "../emitter/index.ts";

export interface ScenarioOptions {
  /** @default 1_000_000 */
  users?: number;
  /** Events per user on average (logins, security checks, profile reads). @default 5 */
  eventsPerUser?: number;
  /** @default 2019 */
  seed?: number;
  /** @default "2019-01-01" */
  start?: string;
  /** @default "2019-10-31" (inclusive) */
  end?: string;
  /** The day the misuse stops. @default "2019-09-17" */
  fixDate?: string;
}

export const defaultScenarioOptions = {
  users: 1_000_000,
  eventsPerUser: 5,
  seed: 2019,
  start: "2019-01-01",
  end: "2019-10-31",
  fixDate: "2019-09-17",
} satisfies Required<ScenarioOptions>;

export const SCENARIO_RULE = "security-contact-not-for-marketing";

/** What the generator planted, to compare with what the auditor finds. */
export interface GroundTruth {
  rule: string;
  /** Distinct users whose 2FA phone or email was matched for advertising. */
  affectedUsers: number;
  /** Distinct (user, category) pairs misused. */
  affectedRecords: number;
  /** Violating USE events. */
  violatingEvents: number;
  firstViolation: string | null;
  lastViolation: string | null;
  categories: string[];
  services: string[];
  externalSharesOfViolatedData: number;
  /** Events generated in all. */
  events: number;
}

const DAY = 86_400_000;
const NS = "warehouse";
type DatasetValue = { namespace: string; name: string; fields: { name: string; categories: string[] }[] };
const datasets = new Map<string, DatasetValue>();
/** Dataset values are shared between events (the emitter encodes them right away). */
const ds = (name: string, fields: [string, string[]][] = []): DatasetValue => {
  const key = `${name}|${fields.map(([n, c]) => `${n}:${c.join(",")}`).join(";")}`;
  let d = datasets.get(key);
  if (!d) {
    d = { namespace: NS, name, fields: fields.map(([n, c]) => ({ name: n, categories: c })) };
    datasets.set(key, d);
  }
  return d;
};
const ref = (name: string, field: string) => ({ namespace: NS, name, field });

const EMAIL = "user.contact.email";
const PHONE = "user.contact.phone_number";
const USERNAME = "user.account.username";
const ADS = "marketing.advertising.third_party.targeted";

/** Deterministic PRNG (mulberry32), so the same seed gives the same events and the same ids. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Raw identifier of user `i` as a service would know it; the emitter pseudonymises it. */
export function rawUserId(i: number): string {
  return `user-${i}`;
}

/** Roughly how many events `generateScenario` yields for these options. */
export function expectedEvents(o: ScenarioOptions = {}): number {
  const users = o.users ?? defaultScenarioOptions.users;
  return Math.round(users * (o.eventsPerUser ?? defaultScenarioOptions.eventsPerUser));
}

/**
 * Yields the scenario's events in time order and fills `truth` as it goes (complete once the
 * generator is exhausted).
 */
export function* generateScenario(options: ScenarioOptions, truth: GroundTruth): Generator<EmitInput> {
  const o = { ...defaultScenarioOptions, ...options };
  const random = rng(o.seed);
  const t0 = Date.parse(`${o.start}T00:00:00Z`);
  const days = Math.round((Date.parse(`${o.end}T00:00:00Z`) - t0) / DAY) + 1;
  const fixDay = Math.round((Date.parse(`${o.fixDate}T00:00:00Z`) - t0) / DAY);
  const n = o.users;
  let counter = 0;
  const seedHex = (o.seed >>> 0).toString(16).padStart(8, "0");
  const id = () => `${seedHex}-0000-4000-8000-${(counter++).toString(16).padStart(12, "0")}`;
  const at = (day: number) => t0 + day * DAY + Math.floor(random() * DAY);

  // Who signs up when (in index order), who enrols which second factor when.
  const signupDay = (i: number) => Math.floor((i * days) / n);
  const phoneDay = new Int16Array(n).fill(-1);
  const emailDay = new Int16Array(n).fill(-1);
  const enrolByDay: number[][] = Array.from({ length: days }, () => []);
  for (let i = 0; i < n; i++) {
    if (random() >= 0.35) continue;
    const d = Math.min(days - 1, signupDay(i) + Math.floor(random() * 40));
    const phone = random() < 0.75;
    const email = !phone || random() < 0.35;
    if (phone) phoneDay[i] = d;
    if (email) emailDay[i] = d;
    enrolByDay[d]?.push(i);
  }
  const enrolledPhone: number[] = [];
  const enrolledEmail: number[] = [];
  const misused = new Uint8Array(n); // bit 1: email misused, bit 2: phone misused
  let violating = 0;
  let firstViolation: number | null = null;
  let lastViolation: number | null = null;

  // Budget the per-user activity so the total is about eventsPerUser * users.
  const fixed = 1 + 0.35 * (0.75 + 0.35 * 0.75 + 0.25);
  const perUserActivity = Math.max(0, o.eventsPerUser - fixed);
  const activityPerDay = (perUserActivity * n) / days;

  const pipelineJobs = (day: number): EmitInput[] => {
    const run = `run-${day}`;
    const time = t0 + day * DAY + 2 * 3_600_000;
    const jobs: EmitInput[] = [
      {
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time,
        service: "profile-sync",
        job: { namespace: "batch", name: "profile-sync.contact-points" },
        runId: run,
        inputs: [ds("security.two_factor")],
        outputs: [ds("profile.contact_points")],
        transform: Transform.copy,
        dataSubject: "customer",
        fieldLineage: [
          {
            output: ref("profile.contact_points", "phone_number"),
            inputs: [ref("security.two_factor", "phone_number")],
            transform: Transform.copy,
          },
          { output: ref("profile.contact_points", "email"), inputs: [ref("security.two_factor", "email")], transform: Transform.copy },
        ],
      },
      {
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time + 600_000,
        service: "identity-graph",
        job: { namespace: "batch", name: "identity-graph.build" },
        runId: run,
        inputs: [ds("accounts.users"), ds("profile.contact_points")],
        outputs: [ds("identity.graph")],
        transform: Transform.join,
        dataSubject: "customer",
        fieldLineage: [
          { output: ref("identity.graph", "email"), inputs: [ref("accounts.users", "email")], transform: Transform.join },
          { output: ref("identity.graph", "security_email"), inputs: [ref("profile.contact_points", "email")], transform: Transform.join },
          {
            output: ref("identity.graph", "security_phone"),
            inputs: [ref("profile.contact_points", "phone_number")],
            transform: Transform.join,
          },
        ],
      },
      {
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time + 1_200_000,
        service: "ads-identity",
        job: { namespace: "batch", name: "ads-identity.consented-keys" },
        runId: run,
        inputs: [ds("identity.graph")],
        outputs: [ds("ads.consented_keys")],
        transform: Transform.hash,
        dataSubject: "customer",
        fieldLineage: [
          { output: ref("ads.consented_keys", "email_sha256"), inputs: [ref("identity.graph", "email")], transform: Transform.hash },
        ],
      },
    ];
    if (day < fixDay) {
      // The bug: security contact points were hashed into the advertising matching keys too.
      jobs.push({
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time + 1_500_000,
        service: "ads-identity",
        job: { namespace: "batch", name: "ads-identity.matching-keys" },
        runId: run,
        inputs: [ds("identity.graph")],
        outputs: [ds("ads.matching_keys")],
        transform: Transform.hash,
        dataSubject: "customer",
        fieldLineage: [
          { output: ref("ads.matching_keys", "email_sha256"), inputs: [ref("identity.graph", "email")], transform: Transform.hash },
          {
            output: ref("ads.matching_keys", "security_email_sha256"),
            inputs: [ref("identity.graph", "security_email")],
            transform: Transform.hash,
          },
          {
            output: ref("ads.matching_keys", "phone_sha256"),
            inputs: [ref("identity.graph", "security_phone")],
            transform: Transform.hash,
          },
        ],
      });
    }
    if (day % 7 === 6) {
      jobs.push(
        {
          kind: EventKind.derive,
          eventId: id(),
          occurredAt: time + 1_800_000,
          service: "ads-reporting",
          job: { namespace: "batch", name: "ads-reporting.campaign-insights" },
          runId: run,
          inputs: [ds("ads.consented_keys"), ds(day < fixDay ? "ads.matching_keys" : "ads.consented_keys")],
          outputs: [ds("ads.campaign_reports")],
          transform: Transform.aggregate,
          masking: Masking.anonymised,
          dataSubject: "customer",
        },
        {
          kind: EventKind.share,
          eventId: id(),
          occurredAt: time + 2_400_000,
          service: "ads-reporting",
          job: { namespace: "batch", name: "ads-reporting.deliver" },
          runId: run,
          inputs: [ds("ads.campaign_reports")],
          purposes: ["analytics.reporting.campaign_insights"],
          dataSubject: "customer",
          recipient: { name: "advertiser-reporting-api", external: true },
        },
        {
          kind: EventKind.share,
          eventId: id(),
          occurredAt: time + 3_000_000,
          service: "identity-graph",
          job: { namespace: "batch", name: "identity-graph.trust-and-safety-export" },
          runId: run,
          inputs: [ds("identity.graph")],
          purposes: ["essential.fraud_detection"],
          dataSubject: "customer",
          recipient: { name: "trust-and-safety", external: false },
        },
      );
    }
    return jobs;
  };

  /** Batched USE events of one matching job over `pool` (sampled), recording misuse when `misuseBit` is set. */
  function* matching(
    day: number,
    service: string,
    job: string,
    dataset: string,
    field: string,
    pool: readonly number[] | number,
    count: number,
    misuseBit: number,
  ): Generator<EmitInput> {
    const poolSize = typeof pool === "number" ? pool : pool.length;
    if (poolSize === 0 || count <= 0) return;
    const run = `run-${day}`;
    for (let start = 0; start < count; start += 500) {
      const size = Math.min(500, count - start);
      const chosen = new Set<number>();
      for (let k = 0; k < size; k++) {
        const pick = Math.floor(random() * poolSize);
        chosen.add(typeof pool === "number" ? pick : (pool[pick] as number));
      }
      const time = t0 + day * DAY + 14 * 3_600_000 + start * 1000;
      if (misuseBit) {
        for (const u of chosen) misused[u] = (misused[u] as number) | misuseBit;
        violating++;
        firstViolation ??= time;
        lastViolation = time;
      }
      yield {
        kind: EventKind.use,
        eventId: id(),
        occurredAt: time,
        service,
        job: { namespace: "ads", name: job },
        runId: run,
        inputs: [ds(dataset, [[field, []]])],
        purposes: [ADS],
        dataSubject: "customer",
        subjects: [...chosen].map(rawUserId),
      };
    }
  }

  let nextSignup = 0;
  for (let day = 0; day < days; day++) {
    yield* pipelineJobs(day);
    // Sign-ups collect the account email, for running the service and (with consent) advertising.
    for (; nextSignup < n && signupDay(nextSignup) === day; nextSignup++) {
      yield {
        kind: EventKind.collect,
        eventId: id(),
        occurredAt: at(day),
        service: "accounts",
        job: { namespace: "web", name: "signup" },
        runId: `signup-${nextSignup}`,
        outputs: [
          ds("accounts.users", [
            ["email", [EMAIL]],
            ["handle", [USERNAME]],
          ]),
        ],
        purposes: ["essential.service", "marketing.advertising"],
        dataSubject: "customer",
        subjects: [rawUserId(nextSignup)],
      };
    }
    // Two-factor enrolment collects a phone number and/or an email for account security only.
    for (const u of enrolByDay[day] ?? []) {
      for (const [field, category, dayOf, list] of [
        ["phone_number", PHONE, phoneDay, enrolledPhone],
        ["email", EMAIL, emailDay, enrolledEmail],
      ] as const) {
        if (dayOf[u] !== day) continue;
        list.push(u);
        yield {
          kind: EventKind.collect,
          eventId: id(),
          occurredAt: at(day),
          service: "auth-service",
          job: { namespace: "web", name: "2fa-enrolment" },
          runId: `2fa-${u}`,
          outputs: [ds("security.two_factor", [[field, [category]]])],
          purposes: ["essential.service.security", "essential.service.authentication"],
          dataSubject: "customer",
          subjects: [rawUserId(u)],
        };
      }
    }
    // Everyday legitimate activity: logins with a second factor, security alerts, profile reads.
    const signedUp = Math.min(n, nextSignup);
    const activity = Math.round(activityPerDay * (0.5 + random()));
    for (let k = 0; k < activity && signedUp > 0; k++) {
      const u = Math.floor(random() * signedUp);
      const r = random();
      const twoFactor = phoneDay[u] !== -1 && (phoneDay[u] as number) <= day;
      const base = { eventId: id(), occurredAt: at(day), dataSubject: "customer", subjects: [rawUserId(u)] };
      if (r < 0.6 && twoFactor) {
        yield {
          ...base,
          kind: EventKind.use,
          service: "login-service",
          job: { namespace: "web", name: "login.sms-code" },
          runId: `login-${day}`,
          inputs: [ds("security.two_factor", [["phone_number", []]])],
          purposes: ["essential.service.authentication"],
        };
      } else if (r < 0.6) {
        yield {
          ...base,
          kind: EventKind.use,
          service: "login-service",
          job: { namespace: "web", name: "login.password" },
          runId: `login-${day}`,
          inputs: [ds("accounts.users", [["email", []]])],
          purposes: ["essential.service.authentication"],
        };
      } else if (r < 0.7) {
        yield {
          ...base,
          kind: EventKind.use,
          service: "security-service",
          job: { namespace: "web", name: "new-device-alert" },
          runId: `alert-${day}`,
          inputs: [
            ds("profile.contact_points", [
              ["email", []],
              ["phone_number", []],
            ]),
          ],
          purposes: ["essential.service.security"],
        };
      } else {
        yield {
          ...base,
          kind: EventKind.use,
          service: "timeline",
          job: { namespace: "web", name: "profile.render" },
          runId: `timeline-${day}`,
          inputs: [ds("accounts.users", [["handle", []]])],
          purposes: ["essential.service"],
        };
      }
    }
    // Advertising: advertisers' lists matched every day. Consented keys are fine; the
    // security-derived keys are the misuse, until the fix.
    const scale = n / 1_000_000;
    yield* matching(
      day,
      "tailored-audiences",
      "tailored-audiences.match",
      "ads.consented_keys",
      "email_sha256",
      signedUp,
      Math.round(3000 * scale),
      0,
    );
    yield* matching(
      day,
      "partner-audiences",
      "partner-audiences.match",
      "ads.consented_keys",
      "email_sha256",
      signedUp,
      Math.round(2000 * scale),
      0,
    );
    if (day < fixDay) {
      yield* matching(
        day,
        "tailored-audiences",
        "tailored-audiences.match",
        "ads.matching_keys",
        "security_email_sha256",
        enrolledEmail,
        Math.round(700 * scale),
        1,
      );
      yield* matching(
        day,
        "partner-audiences",
        "partner-audiences.match",
        "ads.matching_keys",
        "phone_sha256",
        enrolledPhone,
        Math.round(1000 * scale),
        2,
      );
    }
    if (day === fixDay) {
      yield {
        kind: EventKind.delete,
        eventId: id(),
        occurredAt: t0 + day * DAY + 10 * 3_600_000,
        service: "ads-identity",
        job: { namespace: "batch", name: "ads-identity.purge-security-keys" },
        runId: "fix-2019-09-17",
        inputs: [
          ds("ads.matching_keys", [
            ["security_email_sha256", []],
            ["phone_sha256", []],
          ]),
        ],
        dataSubject: "customer",
      };
    }
  }

  let users = 0;
  let records = 0;
  for (let i = 0; i < n; i++) {
    const m = misused[i] as number;
    if (m === 0) continue;
    users++;
    records += (m & 1) + ((m >> 1) & 1);
  }
  Object.assign(truth, {
    rule: SCENARIO_RULE,
    affectedUsers: users,
    affectedRecords: records,
    violatingEvents: violating,
    firstViolation: firstViolation === null ? null : new Date(firstViolation).toISOString(),
    lastViolation: lastViolation === null ? null : new Date(lastViolation).toISOString(),
    categories: [EMAIL, PHONE].sort(),
    services: ["partner-audiences", "tailored-audiences"],
    externalSharesOfViolatedData: 0,
    events: counter,
  } satisfies GroundTruth);
}

export function emptyGroundTruth(): GroundTruth {
  return {
    rule: SCENARIO_RULE,
    affectedUsers: 0,
    affectedRecords: 0,
    violatingEvents: 0,
    firstViolation: null,
    lastViolation: null,
    categories: [],
    services: [],
    externalSharesOfViolatedData: 0,
    events: 0,
  };
}
