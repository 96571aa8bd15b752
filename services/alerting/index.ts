export { parseSecret, signWebhook, MIN_SECRET_BYTES } from "./signing.ts";
export type { SignedHeaders } from "./signing.ts";
export { loadAlertingConfig, parseAlertingConfig } from "./subscriptions.ts";
export type { AlertingConfig, Subscription } from "./subscriptions.ts";
export { createAlertPlanner } from "./planner.ts";
export type { AlertPlanner } from "./planner.ts";
export { createDeliverer, defaultDelivererOptions, PAYLOAD_VERSION } from "./deliver.ts";
export type { Deliverer, DelivererOptions } from "./deliver.ts";
