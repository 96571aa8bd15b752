import { createHmac } from "node:crypto";
import { ConfigError } from "../errors/index.ts";

/** Minimum HMAC key length in bytes. */
export const MIN_KEY_BYTES = 32;

/**
 * Keyed HMAC-SHA256 of a raw subject identifier, truncated to 128 bits (32 hex digits). The
 * same key gives the same pseudonym in every service, so the auditor can count people without
 * ever holding their identifiers; without the key the pseudonym cannot be reversed or
 * recomputed from a guessed identifier.
 */
export type Pseudonymizer = (rawIdentifier: string) => string;

export function createPseudonymizer(key: string | Uint8Array): Pseudonymizer {
  if (typeof key !== "string" && !((key as unknown) instanceof Uint8Array)) {
    throw new ConfigError(
      "the pseudonymisation key is missing: give at least 32 bytes (hex, base64 or text); generate one with: openssl rand -hex 32",
    );
  }
  const bytes = typeof key === "string" ? decodeKey(key) : key;
  if (bytes.byteLength < MIN_KEY_BYTES) {
    throw new ConfigError(
      `the pseudonymisation key must be at least ${MIN_KEY_BYTES} bytes (got ${bytes.byteLength}); generate one with: openssl rand -hex 32`,
      {
        context: { bytes: bytes.byteLength },
      },
    );
  }
  return (raw) => createHmac("sha256", bytes).update(normalise(raw)).digest("hex").slice(0, 32);
}

/** Identifiers are compared case- and space-insensitively (emails, phone numbers as typed). */
function normalise(raw: string): string {
  return raw.trim().toLowerCase();
}

/** Keys are given as hex (64+ digits) or base64; anything else is taken as UTF-8 text. */
function decodeKey(key: string): Uint8Array {
  if (/^(?:[0-9a-f]{2}){16,}$/i.test(key)) return Buffer.from(key, "hex");
  if (/^[A-Za-z0-9+/]{43,}={0,2}$/.test(key)) return Buffer.from(key, "base64");
  return Buffer.from(key, "utf8");
}
