/**
 * The process-level error policy every component shares. An exception nobody caught, or a
 * rejection nobody handled, means the process is in a state its code did not plan for: it is
 * logged with its stack, the process is marked not ready (so `/readyz` stops sending it work),
 * and it exits non-zero after its shutdown hooks, so its supervisor (Kubernetes, or the embedded
 * runner) restarts it clean. Continuing would risk serving from half-updated state.
 */

let failure: string | undefined;

/** Why the process is failing, once a fatal error was seen; `/readyz` reports it (`startAdminServer`). */
export function processFailure(): string | undefined {
  return failure;
}

/** Marks the process not ready for good (it is about to exit). The first reason is kept. */
export function markProcessFailed(reason: string): void {
  failure ??= reason;
}

/** Only for tests that exercise the policy in-process. */
export function resetProcessFailure(): void {
  failure = undefined;
}

/** `Error: message` plus the first stack frames, for a log field. */
export function describeError(err: unknown): { error: string; stack?: string } {
  if (err instanceof Error) return { error: err.message, ...(err.stack ? { stack: err.stack.split('\n').slice(0, 8).join('\n') } : {}) };
  return { error: String(err) };
}
