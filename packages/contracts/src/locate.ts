/**
 * How long one Locate call to the meta server may take, the `attempt`-th in a row after failures
 * (0: the first): `firstMs`, doubling per failure up to four times it, never past `leftMs` (the
 * caller's own deadline) and never below 1 ms. A meta server answering a re-home storm (a dead
 * pilot's thousands of sidecars locating at once) is busy, not gone: a fixed deadline cancelled
 * calls it was about to answer, wasted that work and queued the retry behind the rest (bench/scale:
 * 17,899 failed locates in the 50 s after a pilot kill with fixed 2 s attempts). Used by the
 * control plane's client (2 s first) and by the proxy (3 s first).
 */
export function locateAttemptMs(attempt: number, firstMs: number, leftMs = Infinity): number {
  return Math.max(1, Math.min(leftMs, firstMs * 2 ** Math.min(Math.max(0, attempt), 2)));
}
