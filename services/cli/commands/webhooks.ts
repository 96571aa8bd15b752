import { ConfigError } from "../../errors/index.ts";
import { parseSecret, sampleAlertPayload, signWebhook } from "../../alerting/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, out, text, UsageError } from "../args.ts";

/** `webhooks test URL`: one signed sample alert, shaped as every alert is, so an operator can check a receiver. */
export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { secret: { type: "string" } }, true);
  if (positionals[0] !== "test" || positionals.length !== 2)
    throw new UsageError("usage: lineage-audit webhooks test URL [--secret whsec_…]");
  let url: URL;
  try {
    url = new URL(positionals[1] as string);
  } catch {
    throw new UsageError(`'${positionals[1]}' is not a URL`);
  }
  const secret = text(values, "secret") ?? config.webhookSecret;
  if (!secret) throw new UsageError("webhooks test needs the receiver's signing secret: --secret whsec_… or LINEAGE_AUDIT_WEBHOOK_SECRET");
  const key = parseSecret(secret, "--secret");
  const now = Date.now();
  const id = `msg_test_${now.toString(36)}`;
  const body = JSON.stringify(sampleAlertPayload(id, now));
  const target = `${url.origin}${url.pathname}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...signWebhook([key], id, Math.floor(now / 1000), body) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    throw new ConfigError(`cannot reach ${target}: ${(cause as Error).message}`, { cause });
  }
  if (!res.ok) throw new ConfigError(`the receiver at ${target} answered ${res.status} to a signed sample (webhook-id ${id})`);
  out(`delivered a signed sample to ${target}: ${res.status} (webhook-id ${id})`);
  return 0;
}
