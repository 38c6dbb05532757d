/**
 * The control plane a scenario runs against. {@link EmbeddedControlPlane} starts the real thing on
 * loopback — a dispatcher (store persisted in its work directory, so a restart keeps what the
 * scenario applied), a meta server and N pilots, each a child process from its built
 * `dist/main.js` — and is the only one that lets a scenario kill and restart components: it
 * signals exactly the pids it started, never anything found by name. {@link ExternalControlPlane}
 * is a mesh someone else runs (addresses only; faults refused).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@octo-mesh/runtime';

export interface ComponentInfo {
  name: string;
  /** 'dispatcher' | 'meta-server' | 'pilot'. */
  role: string;
  pid: number | undefined;
  running: boolean;
}

export interface ControlPlane {
  readonly dispatcherAddress: string;
  readonly metaAddress: string;
  readonly metaAdminAddress: string;
  /** Processes whose CPU and memory can be read (pid known). */
  components(): ComponentInfo[];
  /** Fault injection; throws when this control plane is not the runner's own. */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  restart(name: string, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

interface Child {
  name: string;
  role: string;
  script: string;
  args: string[];
  readyUrl: string;
  proc: ChildProcess | undefined;
  /** Set when it exited; a kill we asked for is not an error. */
  exited: boolean;
}

export interface EmbeddedOptions {
  /** The repository root (packages/<pkg>/dist/main.js). */
  root: string;
  pilots: number;
  /** Where logs and the dispatcher's store go; default a fresh temp directory, removed on stop. */
  workDir?: string;
  logLevel?: string;
  /** Node binary for the children; default this process's. */
  nodeBinary?: string;
  /** Extra flags per role, after the runner's own (e.g. `{ 'meta-server': ['--pilot-ttl-ms', '10000'] }` in a bench). */
  extraArgs?: Partial<Record<'dispatcher' | 'meta-server' | 'pilot', string[]>>;
}

/** Control planes started and not stopped yet, for {@link stopEmbeddedControlPlanes}. */
const running = new Set<EmbeddedControlPlane>();

/** Stops every control plane this process started (the CLI's SIGTERM/SIGINT path). */
export async function stopEmbeddedControlPlanes(): Promise<void> {
  await Promise.allSettled([...running].map((c) => c.stop()));
}

const PILOT_IDS = ['pilot-a', 'pilot-b', 'pilot-c', 'pilot-d', 'pilot-e', 'pilot-f', 'pilot-g', 'pilot-h'];

export class EmbeddedControlPlane implements ControlPlane {
  dispatcherAddress = '';
  metaAddress = '';
  metaAdminAddress = '';
  readonly children: Child[] = [];
  readonly workDir: string;
  private readonly ownWorkDir: boolean;

  constructor(private readonly opts: EmbeddedOptions) {
    this.ownWorkDir = !opts.workDir;
    this.workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), 'octo-mock-sidecar-'));
    mkdirSync(join(this.workDir, 'logs'), { recursive: true });
  }

  /** Starts dispatcher → meta server → pilots, each waited for on its ready URL. */
  async start(): Promise<void> {
    running.add(this);
    const a = (p: number) => `127.0.0.1:${p}`;
    const level = ['--log-level', this.opts.logLevel ?? 'warn'];
    const [dg, da, mg, ma] = [await freePort(), await freePort(), await freePort(), await freePort()];
    this.dispatcherAddress = a(dg);
    this.metaAddress = a(mg);
    this.metaAdminAddress = a(ma);
    const dist = (pkg: string) => join(this.opts.root, 'packages', pkg, 'dist', 'main.js');
    await this.launch({
      name: 'dispatcher',
      role: 'dispatcher',
      script: dist('dispatcher'),
      args: ['--grpc-port', `${dg}`, '--admin-port', `${da}`, '--data-dir', join(this.workDir, 'dispatcher'), ...level, ...(this.opts.extraArgs?.dispatcher ?? [])],
      readyUrl: `http://${a(da)}/readyz`,
    });
    await this.launch({
      name: 'meta-server',
      role: 'meta-server',
      script: dist('meta-server'),
      args: ['--grpc-port', `${mg}`, '--admin-port', `${ma}`, '--dispatcher-address', this.dispatcherAddress, ...level, ...(this.opts.extraArgs?.['meta-server'] ?? [])],
      readyUrl: `http://${a(ma)}/healthz`,
    });
    const pilots = [];
    for (let i = 0; i < this.opts.pilots; i++) {
      const [xds, admin] = [await freePort(), await freePort()];
      pilots.push({
        name: PILOT_IDS[i]!,
        role: 'pilot',
        script: dist('pilot'),
        args: [
          '--pilot-id', PILOT_IDS[i]!,
          '--xds-host', '127.0.0.1', '--xds-port', `${xds}`,
          '--admin-host', '127.0.0.1', '--admin-port', `${admin}`,
          '--dispatcher-address', this.dispatcherAddress,
          '--meta-server-address', this.metaAddress,
          '--shutdown-grace-seconds', '1',
          ...level,
          ...(this.opts.extraArgs?.pilot ?? []),
        ],
        readyUrl: `http://${a(admin)}/readyz`,
      });
    }
    await Promise.all(pilots.map((p) => this.launch(p)));
    // Sidecars locate through the meta server: wait until it knows every pilot.
    await waitFor(
      `meta server sees ${this.opts.pilots} pilots`,
      async () => ((await (await fetch(`http://${this.metaAdminAddress}/debug/pilots`, { signal: AbortSignal.timeout(2000) })).json()) as unknown[]).length,
      (n) => n >= this.opts.pilots,
      { timeoutMs: 20_000, intervalMs: 100, retryErrors: true },
    );
  }

  private async launch(spec: Omit<Child, 'proc' | 'exited'>, timeoutMs = 30_000): Promise<void> {
    let child = this.children.find((c) => c.name === spec.name);
    if (!child) {
      child = { ...spec, proc: undefined, exited: false };
      this.children.push(child);
    }
    const log = openSync(join(this.workDir, 'logs', `${spec.name}.log`), 'a');
    const proc = spawn(this.opts.nodeBinary ?? process.execPath, [spec.script, ...spec.args], { stdio: ['ignore', log, log], cwd: this.opts.root });
    child.proc = proc;
    child.exited = false;
    const c = child;
    proc.once('exit', () => {
      if (c.proc === proc) c.exited = true;
    });
    try {
      await waitFor(
        `${spec.name} ready (${spec.readyUrl})`,
        async () => {
          if (c.exited) throw new Error(`${spec.name} exited during start (log: ${join(this.workDir, 'logs', `${spec.name}.log`)})`);
          return (await fetch(spec.readyUrl, { signal: AbortSignal.timeout(2000) })).status;
        },
        (s) => s === 200,
        { timeoutMs, intervalMs: 100, retryErrors: true },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; see ${join(this.workDir, 'logs', `${spec.name}.log`)}`);
    }
  }

  components(): ComponentInfo[] {
    return this.children.map((c) => ({ name: c.name, role: c.role, pid: c.exited ? undefined : c.proc?.pid, running: !c.exited && !!c.proc }));
  }

  private find(name: string): Child {
    const c = this.children.find((x) => x.name === name);
    if (!c) throw new Error(`no component ${name} (have ${this.children.map((x) => x.name).join(', ')})`);
    return c;
  }

  async kill(name: string, signal: NodeJS.Signals): Promise<void> {
    const c = this.find(name);
    const proc = c.proc;
    if (!proc || c.exited) throw new Error(`${name} is not running`);
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(signal);
    await gone;
  }

  async restart(name: string, timeoutMs: number): Promise<void> {
    const c = this.find(name);
    if (!c.exited) throw new Error(`${name} is still running (pid ${c.proc?.pid}); kill it first`);
    await this.launch(c, timeoutMs);
  }

  async stop(): Promise<void> {
    running.delete(this);
    for (const c of [...this.children].reverse()) {
      const proc = c.proc;
      if (!proc || c.exited) continue;
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    if (this.ownWorkDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** A control plane someone else runs: the runner only talks to it. */
export class ExternalControlPlane implements ControlPlane {
  constructor(
    readonly dispatcherAddress: string,
    readonly metaAddress: string,
    readonly metaAdminAddress: string,
  ) {}
  components(): ComponentInfo[] {
    return [];
  }
  kill(name: string): Promise<void> {
    return Promise.reject(new Error(`cannot kill ${name}: the runner kills only processes it started (run without --dispatcher/--meta to have it start the control plane)`));
  }
  restart(name: string): Promise<void> {
    return Promise.reject(new Error(`cannot restart ${name}: the runner restarts only processes it started`));
  }
  async stop(): Promise<void> {}
}
