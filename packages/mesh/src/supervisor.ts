import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export interface ChildSpec {
  /** Unique name, e.g. `pilot-a`; also the log file name. */
  name: string;
  /** A JavaScript entry point run with this Node. */
  script: string;
  args: string[];
  env?: Record<string, string>;
  /** Polled until it answers 2xx: the child is ready. */
  readyUrl?: string;
}

export interface RunningChild {
  spec: ChildSpec;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null; at: number };
  /** Last lines of stderr, for error messages. */
  stderrTail: string[];
}

/**
 * Starts and stops the embedded mesh's child processes. Each child's stdout and stderr go to
 * `<logDir>/<name>.log` (JSON lines, as every component logs). Children are not restarted: the
 * demo kills pilots on purpose. `stopAll` sends SIGTERM in reverse start order and SIGKILL to
 * whatever has not exited after the grace period.
 */
export class Supervisor {
  private readonly children: RunningChild[] = [];
  private readonly logs: WriteStream[] = [];

  constructor(
    private readonly logDir: string,
    private readonly onExit?: (c: RunningChild) => void,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  get running(): readonly RunningChild[] {
    return this.children;
  }

  find(name: string): RunningChild | undefined {
    return this.children.find((c) => c.spec.name === name);
  }

  /** Spawns a child and waits until it is ready (or fails when it exits or is not ready in time). */
  async start(spec: ChildSpec, readyTimeoutMs = 30_000): Promise<RunningChild> {
    const log = createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: 'a' });
    this.logs.push(log);
    const child = spawn(process.execPath, [spec.script, ...spec.args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...spec.env },
    });
    const rc: RunningChild = {
      spec,
      child,
      pid: child.pid ?? -1,
      stderrTail: [],
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
      this.onExit?.(rc);
    });
    this.children.push(rc);
    if (spec.readyUrl) await this.waitReady(rc, readyTimeoutMs);
    return rc;
  }

  private async waitReady(rc: RunningChild, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (rc.exit) throw new Error(`${rc.spec.name} exited (code ${rc.exit.code}, signal ${rc.exit.signal}) before it was ready:\n  ${rc.stderrTail.join('\n  ')}`);
      try {
        const res = await fetch(rc.spec.readyUrl!, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${rc.spec.name} not ready at ${rc.spec.readyUrl} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stopAll(graceMs = 5000): Promise<void> {
    for (const c of [...this.children].reverse()) {
      if (c.exit) continue;
      c.child.kill('SIGTERM');
      const t = setTimeout(() => c.child.kill('SIGKILL'), graceMs);
      await c.exited;
      clearTimeout(t);
    }
    await Promise.all(this.logs.map((l) => new Promise<void>((r) => l.end(() => r()))));
  }
}
