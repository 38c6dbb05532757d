import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Service } from '@octo-mesh/api';
import type { RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, quietPilot, startSidecar, stopChild, until } from './test-support/sidecar.js';

// Apps on Unix sockets end to end (issue 19, OCTO's app ↔ sidecar path), with a real pilot and
// two real OCTO proxies (built executables, child processes): frontend's app calls out through
// its sidecar's outbound Unix socket; catalog's sidecar declares `--app-socket`, so Pilot's
// inbound cluster for it has an Envoy `pipe` endpoint and the sidecar connects to catalog's app
// on its socket. Only the sidecar-to-sidecar hop is TCP.

const dir = mkdtempSync(join(tmpdir(), 'octo-uds-'));
const appSocket = join(dir, 'catalog.sock');
const outboundSocket = join(dir, 'frontend-out.sock');

/** One HTTP/1.1 request over a Unix socket. */
function callOverSocket(socketPath: string, host: string, probe: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/items', headers: { host, 'x-probe': probe }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('an app on a Unix socket behind its sidecar, called through another sidecar\'s outbound Unix socket', () => {
  const source = new MemoryMeshSource();
  /** What catalog's app saw: the probe header and the address its server was reached on. */
  const seen: { probe: string; on: string }[] = [];
  let app: Server;
  let pilot: RunningPilot;
  let catalogAdmin = 0;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    buildProxy();
    app = createServer((req, res) => {
      seen.push({ probe: String(req.headers['x-probe'] ?? ''), on: String(app.address()) });
      req.resume();
      res.end('catalog on its socket');
    });
    await new Promise<void>((resolve) => app.listen(appSocket, resolve));
    const service: Service = { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } };
    source.upsertService(service, []);
    pilot = await quietPilot(source);
    const catalog = await startSidecar(pilot.xdsPort, { nodeId: 'catalog-0', workload: 'catalog', args: ['--app-socket', appSocket] });
    children.push(catalog.child);
    catalogAdmin = catalog.started.adminPort;
    const inbound = Number(catalog.started.listeners.find((l) => l.name === 'inbound')!.address.split(':').pop());
    source.upsertService(service, [{ address: '127.0.0.1', port: inbound, labels: {}, healthy: true }]);
    const frontend = await startSidecar(pilot.xdsPort, { nodeId: 'frontend-0', workload: 'frontend', dependencies: 'catalog', args: ['--outbound-socket', outboundSocket] });
    children.push(frontend.child);
    expect(frontend.started.listeners).toContainEqual(expect.objectContaining({ name: 'outbound', address: `unix:${outboundSocket}` }));
  }, 60_000);

  afterAll(async () => {
    for (const c of children) await stopChild(c);
    await pilot?.stop();
    await new Promise((r) => app?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the catalog sidecar an inbound cluster whose one host is the app\'s socket (a pipe address)', async () => {
    type Clusters = { clusters: { name: string; hosts: { address: string }[] }[] };
    const inboundCluster = await until('the inbound cluster in force', async () => {
      return ((await (await fetch(`http://127.0.0.1:${catalogAdmin}/clusters`)).json()) as Clusters).clusters.find((x) => x.name === 'inbound|unix||local');
    }, 30_000);
    expect(inboundCluster.hosts.map((h) => h.address)).toEqual([`unix:${appSocket}`]);
  }, 60_000);

  it('delivers a request from the caller\'s outbound socket to the app on its socket', async () => {
    const r = await until('a request through both sidecars', async () => {
      const x = await callOverSocket(outboundSocket, 'catalog.demo.svc:8080', 'first');
      return x.status === 200 ? x : undefined;
    }, 30_000);
    expect(r.body).toBe('catalog on its socket');
    for (let i = 0; i < 20; i++) expect(await callOverSocket(outboundSocket, 'catalog.demo.svc:8080', `p${i}`)).toEqual({ status: 200, body: 'catalog on its socket' });
    const probes = seen.filter((s) => s.probe.startsWith('p'));
    expect(probes.map((s) => s.probe)).toEqual(Array.from({ length: 20 }, (_, i) => `p${i}`));
    expect(new Set(seen.map((s) => s.on))).toEqual(new Set([appSocket]));
  }, 60_000);
});
