import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { SCHED_IDLE, cpuGroupMembers, threadsOf } from './helper-threads.js';
import { httpListener, routeConfig, staticCluster } from './test-support/resources.js';
import { httpUpstream, request, type Upstream } from './test-support/upstreams.js';

// The real executable as a child process: bootstrap file, config errors, the access log,
// SIGTERM drain, and sockets handed over by a parent (the LEGO agent's seam).
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/proxy/dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'octo-proxy-main-'));

interface Started {
  child: ChildProcess;
  stdout: string[];
  stderr: string;
  started: Promise<{ adminPort: number; listeners: { name: string; address: string }[] }>;
  exited: Promise<number | null>;
}

/**
 * A new CPU cgroup (v1 `cpu` hierarchy, or v2), empty, for a process to run in alone. Needs root
 * and a writable cgroupfs, as CI's machine has (it fails, naming the path, where it cannot).
 */
function newCpuGroup(): string {
  const v1 = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f.length >= 3 && f[1]!.split(',').includes('cpu'));
  const dir = join(v1 ? `/sys/fs/cgroup/${v1[1]}` : '/sys/fs/cgroup', `octo-proxy-test-${process.pid}-${Date.now()}`);
  mkdirSync(dir);
  return dir;
}

/** Starts the proxy; with `cgroupDir`, the process joins that cgroup before it execs node. */
function run(args: string[], onMessage?: (m: unknown, child: ChildProcess) => void, extraFds: number[] = [], env: Record<string, string> = {}, cgroupDir?: string): Started {
  const argv = cgroupDir ? ['-c', `echo $$ > '${cgroupDir}/cgroup.procs' && exec "$0" "$@"`, process.execPath, MAIN, ...args] : [MAIN, ...args];
  const child = spawn(cgroupDir ? '/bin/sh' : process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc', ...extraFds], env: { ...process.env, OCTO_LOG_LEVEL: 'warn', ...env } });
  const s: Started = {
    child,
    stdout: [],
    stderr: '',
    started: new Promise((resolve) => {
      child.on('message', (m: { type?: string }) => {
        if (m.type === 'octo.proxy.started') resolve(m as never);
        onMessage?.(m, child);
      });
    }),
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    s.stdout.push(...lines);
  });
  child.stderr!.on('data', (c: Buffer) => (s.stderr += c.toString()));
  return s;
}

const portOf = (listeners: { name: string; address: string }[], name: string) => Number(listeners.find((l) => l.name === name)!.address.split(':').pop());

