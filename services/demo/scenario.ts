// The 2019 case as a synthetic, deterministic event stream, in its real shape: the fields the
// advertising jobs match against mix contact points given at sign-up (some with advertising
// consent) with phone numbers and email addresses given for two-factor authentication. A nightly
// batch copies both origins into the same profile, identity-graph and hashed matching-key fields.
// People enrol in two-factor throughout the year, some after they were first matched; some delete
// their number from the two-factor store only (the copies survive), some everywhere. Tailored and
// Partner Audiences match advertisers' lists (naming the people found) and a weekly whole-table
// export of the matching keys goes to an outside partner, until the fix on 2019-09-17.
//
// The generator knows exactly whom it misused, in two readings. The field-level one (what the live
// check counts): everyone a flagged use names. The exact one (docs/rules.md, "Exact affected
// users"): only people whose own two-factor data was in the field read at the time of the use. It
// keeps the exact truth by its own bookkeeping of each person's timeline, not through
// services/provenance.

import { EventKind, Masking, Transform } from "../codec/index.ts";
import type { EmitInput } from "../emitter/index.ts";

export interface ScenarioOptions {
  /** @default 1_000_000 */
  users?: number;
  /** Events per user on average (sign-up, enrolment, logins, security checks, profile reads). @default 5 */
  eventsPerUser?: number;
  /** @default 2019 */
  seed?: number;
  /** @default "2019-01-01" */
  start?: string;
  /** @default "2019-10-31" (inclusive) */
  end?: string;
  /** The day the misuse stops. @default "2019-09-17" */
  fixDate?: string;
  /**
   * How many advertisers' list entries are matched per day, per million users, relative to the
   * default (3,000 + 2,000 consented, 700 email and 1,000 phone on the mixed keys). @default 1
   */
  matchingScale?: number;
}

export const defaultScenarioOptions = {
  users: 1_000_000,
  eventsPerUser: 5,
  seed: 2019,
  start: "2019-01-01",
  end: "2019-10-31",
  fixDate: "2019-09-17",
  matchingScale: 1,
} satisfies Required<ScenarioOptions>;

export const SCENARIO_RULE = "security-contact-not-for-marketing";

/** Shares to external recipients that broke the rule. */
export interface SharedOutside {
  shared: boolean;
  /** Distinct subjects of those shares (at field level: named by them; a whole-table export names nobody). */
  subjects: number;
  /** Such shares. */
  events: number;
}

/** The exact reading: only people whose own two-factor data was in the field read at the use's time. */
export interface ExactTruth {
  /** Distinct users whose own two-factor phone or email was held in a field a use for marketing read. */
  users: number;
  /** Distinct (user, category) pairs of such data. */
  records: number;
  /** Uses and shares that affected at least one user exactly. */
  violatingEvents: number;
  firstViolation: string | null;
  lastViolation: string | null;
  /** External shares that affected at least one user exactly (the whole-table exports). */
  sharedOutside: SharedOutside;
  /** (Use or share, user) pairs where the user was affected exactly: the per-use detail behind `users`. */
  subjectUses: number;
}

