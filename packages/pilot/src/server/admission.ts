/**
 * Admission of new ADS streams, so a reconnect storm (a pilot died and its sidecars all come here)
 * queues in arrival order instead of every stream competing for the event loop at once and all of
 * them timing out. Two bounds, both must allow a stream:
 * - streams setting up at once (`maxSettingUp`): admitted and not yet through their first request
 *   (the node's snapshot placed, the first response written). This one adapts to the pilot: a
 *   pilot that sets streams up quickly admits the next ones quickly; a slow or starved one (a
 *   loaded machine) admits no faster than it finishes them;
 * - a token bucket (`ratePerSecond`, `burst`): a ceiling, whatever the pilot's speed.
 * A fixed 500/s alone was the bound of a re-home at 10,000 sidecars on a quiet machine (bench/scale,
 * 2026-12-07): 5,160 streams queued for up to 5.2 s at 500/s while the pilot used a third of a core.
 * Streams already set up are never delayed.
 */
export interface AdmissionOptions {
  /** Streams admitted per second on average (a ceiling). */
  ratePerSecond: number;
  /** Streams admitted at once before the rate applies. */
  burst: number;
  /** Streams admitted and still setting up, at most (default: no bound). */
  maxSettingUp?: number;
  /** A stream that has not finished setting up after this long stops counting (a client that never sends its first request); default 2000 ms. */
  setupTimeoutMs?: number;
  now?: () => number;
}

/** One stream's place in admission: `admitted` resolves when it may proceed; `done()` when it has set up, or is gone (idempotent). */
export interface AdmissionTicket {
  readonly admitted: Promise<void>;
  done(): void;
}

interface Waiter {
  start: () => void;
  cancelled: boolean;
}

export class StreamAdmission {
  private tokens: number;
  private last: number;
  private readonly waiting: Waiter[] = [];
  private cancelledWaiting = 0;
  private active = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly maxSettingUp: number;

  constructor(private readonly opts: AdmissionOptions) {
    if (!(opts.ratePerSecond > 0) || !(opts.burst >= 1)) throw new Error('stream admission needs ratePerSecond > 0 and burst ≥ 1');
    if (opts.maxSettingUp !== undefined && !(opts.maxSettingUp >= 1)) throw new Error('stream admission needs maxSettingUp ≥ 1');
    this.now = opts.now ?? (() => performance.now());
    this.maxSettingUp = opts.maxSettingUp ?? Infinity;
    this.tokens = opts.burst;
    this.last = this.now();
  }

  /** Streams waiting to be admitted. */
  get queued(): number {
    return this.waiting.length - this.cancelledWaiting;
  }

  /** Streams admitted and still setting up. */
  get settingUp(): number {
    return this.active;
  }

  /** A place in the queue (FIFO); call `done()` once the stream has set up or is gone. */
  admit(): AdmissionTicket {
    let state: 'queued' | 'active' | 'done' = 'queued';
    let timeout: NodeJS.Timeout | undefined;
    let resolve!: () => void;
    const admitted = new Promise<void>((r) => (resolve = r));
    const waiter: Waiter = {
      cancelled: false,
      start: () => {
        state = 'active';
        this.active++;
        timeout = setTimeout(done, this.opts.setupTimeoutMs ?? 2000);
        timeout.unref?.();
        resolve();
      },
    };
    const done = () => {
      if (state === 'done') return;
      if (state === 'queued') {
        waiter.cancelled = true;
        this.cancelledWaiting++;
      } else {
        this.active--;
        clearTimeout(timeout);
      }
      state = 'done';
      this.pump();
    };
    this.waiting.push(waiter);
    this.pump();
    return { admitted, done };
  }

  /** Drops the queue (on shutdown); waiting streams are never admitted. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.waiting.length = 0;
    this.cancelledWaiting = 0;
  }

  /** Admits what both bounds allow; waits for tokens on a timer, for set-up slots on `done()`. */
  private pump(): void {
    if (this.closed) return;
    this.refill();
    while (this.waiting.length && this.active < this.maxSettingUp) {
      const next = this.waiting[0]!;
      if (next.cancelled) {
        this.waiting.shift();
        this.cancelledWaiting--;
        continue;
      }
      if (this.tokens < 1) break;
      this.tokens -= 1;
      this.waiting.shift();
      next.start();
    }
    if (this.queued > 0 && this.tokens < 1) this.schedule();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((t - this.last) / 1000) * this.opts.ratePerSecond);
    this.last = t;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.opts.ratePerSecond) * 1000));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, wait);
  }
}
