/**
 * A controller, shaped like controller-runtime's: watch events become keys on a {@link WorkQueue},
 * workers take keys and call the reconciler. The error contract:
 * - resolves (optionally with `requeueAfterMs`): done; look again after that long if given;
 * - throws a `TerminalError`: recorded (logged, counted) and not retried — only a new event for
 *   the key brings it back;
 * - throws anything else: retried after an exponential backoff with jitter, per key.
 */
import { TerminalError, type BackoffOptions, type Logger } from '@octo-mesh/runtime';
import type { OperatorMetrics } from './metrics.js';
import { DEFAULT_RETRY_BACKOFF, WorkQueue } from './queue.js';

export interface ReconcileResult {
  /** Reconcile the key again after this long (e.g. to poll the fleet or when a pause ends). */
  requeueAfterMs?: number | undefined;
}

/** Makes the world match one object, by key; idempotent, level-based (never told what changed). */
export interface Reconciler {
  reconcile(key: string): Promise<ReconcileResult | void>;
}

export interface ControllerOptions {
  /** For logs and metrics, e.g. `proxyversion`. */
  name: string;
  reconciler: Reconciler;
  logger: Logger;
  metrics: OperatorMetrics;
  workers?: number;
  backoff?: BackoffOptions;
}

export class Controller {
  readonly queue: WorkQueue;
  private running: Promise<void>[] = [];
  private started = false;

  constructor(private readonly opts: ControllerOptions) {
    this.queue = new WorkQueue(opts.backoff ?? DEFAULT_RETRY_BACKOFF);
  }

  /** Asks for a reconcile of `key` (events, resyncs); coalesced while it waits. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < (this.opts.workers ?? 1); i++) this.running.push(this.work());
  }

  /** Stops taking keys and waits for the reconciles in flight. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }

  private async work(): Promise<void> {
    const { name, reconciler, logger, metrics } = this.opts;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = metrics.reconcileSeconds.startTimer({ controller: name });
      try {
        const r = await reconciler.reconcile(key);
        this.queue.forget(key);
        metrics.reconciles.inc({ controller: name, result: r?.requeueAfterMs !== undefined ? 'requeue' : 'success' });
        if (r?.requeueAfterMs !== undefined) this.queue.addAfter(key, r.requeueAfterMs);
      } catch (err) {
        if (err instanceof TerminalError) {
          this.queue.forget(key);
          metrics.reconciles.inc({ controller: name, result: 'terminal' });
          metrics.errors.inc({ where: `${name}-reconcile` });
          logger.error('reconcile failed; not retried', { controller: name, key, error: err.message });
        } else {
          const retries = this.queue.retries(key);
          const delay = this.queue.addRateLimited(key);
          metrics.reconciles.inc({ controller: name, result: 'error' });
          metrics.errors.inc({ where: `${name}-reconcile` });
          logger.warn('reconcile failed; retrying', { controller: name, key, retries, retryInMs: delay, error: (err as Error).message });
        }
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
