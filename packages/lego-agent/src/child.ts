import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from '@octo-mesh/runtime';
import type { ListeningSockets } from './sockets.js';

/** Messages a proxy child sends (see the proxy README, "LEGO seam"). */
export type ChildMessage =
  | { type: 'octo.listener.request'; name: string; id?: string }
  | { type: 'octo.proxy.started'; adminPort: number; listeners: { name: string; address: string }[]; version?: string }
  | { type: 'octo.upgrade-target'; target: unknown };

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
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: opts.env ?? process.env,
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
    this.proc.on('message', (m: ChildMessage) => this.onMessage(m));
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private onMessage(m: ChildMessage): void {
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
      this.emit('started', m.adminPort);
    } else if (m?.type === 'octo.upgrade-target') {
      this.emit('target', m.target);
    }
  }

  /** Sends over IPC; a closed channel (the child is going) is logged, not thrown. */
  send(msg: object, handle?: object): void {
    if (!this.proc.connected) return;
    this.proc.send(msg, handle as never, (err: Error | null) => {
      if (err) this.opts.logger.warn('IPC send to proxy failed', { pid: this.pid, type: (msg as { type?: string }).type, error: err.message });
    });
  }

  /** Asks the proxy to drain for a handover and exit; kills it when it takes longer than `graceMs`. */
  async drain(timeoutMs: number, spreadMs = 0, graceMs = timeoutMs + 5_000): Promise<void> {
    this.draining = true;
    if (this.exited) return;
    this.send({ type: 'octo.drain', timeoutMs, spreadMs });
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
