import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, waitFor } from '@octo-mesh/runtime';
import { pilotConfig } from '../config.js';
import { startPilot, type RunningPilot } from '../main.js';
import type { MemoryMeshSource } from '../source.js';

// What the pilot tests that run the real OCTO proxy (its built executable, as a child process)
// share: building it, a quiet pilot on loopback, the sidecar child and its shutdown.
const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
export const PROXY_MAIN = join(ROOT, 'packages/proxy/dist/main.js');

/** Builds packages/proxy (tsc still emits on type errors: only a missing executable fails). */
export function buildProxy(): void {
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: ROOT, stdio: 'pipe' });
  } catch (err) {
    if (!existsSync(PROXY_MAIN)) throw new Error(`cannot build the proxy: ${(err as { stdout?: Buffer }).stdout?.toString() ?? err}`);
  }
}

/** A pilot on loopback ports (xDS on `xdsPort`, default any) with short debounce and no log output, fed by `source`. */
export function quietPilot(source: MemoryMeshSource, xdsPort = 0): Promise<RunningPilot> {
  const config = pilotConfig.parse({ xdsPort, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', debounceQuietMs: 20, debounceMaxMs: 100, shutdownGraceSeconds: 0.2 });
  return startPilot(config, createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() })), source);
}

export interface SidecarStarted {
  adminPort: number;
  listeners: { name: string; address: string }[];
}

/**
 * Starts the proxy as a sidecar of `workload` in namespace demo, configured by the pilot at
 * `xdsPort` (with `dependencies` declared, if given, and any further flags in `args`); resolves
 * once it reports it started.
 */
export async function startSidecar(xdsPort: number, opts: { nodeId: string; workload: string; dependencies?: string; args?: string[] }): Promise<{ child: ChildProcess; started: SidecarStarted }> {
  const child = spawn(
    process.execPath,
    [
      PROXY_MAIN,
      ...['--xds-address', `127.0.0.1:${xdsPort}`, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--node-id', opts.nodeId, '--namespace', 'demo', '--workload', opts.workload],
      ...(opts.dependencies !== undefined ? ['--dependencies', opts.dependencies] : []),
      ...['--access-log', 'off', ...(opts.args ?? [])],
    ],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, OCTO_LOG_LEVEL: 'error' } },
  );
  const started = await new Promise<SidecarStarted>((resolve, reject) => {
    child.on('message', (m: { type?: string }) => m.type === 'octo.proxy.started' && resolve(m as never));
    child.on('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
  });
  return { child, started };
}

/** Stops a child with SIGTERM and waits for it to exit (nothing to do when it already has). */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Polls `probe` until it yields a value (errors count as not yet). */
export const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> =>
  waitFor(what, probe, (v) => v !== undefined, { timeoutMs, intervalMs: 50, retryErrors: true }) as Promise<T>;
