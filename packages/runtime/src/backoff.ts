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

export interface RestarterOptions {
  /** What is restarted, for logs and `octo_errors_total{where}`. */
  name: string;
  /** Starts (again) the thing that failed; a rejection counts as another failure. */
  start: () => Promise<unknown>;
  backoff?: BackoffOptions;
  logger?: { log(level: string, message: string, meta?: Record<string, unknown>): unknown };
  /** Called with every failure (already logged), e.g. to count it. */
  onFailure?: (err: unknown) => void;
}

/**
 * Restarts something long-running (an informer, a watch) after it fails: with exponential backoff
 * and jitter, never at a fixed pace, and never concurrently with itself. While it is down,
 * {@link health} says why, so a readiness check can report a dependency that stays down.
 */
export class Restarter {
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private downSince: number | undefined;
  private lastError = '';
  private stopped = false;

  constructor(private readonly opts: RestarterOptions) {
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 200, maxMs: 10_000, jitter: 0.5 });
  }

  /** Reports a failure: logged, and a restart scheduled after the next backoff delay. */
  failed(err: unknown): void {
    if (this.stopped) return;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.downSince ??= Date.now();
    this.opts.onFailure?.(err);
    if (this.timer) return; // a restart is already scheduled
    const waitMs = this.backoff.next();
    this.opts.logger?.log('warn', `${this.opts.name} failed; restarting`, { error: this.lastError, attempt: this.backoff.attempts, waitMs });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.opts.start().then(
        () => this.succeeded(),
        (e: unknown) => this.failed(e),
      );
    }, waitMs);
  }

  /** Reports that it runs again (also called after a successful restart). */
  succeeded(): void {
    if (this.downSince !== undefined) this.opts.logger?.log('info', `${this.opts.name} running again`, { downMs: Date.now() - this.downSince });
    this.downSince = undefined;
    this.backoff.reset();
  }

  /**
   * `true` while running, or when down for less than `graceMs`; else why it is down — the shape
   * of a readiness check.
   */
  health(graceMs = 0, now = Date.now()): true | string {
    if (this.downSince === undefined || now - this.downSince < graceMs) return true;
    return `${this.opts.name} down for ${Math.round((now - this.downSince) / 1000)} s: ${this.lastError}`;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
