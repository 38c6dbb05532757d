/**
 * Admission of new ADS streams: a token bucket in front of stream setup, so a reconnect storm
 * (a pilot died and its sidecars all come here) queues in arrival order instead of every stream
 * competing for the event loop at once and all of them timing out. Streams already admitted are
 * never delayed.
 */
export interface AdmissionOptions {
  /** Streams admitted per second on average. */
  ratePerSecond: number;
  /** Streams admitted at once before the rate applies. */
  burst: number;
  now?: () => number;
}

export class StreamAdmission {
  private tokens: number;
  private last: number;
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AdmissionOptions) {
    if (!(opts.ratePerSecond > 0) || !(opts.burst >= 1)) throw new Error('stream admission needs ratePerSecond > 0 and burst ≥ 1');
    this.now = opts.now ?? (() => performance.now());
    this.tokens = opts.burst;
    this.last = this.now();
  }

  /** Streams waiting to be admitted. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves when the stream may proceed; FIFO. */
  admit(): Promise<void> {
    this.refill();
    if (this.waiting.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  /** Drops the queue (on shutdown); waiting streams are never admitted. */
  close(): void {
    clearTimeout(this.timer);
    this.waiting.length = 0;
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
      this.refill();
      while (this.waiting.length && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiting.shift()!();
      }
      if (this.waiting.length) this.schedule();
    }, wait);
  }
}
