import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { waitFor } from '@octo-mesh/runtime';
import type { AgentStatus } from '../status.js';

/** Real processes for the agent's tests: the built agent, upstream servers, and the proxy config. */
export const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
export const AGENT_MAIN = join(ROOT, 'packages/lego-agent/dist/main.js');

/**
 * Builds the agent (and what it depends on) once at a time: test files run in parallel workers,
 * and two `tsc -b` writing the same outputs would race. A worker that finds the lock waits for
 * the other's build.
 */
export function buildAgent(): void {
  const lock = join(ROOT, 'packages/lego-agent/.build-lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock older than the deadline is a crashed build's: take over.
      if (Date.now() - statSync(lock).mtimeMs > 120_000 || Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    // The proxy too: packages are bundled from its build (see proxy-package/src/build.ts).
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/lego-agent', 'packages/proxy'], { cwd: ROOT });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** The proxy's static config: `/stream*` to an HTTP/2 upstream, everything else (and WebSocket) to an HTTP/1.1 one. */
export function proxySection(h1Port: number, h2Port: number): Record<string, unknown> {
  const cluster = (name: string, port: number, h2 = false) => ({
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...(h2 ? { http2_protocol_options: {} } : {}),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  });
  return {
    accessLog: 'off',
    v8Helpers: 'normal',
    logLevel: 'warn',
    staticResources: {
      listeners: [
        {
          name: 'outbound',
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'outbound',
                    upgrade_configs: [{ upgrade_type: 'websocket' }],
                    route_config: {
                      name: 'outbound',
                      virtual_hosts: [
                        {
                          name: 'all',
                          domains: ['*'],
                          routes: [
                            { match: { prefix: '/stream' }, route: { cluster: 'h2app', timeout: '0s' } },
                            { match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } },
                          ],
                        },
                      ],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router' }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [cluster('app', h1Port), cluster('h2app', h2Port, true)],
    },
  };
}

export interface Upstreams {
  h1Port: number;
  h2Port: number;
  close(): Promise<void>;
}

/** HTTP/1.1 upstream (`/slow` waits 600 ms; WebSocket upgrades echo) and an HTTP/2 one whose `/stream` sends a chunk every 100 ms until closed. */
export async function upstreams(): Promise<Upstreams> {
  const sockets = new Set<net.Socket>();
  const h1 = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end(`ok ${req.url}`), req.url === '/slow' ? 600 : 0));
  });
  h1.keepAliveTimeout = 60_000;
  h1.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  const h2 = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    if (String(headers[':path']).startsWith('/stream')) {
      const t = setInterval(() => stream.write('tick\n'), 100);
      stream.on('close', () => clearInterval(t));
    } else stream.end('ok');
  });
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  return {
    h1Port: (h1.address() as AddressInfo).port,
    h2Port: (h2.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => h1.close(() => r()));
      await new Promise<void>((r) => h2.close(() => r()));
    },
  };
}

export interface RunningAgent {
  child: ChildProcess;
  adminPort: number;
  outboundPort: number;
  stderr: () => string;
  exited: Promise<number | null>;
  status(): Promise<AgentStatus>;
  /** Waits until the status satisfies `ok`. */
  waitStatus(what: string, ok: (s: AgentStatus) => boolean, timeoutMs?: number): Promise<AgentStatus>;
  /** The serving proxy child: pid and admin port. */
  proxy(): Promise<{ pid: number | null; adminPort: number | null; version: string }>;
  get(path: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

/** Starts the built agent with `config` (YAML file) and waits for `octo.agent.started`. */
export async function startAgent(dir: string, name: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<RunningAgent> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ adminPort: 0, outboundPort: 0, inboundPort: 0, inboundHost: '127.0.0.1', stateDir: join(dir, `${name}-state`), logLevel: 'warn', ...config }));
  const child = spawn(process.execPath, [AGENT_MAIN, '--config', file], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const started = await Promise.race([
    new Promise<{ adminPort: number; sockets: { id: string; address: string }[] }>((resolve) =>
      child.on('message', (m: { type?: string }) => {
        if (m.type === 'octo.agent.started') resolve(m as never);
      }),
    ),
    exited.then((code) => {
      throw new Error(`agent exited with ${code} before it started: ${stderr}`);
    }),
  ]);
  const admin = `http://127.0.0.1:${started.adminPort}`;
  const get = async (path: string) => {
    const r = await fetch(`${admin}${path}`);
    return { status: r.status, body: await r.text() };
  };
  const status = async () => JSON.parse((await get('/status')).body) as AgentStatus;
  return {
    child,
    adminPort: started.adminPort,
    outboundPort: Number(started.sockets.find((s) => s.id === 'outbound')!.address.split(':').pop()),
    stderr: () => stderr,
    exited,
    status,
    waitStatus: (what, ok, timeoutMs = 30_000) => waitFor(what, status, ok, { timeoutMs, intervalMs: 50, retryErrors: true, detail: () => stderr.slice(-3000) }),
    proxy: async () => JSON.parse((await get('/proxy')).body) as { pid: number | null; adminPort: number | null; version: string },
    get,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** One HTTP/1.1 request on `agent` (keep-alive pool); resolves status and body. */
export function get1(port: number, path: string, agent: http.Agent | false = false): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { host: 'svc' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Whether a process is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
