export const ErrorCode = {
  config: "CONFIG",
  schema: "SCHEMA",
  input: "INPUT",
  rule: "RULE",
  store: "STORE",
  transport: "TRANSPORT",
  internal: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Non-personal facts about where an error happened (file, line, field path, topic, offset). */
export type ErrorContext = Readonly<Record<string, string | number | boolean | undefined>>;

export interface LineageAuditErrorOptions {
  cause?: unknown;
  context?: ErrorContext;
  /** Whether trying the same thing again may succeed. @default false */
  retriable?: boolean;
}

/**
 * Base of every error this project throws. The message and context never hold personal data
 * (raw identifiers, row contents): they name fields, files and positions instead.
 */
export class LineageAuditError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: LineageAuditErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
    this.retriable = options.retriable ?? false;
  }
}

/** A configuration value (flag, environment variable, option) is missing or malformed. */
export class ConfigError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.config, message, options);
  }
}

/** Bytes or a value do not match the event schema. */
export class SchemaError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.schema, message, options);
  }
}

/** Input that is well-formed Avro/JSON but not a meaningful event, or a bad input file. */
export class InputError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.input, message, options);
  }
}

/** A rules file or taxonomy reference is invalid. */
export class RuleError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.rule, message, options);
  }
}

/** The ClickHouse store refused or failed an operation. */
export class StoreError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.store, message, options);
  }
}

/**
 * The store refused rows for what they hold (ClickHouse type, parse, size or constraint errors):
 * writing the same rows again fails the same way, so the record behind them is set aside.
 */
export class StoreDataError extends StoreError {}

/** Sending events to the auditor failed. */
export class TransportError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.transport, message, options);
  }
}

/** Processing a message failed in a way that is not a known kind of bad input (a bug): the message is set aside. */
export class InternalError extends LineageAuditError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(ErrorCode.internal, message, options);
  }
}
