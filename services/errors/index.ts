export { ErrorCode, LineageAuditError, ConfigError, SchemaError, InputError, RuleError, StoreError, TransportError } from "./errors.ts";
export type { ErrorContext, LineageAuditErrorOptions } from "./errors.ts";
