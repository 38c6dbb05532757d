/**
 * A built executable of this repository run as a real child process for a test: its stdout and
 * stderr collected, its structured JSON log lines searchable, its exit awaited. Every process
 * started here is remembered, so `stopAll` in an `afterAll` ends exactly the ones the test
 * started (by their pid), never anything else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './tools.js';

export interface TestProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (null when ended by a signal). */
  exited: Promise<number | null>;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /**
   * The first JSON log line whose `message` is `message` (and that `match` accepts), waiting for
   * it; rejects with the output so far after `timeoutMs`, or at once when the process exits.
   */
  line<T = Record<string, unknown>>(message: string, opts?: { timeoutMs?: number; match?: (l: T) => boolean }): Promise<T>;
  /** SIGTERM, then the exit code; SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

const started = new Set<TestProcess>();

/** Runs `script` (a path relative to the repository root, e.g. `packages/pilot/dist/main.js`) with this Node. */
export function startProcess(script: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): TestProcess {
  const child = spawn(process.execPath, [join(REPO_ROOT, script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...opts.env },
  });
  let out = '';
  let exitCode: number | null | undefined;
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  child.stdout!.on('data', (c: Buffer) => ((out += c.toString()), wake()));
  child.stderr!.on('data', (c: Buffer) => ((out += c.toString()), wake()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      started.delete(p);
      wake();
      resolve(code);
    }),
  );
  const find = <T>(message: string, match?: (l: T) => boolean): T | undefined => {
    // Complete lines only: a chunk may end in the middle of one.
    for (const raw of out.slice(0, out.lastIndexOf('\n') + 1).split('\n')) {
      if (!raw.includes(`"message":"${message}"`)) continue;
      let parsed: T;
      try {
        parsed = JSON.parse(raw) as T;
      } catch {
        continue; // a line that only mentions the message (e.g. inside a stack trace)
      }
      if (!match || match(parsed)) return parsed;
    }
    return undefined;
  };
  const p: TestProcess = {
    child,
    pid: child.pid!,
    exited,
    output: () => out,
    line: <T>(message: string, o: { timeoutMs?: number; match?: (l: T) => boolean } = {}) =>
      new Promise<T>((resolve, reject) => {
        const timeoutMs = o.timeoutMs ?? 20_000;
        const done = (fn: () => void) => {
          waiters.delete(check);
          clearTimeout(timer);
          fn();
        };
        const check = () => {
          const found = find<T>(message, o.match);
          if (found) done(() => resolve(found));
          else if (exitCode !== undefined) done(() => reject(new Error(`${script} exited (${exitCode}) before logging "${message}":\n${out}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${script}: no "${message}" within ${timeoutMs} ms:\n${out}`))), timeoutMs);
        waiters.add(check);
        check();
      }),
    stop: async (graceMs = 10_000) => {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  started.add(p);
  return p;
}

/** Stops every process this module started that is still running. */
export async function stopAll(graceMs?: number): Promise<void> {
  await Promise.all([...started].map((p) => p.stop(graceMs)));
}
