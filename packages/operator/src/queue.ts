/**
 * A work queue of object keys (`namespace/name`), as controller-runtime's: a key is queued at most
 * once however often it is added (events are coalesced — reconciliation is level-based, so only
 * "look at this object again" matters), a key being reconciled is never handed to a second worker
 * (added meanwhile, it is queued again when the first is done), and failures are retried after a
 * per-key exponential backoff with jitter.
 */
import { Backoff, type BackoffOptions } from '@octo-mesh/runtime';

export const DEFAULT_RETRY_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 60_000, multiplier: 2, jitter: 0.3 };

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, Backoff>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private closed = false;

  constructor(
    private readonly backoff: BackoffOptions = DEFAULT_RETRY_BACKOFF,
    private readonly now: () => number = Date.now,
  ) {}

  /** Queues the key now (a no-op when it is already queued). */
  add(key: string): void {
    if (this.closed || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // queued again by done()
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else this.queue.push(key);
  }

  /** Queues the key after `ms`; an earlier pending wake-up for it wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) return this.add(key);
    const at = this.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Queues the key after its next backoff delay (grows with each call until `forget`). */
  addRateLimited(key: string): number {
    let b = this.failures.get(key);
    if (!b) this.failures.set(key, (b = new Backoff(this.backoff)));
    const delay = b.next();
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets the key's backoff (after a success, or a failure that is not retried). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Failed attempts since the last `forget`. */
  retries(key: string): number {
    return this.failures.get(key)?.attempts ?? 0;
  }

  /** The next key to reconcile (the caller must call `done`); undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  get length(): number {
    return this.queue.length;
  }

  shutDown(): void {
    this.closed = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
