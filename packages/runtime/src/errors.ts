/**
 * Typed errors shared by every component. Code throws these; only the edges (gRPC handlers, HTTP
 * handlers, CLI) map them to status codes, with {@link grpcStatusOf} and {@link httpStatusOf}.
 */

/** One problem with an input, located by a dotted/indexed field path such as `spec.rules[1].route[0].weight`. */
export interface FieldIssue {
  path: string;
  message: string;
}

export class OctoError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The thing asked for does not exist. */
export class NotFoundError extends OctoError {}

/** The write lost a race (stale version, already exists). Retrying after a re-read may succeed. */
export class ConflictError extends OctoError {}

/** Input is invalid. `issues` name every offending field; retrying the same input cannot succeed. */
export class ValidationError extends OctoError {
  readonly issues: readonly FieldIssue[];
  constructor(subject: string, issues: readonly FieldIssue[]) {
    super(`${subject}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.issues = issues;
  }
}

/** A component's configuration is invalid; the process must not start. */
export class ConfigError extends ValidationError {}

/**
 * Reconcilers: record this failure and do not retry (as controller-runtime's TerminalError).
 * Any other thrown error means "retry with backoff".
 */
export class TerminalError extends OctoError {}

/** The peer or dependency is not reachable right now; retry with backoff. */
export class UnavailableError extends OctoError {}

/** The caller is known but may not do this (gRPC PERMISSION_DENIED, HTTP 403). */
export class ForbiddenError extends OctoError {}

export const isNotFound = (e: unknown): e is NotFoundError => e instanceof NotFoundError;
export const isConflict = (e: unknown): e is ConflictError => e instanceof ConflictError;
export const isValidation = (e: unknown): e is ValidationError => e instanceof ValidationError;
export const isTerminal = (e: unknown): e is TerminalError => e instanceof TerminalError;
export const isUnavailable = (e: unknown): e is UnavailableError => e instanceof UnavailableError;
export const isForbidden = (e: unknown): e is ForbiddenError => e instanceof ForbiddenError;

/** gRPC status code numbers (grpc/status.proto); kept here so pure code need not import grpc-js. */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** Maps an error to the gRPC status code an edge should answer with. */
export function grpcStatusOf(e: unknown): number {
  if (isNotFound(e)) return GrpcCode.NOT_FOUND;
  if (isConflict(e)) return GrpcCode.ABORTED;
  if (isValidation(e)) return GrpcCode.INVALID_ARGUMENT;
  if (isTerminal(e)) return GrpcCode.FAILED_PRECONDITION;
  if (isUnavailable(e)) return GrpcCode.UNAVAILABLE;
  if (isForbidden(e)) return GrpcCode.PERMISSION_DENIED;
  return GrpcCode.INTERNAL;
}

/** Maps an error to the HTTP status an edge should answer with. */
export function httpStatusOf(e: unknown): number {
  if (isNotFound(e)) return 404;
  if (isConflict(e)) return 409;
  if (isValidation(e)) return 400;
  if (isTerminal(e)) return 422;
  if (isUnavailable(e)) return 503;
  if (isForbidden(e)) return 403;
  return 500;
}
