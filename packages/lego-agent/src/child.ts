import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '@octo-mesh/runtime';
import type { ListeningSockets } from './sockets.js';

/**
 * Node wraps a received socket handle in a `net.Socket` that starts reading at once; the agent
 * only passes it on, and bytes it read would be lost with the handle (the client's next request).
 * The read is stopped before the event loop polls again, so they stay in the kernel for the new
 * proxy. `pause()` alone stops the stream, not the handle's reads, for a socket like this one.
 */
function holdReads(socket: net.Socket): void {
  const h = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  socket.pause();
  if (h && typeof h.readStop === 'function') {
    h.reading = false;
    h.readStop();
  }
}

/** Messages a proxy child sends (see the proxy README, "LEGO seam"). */
export type ChildMessage =
  | { type: 'octo.listener.request'; name: string; id?: string }
  | { type: 'octo.proxy.started'; adminPort: number; listeners: { name: string; address: string }[]; version?: string; adopts?: string[] }
  | { type: 'octo.connection'; listener: string }
  | { type: 'octo.upgrade-target'; target: unknown };

/**
 * Environment every proxy child gets unless the agent's own environment (or `env`) says otherwise.
 * `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates its own malloc arena (up to 8 per
 * core), and V8's compiler and GC helper threads allocate in bursts — the warm-up before a swap
 * compiles the whole data path — then keep the freed memory in their arenas for the process's
 * life. Two arenas: ~3–9 MB less RSS per proxy (docs/footprint.md, round 5).
 */
export const PROXY_CHILD_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

export interface ProxyChildOptions {
  /** The script forked (a package's entry or the local proxy). */
  entry: string;
  args: string[];
  sockets: ListeningSockets;
  logger: Logger;
  /** Label for logs and status (the package version, or `bootstrap`). */
  version: string;
  sha256: string;
  env?: NodeJS.ProcessEnv;
  /** Node/V8 flags of the child (the agent's `proxyNodeFlags`). */
  execArgv?: string[];
}

/**
 * One proxy process under the agent. Emits `started` (admin port known), `target` (an
 * UpgradeTarget the proxy accepted), and `exit` (code, signal). The agent answers its socket
 * requests with the held listening sockets.
 */
export class ProxyChild extends EventEmitter {
  readonly proc: ChildProcess;
  adminPort: number | undefined;
  /** The version the proxy itself reports (PROXY_VERSION), once started. */
  reportedVersion: string | undefined;
  /** The proxy serves kept-alive connections handed over by the one it replaces (`adopts: ['connections']`). */
  adoptsConnections = false;
  readonly startedAt = Date.now();
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  draining = false;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly started: Promise<number>;

  constructor(readonly opts: ProxyChildOptions) {
    super();
    const log = opts.logger;
    this.proc = fork(opts.entry, opts.args, {
      execPath: process.execPath,
      execArgv: opts.execArgv ?? [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...PROXY_CHILD_ENV, ...(opts.env ?? process.env) },
      serialization: 'json',
    });
    this.exit = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
        this.emit('exit', code, signal);
      });
    });
    this.started = new Promise((resolve, reject) => {
      this.once('started', resolve);
      void this.exit.then((e) => reject(new Error(`proxy exited before it started (code ${e.code}, signal ${e.signal})`)));
    });
    this.started.catch((err: Error) => log.debug('proxy child did not start', { pid: this.pid, error: err.message }));
    this.proc.on('error', (err) => log.error('proxy child process error', { pid: this.pid, version: opts.version, error: err.message }));
    this.proc.on('message', (m: ChildMessage, handle?: unknown) => this.onMessage(m, handle));
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private onMessage(m: ChildMessage, handle?: unknown): void {
    const log = this.opts.logger;
    if (m?.type === 'octo.listener.request') {
      const s = this.opts.sockets.find(m.name, m.id);
      if (!s) {
        log.error('proxy asked for a socket the agent does not hold', { pid: this.pid, name: m.name, id: m.id });
        return;
      }
      this.send({ type: 'octo.listener', name: s.name, id: s.id }, s.handle);
    } else if (m?.type === 'octo.proxy.started') {
      this.adminPort = m.adminPort;
      this.reportedVersion = m.version;
      this.adoptsConnections = Array.isArray(m.adopts) && m.adopts.includes('connections');
      this.emit('started', m.adminPort);
    } else if (m?.type === 'octo.upgrade-target') {
      this.emit('target', m.target);
    } else if (m?.type === 'octo.connection') {
      // A draining proxy's idle kept-alive connection, for the agent to pass to the new one.
      if (handle instanceof net.Socket && typeof m.listener === 'string') {
        holdReads(handle);
        this.emit('connection', m.listener, handle);
      }
      else log.error('octo.connection from a proxy without a socket or listener name', { pid: this.pid, listener: m.listener });
    }
  }

  /** Sends over IPC; a closed channel (the child is going) is logged, not thrown — or given to `done`. */
  send(msg: object, handle?: object, done?: (err: Error | null) => void): void {
    if (!this.proc.connected) return done?.(new Error('IPC channel closed'));
    this.proc.send(msg, handle as never, (err: Error | null) => {
      if (done) return done(err);
      if (err) this.opts.logger.warn('IPC send to proxy failed', { pid: this.pid, type: (msg as { type?: string }).type, error: err.message });
    });
  }

  /**
   * Asks the proxy to drain for a handover and exit; kills it when it takes longer than `graceMs`.
   * `connections`: its successor adopts kept-alive connections, so it sends its idle ones back
   * (`connection` events) instead of closing them.
   */
  async drain(timeoutMs: number, spreadMs = 0, graceMs = timeoutMs + 5_000, connections = false): Promise<void> {
    this.draining = true;
    if (this.exited) return;
    this.send({ type: 'octo.drain', timeoutMs, spreadMs, ...(connections ? { connections: true } : {}) });
    const t = setTimeout(() => {
      this.opts.logger.warn('draining proxy did not exit in time; killing it', { pid: this.pid, graceMs });
      this.kill();
    }, graceMs);
    await this.exit;
    clearTimeout(t);
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}
