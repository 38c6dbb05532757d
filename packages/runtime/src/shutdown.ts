import type { Logger } from './logger.js';
import { describeError, markProcessFailed } from './process-errors.js';

export interface ShutdownOptions {
  logger: Logger;
  /** Hard limit for all hooks together; the process exits with code 1 past it. Default 20 s. */
  timeoutMs?: number;
  signals?: NodeJS.Signals[];
  /**
   * Also take over `uncaughtException` and `unhandledRejection` (default true): log the error with
   * its stack, mark the process not ready, run the hooks, exit 1 — so the process is restarted
   * clean instead of serving on from a state nobody planned for.
   */
  fatalErrors?: boolean;
  /** Injected for tests; defaults to process.exit. */
  exit?: (code: number) => void;
}

/**
 * Graceful shutdown on SIGTERM/SIGINT: hooks run in reverse order of registration (last started,
 * first stopped), each awaited; then the process exits 0. A second signal or the timeout forces
 * exit 1. An uncaught exception or unhandled rejection (see {@link ShutdownOptions.fatalErrors})
 * runs the same hooks and exits 1; a second one while they run exits 1 at once.
 */
export class GracefulShutdown {
  private readonly hooks: { name: string; fn: () => Promise<void> | void }[] = [];
  private running: Promise<void> | undefined;
  private exitCode = 0;
  private readonly exit: (code: number) => void;

  constructor(private readonly opts: ShutdownOptions) {
    this.exit = opts.exit ?? ((code) => process.exit(code));
  }

  /** Registers a stop hook, e.g. `('xds server', () => server.close())`. */
  add(name: string, fn: () => Promise<void> | void): this {
    this.hooks.push({ name, fn });
    return this;
  }

  /** Starts listening for the signals. */
  install(): this {
    for (const sig of this.opts.signals ?? ['SIGTERM', 'SIGINT']) {
      process.on(sig, () => {
        if (this.running) {
          this.opts.logger.warn('second signal, exiting now', { signal: sig });
          this.exit(1);
          return;
        }
        void this.shutdown(sig);
      });
    }
    if (this.opts.fatalErrors !== false) {
      process.on('uncaughtException', (err) => this.fatal('uncaughtException', err));
      process.on('unhandledRejection', (reason) => this.fatal('unhandledRejection', reason));
    }
    return this;
  }

  /**
   * A fatal error: logged with context, the process marked not ready, then the hooks run and the
   * process exits 1 (at once when already shutting down).
   */
  fatal(kind: 'uncaughtException' | 'unhandledRejection', err: unknown): void {
    const { error, stack } = describeError(err);
    this.opts.logger.error('fatal error; stopping for a restart', { kind, error, ...(stack ? { stack } : {}) });
    markProcessFailed(`${kind}: ${error}`);
    this.exitCode = 1;
    if (this.running) {
      this.exit(1);
      return;
    }
    void this.shutdown(kind);
  }

  /** Runs every hook once; later calls return the same promise. */
  shutdown(reason: string): Promise<void> {
    this.running ??= this.run(reason);
    return this.running;
  }

  private async run(reason: string): Promise<void> {
    const { logger, timeoutMs = 20_000 } = this.opts;
    logger.info('shutting down', { reason });
    const timer = setTimeout(() => {
      logger.error('shutdown timed out, exiting', { timeoutMs });
      this.exit(1);
    }, timeoutMs);
    timer.unref();
    let code = this.exitCode;
    for (const { name, fn } of [...this.hooks].reverse()) {
      try {
        await fn();
      } catch (err) {
        code = 1;
        logger.error('shutdown hook failed', { hook: name, error: (err as Error).message });
      }
    }
    clearTimeout(timer);
    logger.info('stopped', { reason });
    this.exit(code);
  }
}
