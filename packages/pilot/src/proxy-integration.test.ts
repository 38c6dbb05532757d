import type { ChildProcess } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import type { RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, quietPilot, startSidecar, stopChild, until } from './test-support/sidecar.js';

// The real OCTO proxy (packages/proxy, its built executable, as a child process) against a real
// pilot: apply RoutePolicies and watch the traffic follow them.

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
  let proxyAdmin = 0;
  const source = new MemoryMeshSource();

  beforeAll(async () => {
    buildProxy();
    [v1, v2] = await Promise.all([upstream('v1'), upstream('v2')]);
    const ep = (s: Server, version: string) => ({ address: '127.0.0.1', port: (s.address() as AddressInfo).port, labels: { version }, healthy: true });
    source.upsertService(
      { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } },
      [ep(v1, 'v1'), ep(v2, 'v2')],
    );
    pilot = await quietPilot(source);
    const sidecar = await startSidecar(pilot.xdsPort, { nodeId: 'sidecar-it', workload: 'frontend', dependencies: 'catalog' });
    proxy = sidecar.child;
    outbound = Number(sidecar.started.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
    proxyAdmin = sidecar.started.adminPort;
  }, 60_000);

  afterAll(async () => {
    await stopChild(proxy);
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

  it('shows the proxy connected again after its stream is closed and reopened with nothing new to send', async () => {
    const xds = async () => ((await (await fetch(`http://127.0.0.1:${proxyAdmin}/config_dump`)).json()) as { xds: { connected: boolean } }).xds;
    await until('connected at first', async () => ((await xds()).connected ? true : undefined));
    // The pilot ends the stream; the proxy reconnects holding every current version, so the
    // pilot answers nothing — the stream is still up, and the proxy must say so.
    expect(pilot.ads.closeNode('sidecar-it')).toBe(1);
    await until('a new stream from the proxy', async () => (pilot.ads.streamCount === 1 ? true : undefined));
    await until('connected after the reconnect', async () => ((await xds()).connected ? true : undefined));
    expect(await bodies(3)).toHaveLength(3);
  }, 30_000);
});