/** What the generator planted, to compare with what the auditor finds. */
export interface GroundTruth {
  rule: string;
  /** Field level: distinct users named by a flagged advertising match (a use of a field holding 2FA contact data). */
  affectedUsers: number;
  /** Field level: distinct (user, category) pairs, each named user with the categories the check flagged. */
  affectedRecords: number;
  /** Field level: flagged USE and SHARE events (matches and whole-table exports). */
  violatingEvents: number;
  /** Field level: first and last flagged event. */
  firstViolation: string | null;
  lastViolation: string | null;
  categories: string[];
  services: string[];
  /** External shares carrying data the rule's violations involve (the whole-table exports). */
  externalSharesOfViolatedData: number;
  /** Field level: external shares flagged (subjects: named by them, so 0 for whole-table exports). */
  sharedOutside: SharedOutside;
  /** The exact reading, by each person's own timeline. */
  exact: ExactTruth;
  /** Events generated in all. */
  events: number;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
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
const SIGNUP_PURPOSES = ["essential.service"];
const SIGNUP_PURPOSES_CONSENTED = ["essential.service", "marketing.advertising"];
const SECURITY_PURPOSES = ["essential.service.security", "essential.service.authentication"];

// Per-user flags (Uint8Array).
const SIGNUP_EMAIL = 1;
const SIGNUP_PHONE = 2;
const CONSENT = 4;
const TFA_EMAIL = 8;
const TFA_PHONE = 16;
// Categories as bits (records).
const EMAIL_BIT = 1;
const PHONE_BIT = 2;
// How a user deletes the two-factor phone number.
const DELETE_NONE = 0;
const DELETE_2FA_ONLY = 1;
const DELETE_EVERYWHERE = 2;

/** Where a two-factor phone number is held: the 2FA store and every field the pipeline copies it to. */
const PHONE_FIELDS: [string, string][] = [
  ["security.two_factor", "phone_number"],
  ["profile.contact_points", "phone_number"],
  ["identity.graph", "phone"],
  ["ads.matching_keys", "phone_sha256"],
];

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

/** A growing list of user indices (typed, for a million users). */
class Pool {
  readonly items: Int32Array;
  size = 0;
  constructor(capacity: number) {
    this.items = new Int32Array(capacity);
  }
  push(u: number): void {
    this.items[this.size++] = u;
  }
}

/**
 * Yields the scenario's events in time order (day by day) and fills `truth` as it goes (complete
 * once the generator is exhausted).
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

  // The plan, per user: sign-up contact points and consent, when (and what) they enrol in
  // two-factor, whether and when they delete the two-factor number, and where.
  const signupDay = (i: number) => Math.floor((i * days) / n);
  const flags = new Uint8Array(n);
  const enrolAt = new Float64Array(n).fill(Number.NaN);
  const deleteKind = new Uint8Array(n);
  const deleteAt = new Float64Array(n).fill(Number.NaN);
  const enrolByDay: number[][] = Array.from({ length: days }, () => []);
  const deleteByDay: number[][] = Array.from({ length: days }, () => []);
  const enrolled = new Pool(n);
  let planned = n; // sign-ups
  for (let i = 0; i < n; i++) {
    const phone = random() < 0.6;
    const email = !phone || random() < 0.85;
    let f = (phone ? SIGNUP_PHONE : 0) | (email ? SIGNUP_EMAIL : 0) | (random() < 0.4 ? CONSENT : 0);
    if (random() < 0.35) {
      // Enrolment throughout the year, often months after sign-up (within half the period).
      const d = signupDay(i) + 1 + Math.floor(random() * (days >> 1));
      const tfaPhone = random() < 0.75;
      const tfaEmail = !tfaPhone || random() < 0.35;
      if (d < days) {
        f |= (tfaPhone ? TFA_PHONE : 0) | (tfaEmail ? TFA_EMAIL : 0);
        enrolAt[i] = at(d);
        enrolByDay[d]?.push(i);
        enrolled.push(i);
        planned += (tfaPhone ? 1 : 0) + (tfaEmail ? 1 : 0);
        if (tfaPhone) {
          const r = random();
          const kind = r < 0.08 ? DELETE_2FA_ONLY : r < 0.14 ? DELETE_EVERYWHERE : DELETE_NONE;
          const dd = d + 1 + Math.floor(random() * days * 0.4);
          if (kind !== DELETE_NONE && dd < days) {
            deleteKind[i] = kind;
            deleteAt[i] = at(dd);
            deleteByDay[dd]?.push(i);
            planned++;
          }
        }
      }
    }
    flags[i] = f;
  }

  // The pipeline into the matching keys stands from its first run (the chain's last hop, day 0);
  // the purge on the fix day ends every holding there.
  const matchingKeysFrom = fixDay > 0 ? t0 + 2 * HOUR + 1_500_000 : Number.POSITIVE_INFINITY;
  const purgeAt = t0 + fixDay * DAY + 10 * HOUR;
  /** Whether user `u`'s own two-factor data of category `bit` is held in the matching keys at `t`. */
  const held = (u: number, bit: number, t: number): boolean => {
    const f = flags[u] as number;
    if ((f & (bit === PHONE_BIT ? TFA_PHONE : TFA_EMAIL)) === 0) return false;
    // A use at t sees collections at t; a deletion at t takes effect after the uses at t.
    if (Math.max(enrolAt[u] as number, matchingKeysFrom) > t || t > purgeAt) return false;
    return !(bit === PHONE_BIT && deleteKind[u] === DELETE_EVERYWHERE && (deleteAt[u] as number) < t);
  };

  // Contact points in the matching-key fields, whatever their origin: what the matching jobs find.
  const phonePool = new Pool(n);
  const emailPool = new Pool(n);
  const consentedEmailPool = new Pool(n);
  let twoFactorPhoneSeen = false;
  let twoFactorEmailSeen = false;

