/** Exponential backoff with jitter, as a pure function of the attempt number. */
export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  initialMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
  /** Growth per attempt (2 doubles). */
  multiplier?: number;
  /**
   * Fraction of the delay that is randomised: 0 = none, 1 = "full jitter" (uniform in [0, d]).
   * Jitter spreads reconnects so that many clients losing one server do not return in lockstep.
   */
  jitter?: number;
}

/**
 * Delay before retry number `attempt` (0-based). `random` is injectable so tests are exact.
 * The result lies in [d·(1−jitter), d] where d = min(maxMs, initialMs·multiplier^attempt).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const { initialMs, maxMs, multiplier = 2, jitter = 0.5 } = opts;
  const d = Math.min(maxMs, initialMs * Math.pow(multiplier, Math.max(0, attempt)));
  return Math.round(d * (1 - jitter * random()));
}

/** Stateful helper for a retry loop: `next()` gives the next delay, `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly opts: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}
  next(): number {
    return backoffDelay(this.attempt++, this.opts, this.random);
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or rejects early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
