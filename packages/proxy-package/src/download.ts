import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Backoff, sleep, type BackoffOptions } from '@octo-mesh/runtime';
import { PackageError } from './errors.js';

export interface DownloadOptions {
  /** Refused (TooLarge) past this many bytes, announced or received. Default 64 MiB. */
  maxBytes?: number;
  /** Per attempt, ms. Default 30 s. */
  timeoutMs?: number;
  /** Attempts after the first. Default 4. */
  retries?: number;
  backoff?: BackoffOptions;
  signal?: AbortSignal;
  /** Called before each retry (for logs and metrics). */
  onRetry?: (attempt: number, error: Error, delayMs: number) => void;
}

class Fatal extends Error {}

/**
 * Downloads `url` (http, https or file) to `dest`. The bytes go to `dest.partial` first and are
 * renamed to `dest` when complete, so `dest` is never a torn file; nothing is verified or
 * unpacked here (the caller checks the digest before using it).
 *
 * Resume: when `dest.partial` exists (a previous attempt broke off), the next attempt asks for
 * the rest with `Range: bytes=<size>-`; a 206 appends, a 200 (server without ranges) starts over.
 * A failure that retrying can fix (network, timeout, 5xx, a truncated body) is retried with
 * exponential backoff and jitter; 4xx and TooLarge are not. After the last attempt:
 * DownloadFailed.
 */
export async function download(url: string, dest: string, opts: DownloadOptions = {}): Promise<{ bytes: number; attempts: number }> {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const retries = opts.retries ?? 4;
  const backoff = new Backoff(opts.backoff ?? { initialMs: 200, maxMs: 5_000, jitter: 0.5 });
  const partial = `${dest}.partial`;
  const u = new URL(url);
  if (u.protocol === 'file:') {
    await rm(partial, { force: true });
    const bytes = await copyFile(fileURLToPath(u), partial, maxBytes);
    await rename(partial, dest);
    return { bytes, attempts: 1 };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new PackageError('DownloadFailed', `unsupported URL scheme ${u.protocol}`);
  for (let attempt = 0; ; attempt++) {
    try {
      const bytes = await httpAttempt(url, partial, maxBytes, opts.timeoutMs ?? 30_000, opts.signal);
      await rename(partial, dest);
      return { bytes, attempts: attempt + 1 };
    } catch (err) {
      if (err instanceof PackageError) {
        await rm(partial, { force: true });
        throw err;
      }
      if (err instanceof Fatal || attempt >= retries || opts.signal?.aborted) {
        throw new PackageError('DownloadFailed', `${url}: ${(err as Error).message} (after ${attempt + 1} attempt(s))`);
      }
      const delay = backoff.next();
      opts.onRetry?.(attempt + 1, err as Error, delay);
      await sleep(delay, opts.signal);
    }
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

async function copyFile(src: string, dest: string, maxBytes: number): Promise<number> {
  let size: number;
  try {
    size = (await stat(src)).size;
  } catch (err) {
    throw new PackageError('DownloadFailed', `${src}: ${(err as Error).message}`);
  }
  if (size > maxBytes) throw new PackageError('TooLarge', `package is ${size} bytes, the limit is ${maxBytes}`);
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(dest, { flags: 'wx' });
    createReadStream(src).on('error', reject).pipe(out).on('finish', resolve).on('error', reject);
  });
  return size;
}

async function httpAttempt(url: string, partial: string, maxBytes: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const have = await sizeOf(partial);
  const timeout = AbortSignal.timeout(timeoutMs);
  const res = await fetch(url, {
    headers: have > 0 ? { range: `bytes=${have}-` } : {},
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  if (res.status === 416 && have > 0) {
    // What we hold is already the whole file (or more): start over next time.
    await rm(partial, { force: true });
    throw new Error('range not satisfiable; restarting');
  }
  if (res.status >= 400 && res.status < 500) throw new Fatal(`HTTP ${res.status}`);
  if (res.status !== 200 && res.status !== 206) throw new Error(`HTTP ${res.status}`);
  const append = res.status === 206 && have > 0;
  const start = append ? have : 0;
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(length) && start + length > maxBytes) {
    await res.body?.cancel();
    throw new PackageError('TooLarge', `package is ${start + length} bytes, the limit is ${maxBytes}`);
  }
  let got = 0;
  const out = createWriteStream(partial, { flags: append ? 'a' : 'w' });
  const closed = new Promise<void>((resolve, reject) => out.on('close', resolve).on('error', reject));
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      got += chunk.length;
      if (start + got > maxBytes) throw new PackageError('TooLarge', `package over the limit of ${maxBytes} bytes`);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  } finally {
    out.end();
    await closed;
  }
  if (Number.isFinite(length) && got !== length) throw new Error(`truncated: ${got} of ${length} bytes`);
  return start + got;
}