  // Field level: every subject a flagged use names.
  const misused = new Uint8Array(n); // category bits
  let violating = 0;
  let firstViolation: number | null = null;
  let lastViolation: number | null = null;
  let exports = 0;
  // Exact: per subject, the categories of their own 2FA data held where it was used.
  const exactly = new Uint8Array(n);
  const sharedExactly = new Uint8Array(n);
  let exactViolating = 0;
  let exactFirst: number | null = null;
  let exactLast: number | null = null;
  let exactExports = 0;
  let subjectUses = 0;
  const flagged = (time: number) => {
    violating++;
    firstViolation = firstViolation === null ? time : Math.min(firstViolation, time);
    lastViolation = lastViolation === null ? time : Math.max(lastViolation, time);
  };
  const exactlyFlagged = (time: number) => {
    exactViolating++;
    exactFirst = exactFirst === null ? time : Math.min(exactFirst, time);
    exactLast = exactLast === null ? time : Math.max(exactLast, time);
  };

  // Budget the everyday activity so the total is about eventsPerUser * users.
  const activityPerDay = Math.max(0, o.eventsPerUser * n - planned) / days;

  const pipelineJobs = (day: number): EmitInput[] => {
    const run = `run-${day}`;
    const time = t0 + day * DAY + 2 * HOUR;
    const jobs: EmitInput[] = [
      {
        // Sign-up and two-factor contact points end up side by side in the same profile fields.
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time,
        service: "profile-sync",
        job: { namespace: "batch", name: "profile-sync.contact-points" },
        runId: run,
        inputs: [ds("accounts.users"), ds("security.two_factor")],
        outputs: [ds("profile.contact_points")],
        transform: Transform.copy,
        dataSubject: "customer",
        fieldLineage: [
          {
            output: ref("profile.contact_points", "phone_number"),
            inputs: [ref("accounts.users", "phone_number"), ref("security.two_factor", "phone_number")],
            transform: Transform.copy,
          },
          {
            output: ref("profile.contact_points", "email"),
            inputs: [ref("accounts.users", "email"), ref("security.two_factor", "email")],
            transform: Transform.copy,
          },
        ],
      },
      {
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time + 600_000,
        service: "identity-graph",
        job: { namespace: "batch", name: "identity-graph.build" },
        runId: run,
        inputs: [ds("profile.contact_points")],
        outputs: [ds("identity.graph")],
        transform: Transform.join,
        dataSubject: "customer",
        fieldLineage: [
          { output: ref("identity.graph", "email"), inputs: [ref("profile.contact_points", "email")], transform: Transform.join },
          { output: ref("identity.graph", "phone"), inputs: [ref("profile.contact_points", "phone_number")], transform: Transform.join },
        ],
      },
      {
        // Keys of people who consented to advertising at sign-up, from the consent records only.
        kind: EventKind.derive,
        eventId: id(),
        occurredAt: time + 1_200_000,
        service: "ads-identity",
        job: { namespace: "batch", name: "ads-identity.consented-keys" },
        runId: run,
        inputs: [ds("accounts.ad_consents")],
        outputs: [ds("ads.consented_keys")],
        transform: Transform.hash,
        dataSubject: "customer",
        fieldLineage: [
          { output: ref("ads.consented_keys", "email_sha256"), inputs: [ref("accounts.ad_consents", "email")], transform: Transform.hash },
          {
            output: ref("ads.consented_keys", "phone_sha256"),
            inputs: [ref("accounts.ad_consents", "phone_number")],
            transform: Transform.hash,
          },
        ],
      },
    ];
    if (day < fixDay) {
      // The bug: every contact point in the identity graph, two-factor ones included, was hashed
      // into the advertising matching keys.
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
          { output: ref("ads.matching_keys", "phone_sha256"), inputs: [ref("identity.graph", "phone")], transform: Transform.hash },
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
      if (day < fixDay && (twoFactorPhoneSeen || twoFactorEmailSeen)) {
        // The whole matching-key table, naming nobody, to a measurement partner every week.
        const t = time + 3_300_000;
        flagged(t);
        exports++;
        let any = false;
        for (let k = 0; k < enrolled.size; k++) {
          const u = enrolled.items[k] as number;
          const bits = (held(u, PHONE_BIT, t) ? PHONE_BIT : 0) | (held(u, EMAIL_BIT, t) ? EMAIL_BIT : 0);
          if (bits === 0) continue;
          any = true;
          subjectUses++;
          exactly[u] = (exactly[u] as number) | bits;
          sharedExactly[u] = 1;
        }
        if (any) {
          exactlyFlagged(t);
          exactExports++;
        }
        jobs.push({
          kind: EventKind.share,
          eventId: id(),
          occurredAt: t,
          service: "partner-audiences",
          job: { namespace: "batch", name: "partner-audiences.weekly-export" },
          runId: run,
          inputs: [
            ds("ads.matching_keys", [
              ["email_sha256", []],
              ["phone_sha256", []],
            ]),
          ],
          purposes: [ADS],
          dataSubject: "customer",
          recipient: { name: "measurement-partner", external: true },
        });
      }
    }
    return jobs;
  };

