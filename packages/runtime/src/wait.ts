import { sleep } from './backoff.js';

export interface WaitOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between polls; default 25 ms. */
  intervalMs?: number;
  /** Treat a throwing `get` as "not yet" instead of failing at once (e.g. a server still starting). */
  retryErrors?: boolean;
  /** Extra context appended to the timeout error (e.g. a child process's output). */
  detail?: () => string;
}

/**
 * Polls `get` until `ok` accepts its value and returns that value. On timeout it throws an error
 * naming `what`, the last value seen (or the last error) and `detail`. Level-based: a condition
 * that holds only between two polls may be missed.
 */
export async function waitFor<T>(what: string, get: () => T | Promise<T>, ok: (value: T) => boolean, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: { value: T } | { error: unknown } | undefined;
  for (;;) {
    try {
      const value = await get();
      if (ok(value)) return value;
      last = { value };
    } catch (error) {
      if (!opts.retryErrors) throw error;
      last = { error };
    }
    if (Date.now() > deadline) {
      const seen = !last ? 'nothing' : 'value' in last ? JSON.stringify(last.value) : `error ${(last.error as Error).message}`;
      const extra = opts.detail ? `\n${opts.detail()}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}; last: ${seen}${extra}`);
    }
    await sleep(opts.intervalMs ?? 25);
  }
}
