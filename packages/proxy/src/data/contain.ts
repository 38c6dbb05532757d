/**
 * Containment of exceptions thrown while one connection's bytes are handled. The data path runs
 * on callbacks from socket reads (see the README); an exception escaping one of them would reach
 * the process-level policy (`@octo-mesh/runtime` GracefulShutdown: log, drain, exit 1) and take
 * every other connection of the sidecar down with it. The read callbacks of downstream
 * (h1-server.ts) and upstream (h1-client.ts) HTTP/1.1 connections catch instead: the connection
 * whose callback threw is closed (its requests aborted, so the other side learns of it as a
 * reset), the error is counted (`octo_proxy_contained_errors_total{side}`) and logged with its
 * stack, and the process serves on. Anything else uncaught still follows the process policy.
 */
export type ContainedSide = 'downstream' | 'upstream';

let reporter: ((side: ContainedSide, err: unknown) => void) | undefined;
let count = 0;

/** Where contained errors are reported (the proxy's logger and metrics); one per process. */
export function reportContainedErrors(fn: (side: ContainedSide, err: unknown) => void): void {
  reporter = fn;
}

/** Contained errors so far in this process. */
export function containedErrors(): number {
  return count;
}

/** Counts and reports one contained error; a reporter that throws is ignored. */
export function contained(side: ContainedSide, err: unknown): void {
  count++;
  try {
    reporter?.(side, err);
  } catch {
    // reporting must not undo the containment
  }
}
