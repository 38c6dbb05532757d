import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Backoff, type BackoffOptions } from '@octo-mesh/runtime';
import type { ChildProcess } from 'node:child_process';

export interface ChildSpec {
  /** Unique name, e.g. `pilot-a`; also the log file name. */
  name: string;
  /** A JavaScript entry point run with this Node. */
  script: string;
  args: string[];
  env?: Record<string, string>;
  /** Polled until it answers 2xx: the child is ready. */
  readyUrl?: string;
  /** A Unix socket path: `readyUrl`'s path is requested over it (an app that listens only on a socket). */
  readySocket?: string;
  /** Start it again when it exits unasked (default true), as Kubernetes restarts a container. */
  restart?: boolean;
}

export interface RunningChild {
  spec: ChildSpec;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null; at: number };
  /** Last lines of stderr, for error messages. */
  stderrTail: string[];
  /** How many times this child was started again after exiting unasked (0 for the first run). */
  restarts: number;
}

export interface SupervisorOptions {
  /** Called when a child exits unasked (before any restart). */
  onExit?: (c: RunningChild) => void;
  /** Called when a restarted child is running again (ready, when it has a `readyUrl`). */
  onRestart?: (c: RunningChild) => void;
  /** Delay before each restart of a child: 200 ms doubling to 10 s, reset once it ran 10 s. */
  restartBackoff?: BackoffOptions;
  /** A child that ran at least this long before exiting restarts after the shortest delay. Default 10 s. */
  stableMs?: number;
}

/**
 * Starts, restarts and stops the embedded mesh's child processes. Each child's stdout and stderr
 * go to `<logDir>/<name>.log` (JSON lines, as every component logs; appended across restarts). A
 * child that exits unasked — crashed, or killed on purpose in a demo — is started again with the
 * same arguments after a backoff that grows while it keeps crashing (like Kubernetes'
 * CrashLoopBackOff, but in milliseconds to seconds), so the mesh heals as it would in a cluster.
 * `stopAll` sends SIGTERM in reverse start order and SIGKILL to whatever has not exited after the
 * grace period; nothing is restarted after it began.
 */
export class Supervisor {
  private readonly children: RunningChild[] = [];
  private readonly logs = new Map<string, WriteStream>();
  private readonly backoffs = new Map<string, Backoff>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly opts: SupervisorOptions;
  private stopping = false;

  constructor(
    private readonly logDir: string,
    onExitOrOptions?: ((c: RunningChild) => void) | SupervisorOptions,
  ) {
    this.opts = typeof onExitOrOptions === 'function' ? { onExit: onExitOrOptions } : (onExitOrOptions ?? {});
    mkdirSync(logDir, { recursive: true });
  }

  get running(): readonly RunningChild[] {
    return this.children;
  }

  /** The child's current run. */
  find(name: string): RunningChild | undefined {
    return this.children.find((c) => c.spec.name === name);
  }

  /** Spawns a child and waits until it is ready (or fails when it exits or is not ready in time). */
  async start(spec: ChildSpec, readyTimeoutMs = 30_000): Promise<RunningChild> {
    const rc = this.spawn(spec, 0);
    this.children.push(rc);
    if (spec.readyUrl) await this.waitReady(rc, readyTimeoutMs);
    return rc;
  }

  private spawn(spec: ChildSpec, restarts: number): RunningChild {
    let log = this.logs.get(spec.name);
    if (!log) this.logs.set(spec.name, (log = createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: 'a' })));
    const child = spawn(process.execPath, [spec.script, ...spec.args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...spec.env },
    });
    const startedAt = Date.now();
    const rc: RunningChild = {
      spec,
      child,
      pid: child.pid ?? -1,
      stderrTail: [],
      restarts,
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    };
    child.stdout!.pipe(log, { end: false });
    child.stderr!.on('data', (c: Buffer) => {
      log.write(c);
      rc.stderrTail.push(...c.toString().split('\n').filter(Boolean));
      rc.stderrTail.splice(0, Math.max(0, rc.stderrTail.length - 20));
    });
    void rc.exited.then((e) => {
      rc.exit = { ...e, at: Date.now() };
      if (this.stopping) return;
      this.opts.onExit?.(rc);
      if (spec.restart !== false) this.scheduleRestart(rc, Date.now() - startedAt);
    });
    return rc;
  }

  private scheduleRestart(rc: RunningChild, ranMs: number): void {
    const name = rc.spec.name;
    let backoff = this.backoffs.get(name);
    if (!backoff) this.backoffs.set(name, (backoff = new Backoff(this.opts.restartBackoff ?? { initialMs: 200, maxMs: 10_000, jitter: 0.2 })));
    if (ranMs >= (this.opts.stableMs ?? 10_000)) backoff.reset();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stopping) return;
      const next = this.spawn(rc.spec, rc.restarts + 1);
      const i = this.children.indexOf(rc);
      if (i >= 0) this.children[i] = next;
      else this.children.push(next);
      const ready = next.spec.readyUrl ? this.waitReady(next, 60_000) : Promise.resolve();
      ready.then(
        () => !this.stopping && this.opts.onRestart?.(next),
        () => undefined, // it exited or never got ready: its exit schedules the next attempt
      );
    }, backoff.next());
    this.timers.add(timer);
  }

  private async waitReady(rc: RunningChild, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (rc.exit) throw new Error(`${rc.spec.name} exited (code ${rc.exit.code}, signal ${rc.exit.signal}) before it was ready:\n  ${rc.stderrTail.join('\n  ')}`);
      try {
        if (rc.spec.readySocket ? await okOverSocket(rc.spec.readySocket, new URL(rc.spec.readyUrl!).pathname) : (await fetch(rc.spec.readyUrl!, { signal: AbortSignal.timeout(1000) })).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${rc.spec.name} not ready at ${rc.spec.readyUrl}${rc.spec.readySocket ? ` over ${rc.spec.readySocket}` : ''} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of [...this.children].reverse()) {
      if (c.exit) continue;
      c.child.kill('SIGTERM');
      const t = setTimeout(() => c.child.kill('SIGKILL'), graceMs);
      await c.exited;
      clearTimeout(t);
    }
    await Promise.all([...this.logs.values()].map((l) => new Promise<void>((r) => l.end(() => r()))));
  }
}

/** Whether a GET of `path` over the Unix socket answers 2xx within a second (fetch cannot use a socket). */
function okOverSocket(socketPath: string, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(false)); // not listening yet
    req.end();
  });
}
