// The one reader of times given as text: CLI flags (--from, --to) and NDJSON `occurredAt`.
// A time without an offset is UTC, everywhere; the machine's time zone never matters.

const DAY_MS = 86_400_000;

/** Event times the store keeps exactly: its DateTime64(3) column ends at 2299-12-31 (later times would be clamped); 0 is taken for a missing time. */
export const EVENT_TIME_RANGE = Object.freeze({
  min: 1,
  max: Date.UTC(2299, 11, 31, 23, 59, 59, 999),
  text: "1970-01-01T00:00:00.001Z to 2299-12-31T23:59:59.999Z",
});

/** What `parseTime` accepts, for error messages. */
export const TIME_FORMATS = "2019-01-31, 2019-01-31T12:00, 2019-01-31T12:00:00.250Z or 2019-01-31T12:00:00+02:00 (no offset = UTC)";

const PATTERN = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Milliseconds since 1970 for an ISO-8601 date or date-time; `undefined` when `text` is not one.
 * A date alone is midnight UTC; a date-time without `Z` or an offset is UTC. Fractions past
 * milliseconds are cut off. Impossible dates (2019-02-30, 24:00) are not times.
 */
export function parseTime(text: string): number | undefined {
  const m = PATTERN.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone = "Z"] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, Number(frac.padEnd(3, "0").slice(0, 3)));
  // Date.UTC rolls 2019-02-30 over into March: such a date is not a time.
  if (new Date(ms).getUTCDate() !== day) return undefined;
  if (zone === "Z") return ms;
  const digits = zone.replace(":", "");
  const offsetHours = Number(digits.slice(1, 3));
  const offsetMinutes = Number(digits.slice(3, 5));
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  const offset = (offsetHours * 60 + offsetMinutes) * 60_000;
  return digits[0] === "+" ? ms - offset : ms + offset;
}

/** Whether `ms` is midnight UTC (a whole day, as the daily aggregates count). */
export function isWholeDay(ms: number): boolean {
  return ms % DAY_MS === 0;
}