describe('octo-proxy executable', () => {
  let up: Upstream;
  let bootstrap: string;

  beforeAll(async () => {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: ROOT });
    up = await httpUpstream('app', (req, res) => {
      req.resume();
      const delay = req.url === '/slow' ? 600 : 0;
      setTimeout(() => res.end(`served ${req.url}`), delay);
    });
    bootstrap = join(dir, 'bootstrap.yaml');
    writeFileSync(
      bootstrap,
      stringify({
        nodeId: 'sidecar~test',
        adminPort: 0,
        outboundPort: 0,
        inboundHost: '127.0.0.1',
        inboundPort: 0,
        drainTimeoutMs: 3000,
        staticResources: {
          listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) })],
          clusters: [staticCluster('app', [up.port])],
        },
      }),
    );
  }, 60_000);
  afterAll(() => up.close());

  it('refuses a bad setting with a message naming the field', async () => {
    const s = run(['--config', bootstrap, '--admin-port', '99999']);
    expect(await s.exited).toBe(2);
    expect(s.stderr).toContain('adminPort');
    expect(s.stderr).toContain('flag --admin-port');
  });

  it('refuses a bad static resource naming where it is', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, stringify({ adminPort: 0, outboundPort: 0, inboundPort: 0, staticResources: { clusters: [{ name: 'x', type: 'EDS', lb_policy: 'MAGLEV' }] } }));
    const s = run(['--config', bad]);
    expect(await s.exited).toBe(1);
    expect(s.stderr).toContain('static_resources.clusters[0]: cluster "x": lb_policy: unsupported MAGLEV');
  });

  it('serves from a bootstrap file, logs JSON access lines, and drains in-flight requests on SIGTERM', async () => {
    const s = run(['--config', bootstrap]);
    const { adminPort, listeners } = await s.started;
    const port = portOf(listeners, 'outbound');
    expect((await request(port, { path: '/hello' })).body).toBe('served /hello');
    expect((await fetch(`http://127.0.0.1:${adminPort}/ready`)).status).toBe(200);
    const prom = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text();
    expect(prom).toMatch(/octo_proxy_requests_total\{listener="outbound",route="",cluster="app",code="2xx"\} 1/);
    const slow = request(port, { path: '/slow' });
    await new Promise((r) => setTimeout(r, 150));
    s.child.kill('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect(await s.exited).toBe(0);
    const access = s.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['type'] === 'access');
    expect(access.map((a) => a['path'])).toEqual(['/hello', '/slow']);
    expect(access[0]).toMatchObject({ listener: 'outbound', status: 200, cluster: 'app', method: 'GET' });
    expect(access[0]!['trace_id']).toMatch(/^[0-9a-f]{32}$/);
  }, 15_000);

  it('serves through node:http on both sides when the lean codec is switched off', async () => {
    const s = run(['--config', bootstrap], undefined, [], { OCTO_PROXY_UPSTREAM_CODEC: 'node', OCTO_PROXY_DOWNSTREAM_CODEC: 'node' });
    const { listeners } = await s.started;
    const port = portOf(listeners, 'outbound');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) expect((await request(port, { path: `/node${i}`, agent })).body).toBe(`served /node${i}`);
    expect((await request(port, { method: 'POST', path: '/post', body: 'x'.repeat(100_000) })).status).toBe(200);
    agent.destroy();
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  }, 15_000);

  it('runs V8 helper threads at SCHED_IDLE only in a CPU group of its own (auto) or when told to, the event loop always at normal priority', async () => {
    const policies = async (args: string[], cgroupDir?: string, onMessage?: Parameters<typeof run>[1]) => {
      const s = run(['--config', bootstrap, ...args], onMessage, [], {}, cgroupDir);
      await s.started;
      const threads = threadsOf(s.child.pid!);
      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
      return {
        main: threads.find((t) => t.tid === s.child.pid)!.policy,
        helpers: threads.filter((t) => t.comm === 'V8Worker').map((t) => t.policy),
      };
    };
    // This test's own process shares the proxy's CPU group here, so auto leaves the helpers alone
    // (issue 18: a SCHED_IDLE helper beside a busy program stalls GC for seconds).
    const shared = cpuGroupMembers();
    expect(Array.isArray(shared) && shared.some((m) => m.pid === process.pid)).toBe(true);
    const auto = await policies([]);
    expect(auto.main).toBe(0);
    expect(auto.helpers.length).toBeGreaterThan(0);
    expect(auto.helpers.every((p) => p === 0)).toBe(true);
    const idle = await policies(['--v8-helpers', 'idle']);
    expect(idle.main).toBe(0);
    expect(idle.helpers.length).toBeGreaterThan(0);
    expect(idle.helpers.every((p) => p === SCHED_IDLE)).toBe(true);
    const normal = await policies(['--v8-helpers', 'normal']);
    expect(normal.helpers.length).toBeGreaterThan(0);
    expect(normal.helpers.every((p) => p === 0)).toBe(true);
    // A CPU group of its own (as a pod's container is): auto idles the helpers.
    const group = newCpuGroup();
    try {
      const alone = await policies([], group);
      expect(alone.main).toBe(0);
      expect(alone.helpers.length).toBeGreaterThan(0);
      expect(alone.helpers.every((p) => p === SCHED_IDLE)).toBe(true);
      // Under the LEGO agent (sockets from the parent) a swap puts a second, busy proxy in the
      // group: auto leaves the helpers at normal priority there (bench/lego round 3).
      const listeners = new Map<string, net.Server>();
      for (const name of ['outbound', 'inbound']) {
        const srv = net.createServer();
        await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
        listeners.set(name, srv);
      }
      try {
        const underAgent = await policies(['--sockets-from', 'parent'], group, (msg, child) => {
          const req = msg as { type?: string; name?: string };
          if (req.type === 'octo.listener.request') child.send({ type: 'octo.listener', name: req.name }, listeners.get(req.name!)!);
        });
        expect(underAgent.helpers.length).toBeGreaterThan(0);
        expect(underAgent.helpers.every((p) => p === 0)).toBe(true);
      } finally {
        for (const srv of listeners.values()) srv.close();
      }
    } finally {
      rmdirSync(group);
    }
  }, 30_000);

  it('listens on inherited file descriptors', async () => {
    const servers = await Promise.all(
      [0, 1].map(async () => {
        const srv = net.createServer();
        await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
        return srv;
      }),
    );
    const fds = servers.map((srv) => (srv as unknown as { _handle: { fd: number } })._handle.fd);
    // Child fds: 0-2 stdio, 3 the IPC channel, then 4 and 5.
    const s = run(['--config', bootstrap, '--sockets-from', 'fd', '--outbound-fd', '4', '--inbound-fd', '5'], undefined, fds);
    await s.started;
    const port = (servers[0]!.address() as net.AddressInfo).port;
    for (const srv of servers) srv.close();
    expect((await request(port, { path: '/inherited' })).body).toBe('served /inherited');
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  }, 15_000);

  it('takes its listening sockets from the parent process (LEGO agent seam)', async () => {
    const servers = new Map<string, net.Server>();
    for (const name of ['outbound', 'inbound']) {
      const srv = net.createServer();
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      servers.set(name, srv);
    }
    const s = run(['--config', bootstrap, '--sockets-from', 'parent'], (m, child) => {
      const msg = m as { type?: string; name?: string };
      if (msg.type === 'octo.listener.request') child.send({ type: 'octo.listener', name: msg.name }, servers.get(msg.name!)!);
    });
    await s.started;
    const port = (servers.get('outbound')!.address() as net.AddressInfo).port;
    // The parent stops accepting on its copy; the child now serves the same socket.
    servers.get('outbound')!.close();
    expect((await request(port, { path: '/handed-over' })).body).toBe('served /handed-over');
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    for (const srv of servers.values()) srv.close();
  }, 15_000);

  it('under the agent, warms up through its private path before accepting on the sockets; a bad bound names the field', async () => {
    const bad = run(['--config', bootstrap, '--warm-up-budget-ms', '60000']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr).toContain('warmUpBudgetMs');
    // Bound raw handles, held as the LEGO agent holds them: the proxy accepts on them only once
    // it has warmed up (a listening net.Server from a parent accepts at once, with no warm-up).
    const createServerHandle = (net as unknown as { _createServerHandle: (h: string, p: number, t: number) => { getsockname(o: object): void; close(): void } })._createServerHandle;
    const handles = new Map(['outbound', 'inbound'].map((n) => [n, createServerHandle('127.0.0.1', 0, 4)]));
    // The full budget allowed, so the 40 round trips finish on a busy machine too (the default
    // 300 ms stops earlier there, by design).
    const s = run(['--config', bootstrap, '--sockets-from', 'parent', '--warm-up-requests', '40', '--warm-up-budget-ms', '5000'], (m, child) => {
      const msg = m as { type?: string; name?: string; id?: string };
      if (msg.type === 'octo.listener.request') child.send({ type: 'octo.listener', name: msg.name, id: msg.id }, handles.get(msg.name!) as never);
    }, [], { OCTO_LOG_LEVEL: 'info' });
    try {
      await s.started;
      // stdout comes through a pipe: wait for the line logged just before the started message.
      for (let i = 0; i < 100 && !s.stdout.some((l) => l.includes('"proxy started"')); i++) await new Promise((r) => setTimeout(r, 20));
      const messages = s.stdout.map((l) => JSON.parse(l) as { message: string; requests?: number });
      const warmed = messages.findIndex((m) => m.message === 'warmed up before accepting');
      expect(warmed).toBeGreaterThanOrEqual(0);
      expect(messages[warmed]!.requests).toBeGreaterThanOrEqual(40);
      expect(messages.findIndex((m) => m.message === "accepting on the agent's sockets")).toBeGreaterThan(warmed);
      const addr: { port?: number } = {};
      handles.get('outbound')!.getsockname(addr);
      expect((await request(addr.port!, { path: '/after-warm-up' })).body).toBe('served /after-warm-up');
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
      for (const h of handles.values()) h.close();
    }
  }, 15_000);

  it('takes a bound raw handle from the parent, reports sync, and drains for a handover on octo.drain', async () => {
    // As the LEGO agent holds it: bound, never accepted on by the parent.
    const createServerHandle = (net as unknown as { _createServerHandle: (h: string, p: number, t: number) => { getsockname(o: object): void; close(): void } })._createServerHandle;
    const handles = new Map(['outbound', 'inbound'].map((n) => [n, createServerHandle('127.0.0.1', 0, 4)]));
    const s = run(['--config', bootstrap, '--sockets-from', 'parent'], (m, child) => {
      const msg = m as { type?: string; name?: string; id?: string };
      if (msg.type === 'octo.listener.request') child.send({ type: 'octo.listener', name: msg.name, id: msg.id }, handles.get(msg.name!) as never);
    });
    const { adminPort } = await s.started;
    const addr: { port?: number } = {};
    handles.get('outbound')!.getsockname(addr);
    expect(await (await fetch(`http://127.0.0.1:${adminPort}/sync`)).json()).toEqual({ synced: true, types: {}, nacked: null });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await request(addr.port!, { path: '/before', agent })).headers.connection).not.toBe('close');
      s.child.send({ type: 'octo.drain', timeoutMs: 3000 });
      await new Promise((r) => setTimeout(r, 200));
      // The idle kept-alive connection was not closed under the client: its next request is
      // answered, with `connection: close`.
      const last = await request(addr.port!, { path: '/after', agent });
      expect(last.body).toBe('served /after');
      expect(last.headers.connection).toBe('close');
      expect(await s.exited).toBe(0);
    } finally {
      s.child.kill('SIGKILL');
      agent.destroy();
      for (const h of handles.values()) h.close();
    }
  }, 15_000);

  it('on SIGTERM stops inbound first and keeps serving the app outbound until its connections end (drain like Istio)', async () => {
    const boot = join(dir, 'drain.yaml');
    const routes = (name: string) => httpListener(name, { route_config: routeConfig(name, [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) });
    writeFileSync(
      boot,
      stringify({
        nodeId: 'sidecar~drain',
        adminPort: 0,
        outboundPort: 0,
        inboundHost: '127.0.0.1',
        inboundPort: 0,
        drainTimeoutMs: 8000,
        staticResources: { listeners: [routes('outbound'), routes('inbound')], clusters: [staticCluster('app', [up.port])] },
      }),
    );
    const s = run(['--config', boot]);
    const { listeners } = await s.started;
    const outbound = portOf(listeners, 'outbound');
    const inbound = portOf(listeners, 'inbound');
    /** A kept-alive client connection: one GET at a time, the raw response text back. */
    const keptAlive = async (port: number) => {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      let closed = false;
      socket.on('close', () => (closed = true));
      socket.on('error', () => undefined);
      return {
        socket,
        closed: () => closed,
        get: (path: string) =>
          new Promise<string>((resolve) => {
            let text = '';
            const onData = (d: Buffer) => {
              text += d.toString('latin1');
              if (/\r\n\r\n[\s\S]*served/.test(text)) {
                socket.off('data', onData);
                resolve(text);
              }
            };
            socket.on('data', onData);
            socket.once('close', () => resolve(text));
            socket.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
          }),
      };
    };
    const app = await keptAlive(outbound);
    const peer = await keptAlive(inbound);
    expect(await app.get('/before')).toContain('served /before');
    expect(await peer.get('/peer')).toContain('served /peer');
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // Inbound: no new connection, and the peer's idle kept-alive one is closed.
    const refused = await new Promise<boolean>((resolve) => {
      const c = net.connect(inbound, '127.0.0.1');
      c.on('error', () => resolve(true));
      c.on('connect', () => {
        c.write('GET /late HTTP/1.1\r\nHost: app\r\n\r\n');
        c.on('data', () => resolve(false));
        c.on('close', () => resolve(true));
      });
    });
    expect(refused).toBe(true);
    expect(peer.closed()).toBe(true);
    // Outbound: the app's kept-alive connection and a new one are still served, kept alive.
    const during = await app.get('/during');
    expect(during).toContain('served /during');
    expect(during).not.toMatch(/connection: close/i);
    const fresh = await keptAlive(outbound);
    expect(await fresh.get('/fresh')).toContain('served /fresh');
    expect(s.child.exitCode).toBeNull();
    // The app is done: once its last connection ends, the proxy exits, long before the 8 s budget.
    fresh.socket.end();
    app.socket.end();
    expect(await s.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  }, 20_000);
});
