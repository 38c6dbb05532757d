import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { waitFor, createLogger } from '@octo-mesh/runtime';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';

// The real OCTO proxy (packages/proxy, its built executable, as a child process) against a real
// pilot: apply RoutePolicies and watch the traffic follow them.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const PROXY_MAIN = join(ROOT, 'packages/proxy/dist/main.js');

const upstream = (name: string) =>
  new Promise<Server>((resolve) => {
    const s = createServer((req, res) => {
      req.resume();
      res.end(name);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });

function get(port: number, headers: Record<string, string>): Promise<{ status: number; body: string; reason?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/items', headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers['x-octo-reason'] ? { reason: String(res.headers['x-octo-reason']) } : {}) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> =>
  waitFor(what, probe, (v) => v !== undefined, { timeoutMs, intervalMs: 50, retryErrors: true }) as Promise<T>;

const policy = (generation: number, spec: RoutePolicy['spec']): RoutePolicy => ({
  apiVersion: 'mesh.octo.io/v1alpha1',
  kind: 'RoutePolicy',
  metadata: { name: 'catalog', namespace: 'demo', generation },
  spec,
});
const SUBSETS = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
];

describe('pilot with the real OCTO proxy', () => {
  let v1: Server;
  let v2: Server;
  let pilot: RunningPilot;
  let proxy: ChildProcess;
  let outbound = 0;
  const source = new MemoryMeshSource();

  beforeAll(async () => {
    try {
      execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: ROOT, stdio: 'pipe' });
    } catch (err) {
      // tsc still emits on type errors; the proxy's own checks are its package's business.
      if (!existsSync(PROXY_MAIN)) throw new Error(`cannot build the proxy: ${(err as { stdout?: Buffer }).stdout?.toString() ?? err}`);
    }
    [v1, v2] = await Promise.all([upstream('v1'), upstream('v2')]);
    const ep = (s: Server, version: string) => ({ address: '127.0.0.1', port: (s.address() as AddressInfo).port, labels: { version }, healthy: true });
    source.upsertService(
      { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } },
      [ep(v1, 'v1'), ep(v2, 'v2')],
    );
    const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', debounceQuietMs: 20, debounceMaxMs: 100, shutdownGraceSeconds: 0.2 });
    pilot = await startPilot(config, createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() })), source);
    proxy = spawn(
      process.execPath,
      [PROXY_MAIN, '--xds-address', `127.0.0.1:${pilot.xdsPort}`, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--node-id', 'sidecar-it', '--namespace', 'demo', '--workload', 'frontend', '--dependencies', 'catalog', '--access-log', 'off'],
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, OCTO_LOG_LEVEL: 'error' } },
    );
    const started = await new Promise<{ listeners: { name: string; address: string }[] }>((resolve, reject) => {
      proxy.on('message', (m: { type?: string }) => m.type === 'octo.proxy.started' && resolve(m as never));
      proxy.on('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
    });
    outbound = Number(started.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
  }, 60_000);

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      await exited;
    }
    await pilot?.stop();
    v1?.close();
    v2?.close();
  });

  const bodies = async (n: number, headers: Record<string, string> = {}) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await get(outbound, { host: 'catalog', ...headers });
      out.push(r.status === 200 ? r.body : `${r.status} ${r.reason ?? ''}`);
    }
    return out;
  };

  it('routes by the service host to every endpoint before any policy', async () => {
    const seen = await until('both versions answering', async () => {
      const b = await bodies(10);
      return b.includes('v1') && b.includes('v2') && b.every((x) => x === 'v1' || x === 'v2') ? b : undefined;
    });
    expect(new Set(seen)).toEqual(new Set(['v1', 'v2']));
  });

  it('follows a RoutePolicy that sends everything to subset v2, then a header rule back to v1', async () => {
    source.applyPolicy(policy(1, { targetRef: { service: 'catalog' }, subsets: SUBSETS, rules: [{ route: [{ subset: 'v2' }] }] }));
    await until('all traffic on v2', async () => ((await bodies(10)).every((b) => b === 'v2') ? true : undefined));
    expect(await bodies(20)).toEqual(Array(20).fill('v2'));

    source.applyPolicy(
      policy(2, {
        targetRef: { service: 'catalog' },
        subsets: SUBSETS,
        rules: [{ matches: [{ headers: [{ name: 'x-canary', exact: 'yes' }] }], route: [{ subset: 'v2' }] }, { route: [{ subset: 'v1' }] }],
      }),
    );
    await until('plain traffic on v1', async () => ((await bodies(10)).every((b) => b === 'v1') ? true : undefined));
    expect(await bodies(10, { 'x-canary': 'yes' })).toEqual(Array(10).fill('v2'));
    expect(await bodies(10)).toEqual(Array(10).fill('v1'));
  });

  it('shows the proxy SYNCED and the policy ACKed by it', async () => {
    const admin = `http://127.0.0.1:${pilot.admin.port}`;
    const syncz = await until('every type synced', async () => {
      const s = (await (await fetch(`${admin}/debug/syncz?node=sidecar-it`)).json()) as { types: { type: string; state: string }[] };
      const wanted = ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'];
      return wanted.every((t) => s.types.find((x) => x.type === t)?.state === 'SYNCED') ? s : undefined;
    });
    expect(syncz.types.length).toBeGreaterThanOrEqual(4);
    const status = (await (await fetch(`${admin}/debug/routepolicyz`)).json()) as { policy: string; status: { accepted: boolean; observedGeneration: number; sidecars: { total: number; acked: number } } }[];
    expect(status.find((p) => p.policy === 'demo/catalog')!.status).toMatchObject({ accepted: true, observedGeneration: 2, sidecars: { total: 1, acked: 1 } });
  });
});