  /** Batched USE events of one matching job over `pool` (sampled); `bit` marks a match on the mixed keys (the misuse). */
  function* matching(day: number, service: string, job: string, dataset: string, field: string, pool: Pool, count: number, bit: number) {
    if (pool.size === 0 || count <= 0) return;
    const run = `run-${day}`;
    for (let start = 0; start < count; start += 500) {
      const size = Math.min(500, count - start);
      const chosen = new Set<number>();
      for (let k = 0; k < size; k++) chosen.add(pool.items[Math.floor(random() * pool.size)] as number);
      const time = t0 + day * DAY + 14 * HOUR + start * 1000;
      if (bit) {
        flagged(time);
        let any = false;
        for (const u of chosen) {
          misused[u] = (misused[u] as number) | bit;
          if (held(u, bit, time)) {
            exactly[u] = (exactly[u] as number) | bit;
            any = true;
            subjectUses++;
          }
        }
        if (any) exactlyFlagged(time);
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
      } satisfies EmitInput;
    }
  }

  let nextSignup = 0;
  const perMillion = (x: number) => Math.round((x * o.matchingScale * n) / 1_000_000);
  for (let day = 0; day < days; day++) {
    yield* pipelineJobs(day);
    // Sign-ups collect a phone number and/or an email address to run the service; with
    // advertising consent also for advertising, recorded in the consent table too.
    for (; nextSignup < n && signupDay(nextSignup) === day; nextSignup++) {
      const u = nextSignup;
      const f = flags[u] as number;
      const fields: [string, string[]][] = [];
      if (f & SIGNUP_EMAIL) fields.push(["email", [EMAIL]]);
      if (f & SIGNUP_PHONE) fields.push(["phone_number", [PHONE]]);
      const consented = (f & CONSENT) !== 0;
      yield {
        kind: EventKind.collect,
        eventId: id(),
        occurredAt: at(day),
        service: "accounts",
        job: { namespace: "web", name: "signup" },
        runId: `signup-${u}`,
        outputs: consented
          ? [ds("accounts.users", [...fields, ["handle", [USERNAME]]]), ds("accounts.ad_consents", fields)]
          : [ds("accounts.users", [...fields, ["handle", [USERNAME]]])],
        purposes: consented ? SIGNUP_PURPOSES_CONSENTED : SIGNUP_PURPOSES,
        dataSubject: "customer",
        subjects: [rawUserId(u)],
      };
      if (f & SIGNUP_PHONE) phonePool.push(u);
      if (f & SIGNUP_EMAIL) emailPool.push(u);
      if (consented && f & SIGNUP_EMAIL) consentedEmailPool.push(u);
    }
    // Two-factor enrolment collects a phone number and/or an email for account security only.
    for (const u of enrolByDay[day] ?? []) {
      const f = flags[u] as number;
      for (const [field, category, flag, signupFlag, pool] of [
        ["phone_number", PHONE, TFA_PHONE, SIGNUP_PHONE, phonePool],
        ["email", EMAIL, TFA_EMAIL, SIGNUP_EMAIL, emailPool],
      ] as const) {
        if ((f & flag) === 0) continue;
        if ((f & signupFlag) === 0) pool.push(u);
        if (flag === TFA_PHONE) twoFactorPhoneSeen = true;
        else twoFactorEmailSeen = true;
        yield {
          kind: EventKind.collect,
          eventId: id(),
          occurredAt: enrolAt[u],
          service: "auth-service",
          job: { namespace: "web", name: "2fa-enrolment" },
          runId: `2fa-${u}`,
          outputs: [ds("security.two_factor", [[field, [category]]])],
          purposes: SECURITY_PURPOSES,
          dataSubject: "customer",
          subjects: [rawUserId(u)],
        };
      }
    }
    // Some remove the number from two-factor settings (the copies downstream survive); some ask
    // for it to be erased everywhere it went.
    for (const u of deleteByDay[day] ?? []) {
      const everywhere = deleteKind[u] === DELETE_EVERYWHERE;
      yield {
        kind: EventKind.delete,
        eventId: id(),
        occurredAt: deleteAt[u],
        service: everywhere ? "privacy-center" : "auth-service",
        job: { namespace: "web", name: everywhere ? "erasure-request" : "2fa-removal" },
        runId: `delete-${u}`,
        inputs: (everywhere ? PHONE_FIELDS : PHONE_FIELDS.slice(0, 1)).map(([d, field]) => ds(d, [[field, []]])),
        dataSubject: "customer",
        subjects: [rawUserId(u)],
      };
    }
    // Everyday legitimate activity: logins with a second factor, security alerts, profile reads.
    const signedUp = Math.min(n, nextSignup);
    const activity = Math.round(activityPerDay * (0.5 + random()));
    const dayEnd = t0 + day * DAY;
    for (let k = 0; k < activity && signedUp > 0; k++) {
      const u = Math.floor(random() * signedUp);
      const r = random();
      const f = flags[u] as number;
      const twoFactor = (f & TFA_PHONE) !== 0 && (enrolAt[u] as number) < dayEnd && !((deleteAt[u] as number) < dayEnd);
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
    // Advertising: advertisers' lists matched every day. Consented keys are fine; the mixed
    // matching keys (sign-up and two-factor contact points alike) are the misuse, until the fix.
    yield* matching(
      day,
      "tailored-audiences",
      "tailored-audiences.match",
      "ads.consented_keys",
      "email_sha256",
      consentedEmailPool,
      perMillion(3000),
      0,
    );
    yield* matching(
      day,
      "partner-audiences",
      "partner-audiences.match",
      "ads.consented_keys",
      "email_sha256",
      consentedEmailPool,
      perMillion(2000),
      0,
    );
    if (day < fixDay) {
      // Matching starts on a field once two-factor data has reached it (before that, it is clean).
      if (twoFactorEmailSeen) {
        yield* matching(
          day,
          "tailored-audiences",
          "tailored-audiences.match",
          "ads.matching_keys",
          "email_sha256",
          emailPool,
          perMillion(700),
          EMAIL_BIT,
        );
      }
      if (twoFactorPhoneSeen) {
        yield* matching(
          day,
          "partner-audiences",
          "partner-audiences.match",
          "ads.matching_keys",
          "phone_sha256",
          phonePool,
          perMillion(1000),
          PHONE_BIT,
        );
      }
    }
    if (day === fixDay) {
      yield {
        kind: EventKind.delete,
        eventId: id(),
        occurredAt: purgeAt,
        service: "ads-identity",
        job: { namespace: "batch", name: "ads-identity.purge-security-keys" },
        runId: "fix-2019-09-17",
        inputs: [
          ds("ads.matching_keys", [
            ["email_sha256", []],
            ["phone_sha256", []],
          ]),
        ],
        dataSubject: "customer",
      };
    }
  }

  let users = 0;
  let records = 0;
  let exactUsers = 0;
  let exactRecords = 0;
  let sharedUsers = 0;
  for (let i = 0; i < n; i++) {
    const m = misused[i] as number;
    if (m !== 0) {
      users++;
      records += (m & 1) + ((m >> 1) & 1);
    }
    const x = exactly[i] as number;
    if (x !== 0) {
      exactUsers++;
      exactRecords += (x & 1) + ((x >> 1) & 1);
    }
    sharedUsers += sharedExactly[i] as number;
  }
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  Object.assign(truth, {
    rule: SCENARIO_RULE,
    affectedUsers: users,
    affectedRecords: records,
    violatingEvents: violating,
    firstViolation: iso(firstViolation),
    lastViolation: iso(lastViolation),
    categories: [EMAIL, PHONE].sort(),
    services: ["partner-audiences", "tailored-audiences"],
    externalSharesOfViolatedData: exports,
    sharedOutside: { shared: exports > 0, subjects: 0, events: exports },
    exact: {
      users: exactUsers,
      records: exactRecords,
      violatingEvents: exactViolating,
      firstViolation: iso(exactFirst),
      lastViolation: iso(exactLast),
      sharedOutside: { shared: exactExports > 0, subjects: sharedUsers, events: exactExports },
      subjectUses,
    },
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
    sharedOutside: { shared: false, subjects: 0, events: 0 },
    exact: {
      users: 0,
      records: 0,
      violatingEvents: 0,
      firstViolation: null,
      lastViolation: null,
      sharedOutside: { shared: false, subjects: 0, events: 0 },
      subjectUses: 0,
    },
    events: 0,
  };
}
