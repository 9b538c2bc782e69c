// The one error hierarchy of NovaCron. Never extend NovaCronError outside this file:
// add a code here so that api/errors.ts can map every error to an HTTP and gRPC status.

/** Stable machine-readable error codes, as an `as const` enum. */
export const ErrorCode = {
  ConfigInvalid: 'config_invalid',
  ConfigEnvMissing: 'config_env_missing',
  ConfigParse: 'config_parse',
  BootCycle: 'boot_cycle',
  BootMissingDependency: 'boot_missing_dependency',
  BootComponentFailed: 'boot_component_failed',
  BootTimeout: 'boot_timeout',
  ResourceUnavailable: 'resource_unavailable',
  PortInUse: 'port_in_use',
  Validation: 'validation',
  NotFound: 'not_found',
  Conflict: 'conflict',
  ResourceExhausted: 'resource_exhausted',
  Unauthenticated: 'unauthenticated',
  PermissionDenied: 'permission_denied',
  Unavailable: 'unavailable',
  InvalidState: 'invalid_state',
  Protocol: 'protocol',
  Integrity: 'integrity',
  Cancelled: 'cancelled',
  DeadlineExceeded: 'deadline_exceeded',
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface NovaCronErrorOptions {
  /** The config key, resource id or field the error is about. */
  readonly key?: string;
  /** What the operator can do about it. */
  readonly hint?: string;
  /** Structured details for API bodies (per-node reasons, per-key errors …). */
  readonly details?: unknown;
  readonly retryable?: boolean;
  readonly cause?: unknown;
}

/** Base of every error NovaCron raises on purpose. Carries a stable code, retryability, the offending key and a hint. */
export class NovaCronError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly key: string | undefined;
  readonly hint: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: NovaCronErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NovaCronError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.key = options.key;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** Message followed by the hint, for terminals and logs. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** One bad key in a configuration, as reported by validation. */
export interface ConfigIssue {
  readonly path: string;
  readonly value: unknown;
  readonly message: string;
  /** What the key accepts (type, range, enum values). */
  readonly allowed?: string;
  /** Where the bad value came from: `file x.yaml:3:7`, `env NOVACRON_…`, `flag`. */
  readonly source?: string;
}

export class ConfigError extends NovaCronError {
  readonly issues: readonly ConfigIssue[];
  constructor(
    message: string,
    issues: readonly ConfigIssue[] = [],
    options: NovaCronErrorOptions = {},
    code: ErrorCode = ErrorCode.ConfigInvalid,
  ) {
    super(code, message, { ...options, details: issues });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export class NotFoundError extends NovaCronError {
  constructor(what: string, id: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.NotFound, `${what} not found: ${id}`, { key: id, ...options });
    this.name = 'NotFoundError';
  }
}

export class ValidationError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.Validation, message, options);
    this.name = 'ValidationError';
  }
}

export class ConflictError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.Conflict, message, options);
    this.name = 'ConflictError';
  }
}

export class ResourceExhaustedError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.ResourceExhausted, message, options);
    this.name = 'ResourceExhaustedError';
  }
}

export class UnavailableError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.Unavailable, message, { retryable: true, ...options });
    this.name = 'UnavailableError';
  }
}

export class InvalidStateError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.InvalidState, message, options);
    this.name = 'InvalidStateError';
  }
}

export class IntegrityError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.Integrity, message, options);
    this.name = 'IntegrityError';
  }
}

export class ProtocolError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions = {}) {
    super(ErrorCode.Protocol, message, options);
    this.name = 'ProtocolError';
  }
}

/** A hypervisor (QEMU) refused or failed an operation; `qmpClass` is QMP's error class when it came over QMP. */
export class HypervisorError extends NovaCronError {
  readonly qmpClass: string | undefined;
  constructor(message: string, options: NovaCronErrorOptions & { qmpClass?: string; code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCode.Internal, message, options);
    this.name = 'HypervisorError';
    this.qmpClass = options.qmpClass;
  }
}

/** A live migration did not complete (cancelled, did not converge, transport lost); the source kept running. */
export class MigrationError extends NovaCronError {
  constructor(message: string, options: NovaCronErrorOptions & { code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCode.Unavailable, message, options);
    this.name = 'MigrationError';
  }
}

/** Normalises anything thrown into a NovaCronError, keeping the original as `cause`. */
export function ensureNovaCronError(err: unknown): NovaCronError {
  if (err instanceof NovaCronError) return err;
  if (err instanceof Error) return new NovaCronError(ErrorCode.Internal, err.message, { cause: err });
  return new NovaCronError(ErrorCode.Internal, String(err), { cause: err });
}

/** The message of anything thrown, for log lines and error bodies. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
