/**
 * Coalesces bursts of changes: a batch is flushed once no change arrived for `quietMs`, or
 * `maxDelayMs` after its first change, whichever comes first — so a steady trickle of changes
 * cannot postpone a push forever. Flushes never overlap: changes arriving during a flush start
 * the next batch, flushed after the current one completes.
 */
export interface DebounceOptions {
  quietMs: number;
  maxDelayMs: number;
}

export class Debouncer<T> {
  private batch: T[] = [];
  private firstAt = 0;
  private quiet: NodeJS.Timeout | undefined;
  private max: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly opts: DebounceOptions,
    private readonly flush: (batch: T[], firstAt: number) => Promise<void>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(...items: T[]): void {
    if (this.closed || items.length === 0) return;
    if (this.batch.length === 0) {
      this.firstAt = this.now();
      this.max = setTimeout(() => this.fire(), this.opts.maxDelayMs);
    }
    this.batch.push(...items);
    clearTimeout(this.quiet);
    this.quiet = setTimeout(() => this.fire(), this.opts.quietMs);
  }

  /** Resolves when nothing is pending or being flushed (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.flushing || this.batch.length) {
      if (this.flushing) await this.flushing;
      else await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.quiet);
    clearTimeout(this.max);
    this.batch = [];
  }

  private fire(): void {
    clearTimeout(this.quiet);
    clearTimeout(this.max);
    if (this.flushing) {
      // One flush at a time; retry when it ends.
      void this.flushing.then(() => this.batch.length && this.fire());
      return;
    }
    const batch = this.batch;
    const firstAt = this.firstAt;
    this.batch = [];
    if (!batch.length) return;
    this.flushing = this.flush(batch, firstAt).finally(() => {
      this.flushing = undefined;
    });
  }
}
