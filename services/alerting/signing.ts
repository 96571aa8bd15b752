// Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
// `${webhook-id}.${webhook-timestamp}.${body}`, base64, as `v1,<signature>`; several
// space-separated while a secret is being rotated.
import { createHmac } from "node:crypto";
import { ConfigError } from "../errors/index.ts";

const PREFIX = "whsec_";
/** The specification asks for 24 to 64 random bytes. */
export const MIN_SECRET_BYTES = 24;

/** The secret's key bytes; a ConfigError (naming `where`, never the secret) when malformed. */
export function parseSecret(secret: string, where: string): Buffer {
  if (!secret.startsWith(PREFIX))
    throw new ConfigError(`${where}: a signing secret must start with '${PREFIX}' (generate one: echo whsec_$(openssl rand -base64 32))`);
  const body = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new ConfigError(`${where}: the signing secret after '${PREFIX}' must be base64`);
  const bytes = Buffer.from(body, "base64");
  if (bytes.length < MIN_SECRET_BYTES)
    throw new ConfigError(`${where}: the signing secret must hold at least ${MIN_SECRET_BYTES} random bytes (it has ${bytes.length})`);
  return bytes;
}

export interface SignedHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/** Headers for one delivery attempt: the id is the same on every retry; the timestamp is now. */
export function signWebhook(keys: readonly Buffer[], webhookId: string, timestampSeconds: number, body: string): SignedHeaders {
  const signed = `${webhookId}.${timestampSeconds}.${body}`;
  const signatures = keys.map((key) => `v1,${createHmac("sha256", key).update(signed).digest("base64")}`);
  return { "webhook-id": webhookId, "webhook-timestamp": String(timestampSeconds), "webhook-signature": signatures.join(" ") };
}
