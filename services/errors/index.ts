export {
  ErrorCode,
  LineageAuditError,
  ConfigError,
  SchemaError,
  InputError,
  RuleError,
  StoreError,
  StoreDataError,
  TransportError,
  InternalError,
} from "./errors.ts";
export type { ErrorContext, LineageAuditErrorOptions } from "./errors.ts";
