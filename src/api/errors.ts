// The one place errors become HTTP and gRPC statuses, and the one error body of the REST API:
// {"error":{"code","message","details"}}. Anything that is not a NovaCronError is an internal error
// whose message is not leaked beyond its first line.
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ErrorCode, NovaCronError } from '../errors.js';
import { ensureNovaCronError } from '../errors.js';

const HTTP_STATUS: Record<ErrorCode, number> = {
  config_invalid: 400,
  config_env_missing: 400,
  config_parse: 400,
  validation: 400,
  protocol: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  resource_exhausted: 409,
  invalid_state: 409,
  cancelled: 409,
  port_in_use: 503,
  resource_unavailable: 503,
  unavailable: 503,
  boot_cycle: 500,
  boot_missing_dependency: 500,
  boot_component_failed: 500,
  boot_timeout: 503,
  deadline_exceeded: 504,
  integrity: 500,
  internal: 500,
};

const GRPC_STATUS: Record<ErrorCode, GrpcStatus> = {
  config_invalid: GrpcStatus.INVALID_ARGUMENT,
  config_env_missing: GrpcStatus.INVALID_ARGUMENT,
  config_parse: GrpcStatus.INVALID_ARGUMENT,
  validation: GrpcStatus.INVALID_ARGUMENT,
  protocol: GrpcStatus.INVALID_ARGUMENT,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  not_found: GrpcStatus.NOT_FOUND,
  conflict: GrpcStatus.ALREADY_EXISTS,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  invalid_state: GrpcStatus.FAILED_PRECONDITION,
  cancelled: GrpcStatus.CANCELLED,
  port_in_use: GrpcStatus.UNAVAILABLE,
  resource_unavailable: GrpcStatus.UNAVAILABLE,
  unavailable: GrpcStatus.UNAVAILABLE,
  boot_cycle: GrpcStatus.INTERNAL,
  boot_missing_dependency: GrpcStatus.INTERNAL,
  boot_component_failed: GrpcStatus.INTERNAL,
  boot_timeout: GrpcStatus.UNAVAILABLE,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  integrity: GrpcStatus.DATA_LOSS,
  internal: GrpcStatus.INTERNAL,
};

export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly details: unknown;
    /** Present (true) when the same request may succeed later unchanged: resource exhausted,
     *  unavailable, a concurrent modification. Absent otherwise. */
    readonly retryable?: true;
  };
}

export function httpStatusOf(err: NovaCronError): number {
  return HTTP_STATUS[err.code];
}

export function grpcStatusOf(err: NovaCronError): GrpcStatus {
  return GRPC_STATUS[err.code];
}

/** The REST error body for anything thrown. */
export function toErrorBody(err: unknown): { status: number; body: ErrorBody } {
  const e = ensureNovaCronError(err);
  const status = httpStatusOf(e);
  const message = e.code === 'internal' ? (e.message.split('\n')[0] ?? 'internal error') : e.message;
  return {
    status,
    body: {
      error: {
        code: e.code,
        message: e.hint && e.code !== 'internal' ? `${message} (${e.hint})` : message,
        details: e.details ?? null,
        ...(e.retryable && e.code !== 'internal' ? { retryable: true as const } : {}),
      },
    },
  };
}
