// Automatic dependency learning, end to end: the real OCTO proxy (its built executable, as a
// child process) declares no dependencies; a request for a service it was never told about makes
// it ask this real pilot on its ADS stream, and the request is routed on its first call. An
// unknown host gets 404 no-route after learnTimeoutMs; a learned service survives the pilot's
// restart (a new stream, a new pilot); one unused for learnTtlMs is unsubscribed and the pilot
// forgets it. SotW and delta.
import type { ChildProcess } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, quietPilot, startSidecar, stopChild, until } from './test-support/sidecar.js';

const LEARN_TIMEOUT_MS = 1000;
const LEARN_TTL_MS = 3000;

const upstream = (name: string) =>
  new Promise<Server>((resolve) => {
    const s = createServer((req, res) => {
      req.resume();
      res.end(name);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });

function get(port: number, host: string): Promise<{ status: number; body: string; reason?: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0, ...(res.headers['x-octo-reason'] ? { reason: String(res.headers['x-octo-reason']) } : {}) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const metric = async (adminPort: number, name: string): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
};

describe.each(['sotw', 'delta'] as const)('automatic dependency learning (%s)', (mode) => {
  const source = new MemoryMeshSource();
  let servers: Server[] = [];
  let pilot: RunningPilot;
  let proxy: ChildProcess;
  let outbound = 0;
  let adminPort = 0;
  const learned = (p: RunningPilot) => p.pilot.describe().nodes.find((n) => n.id === `learner-${mode}`)?.learned.sort() ?? [];

  beforeAll(async () => {
    buildProxy();
    servers = await Promise.all([upstream('catalog'), upstream('ratings')]);
    const svc = (name: string, port: number, s: Server) =>
      source.upsertService(
        { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: 'http', port, protocol: 'http' }] } },
        [{ address: '127.0.0.1', port: (s.address() as AddressInfo).port, labels: {}, healthy: true }],
      );
    svc('catalog', 8080, servers[0]!);
    svc('ratings', 9080, servers[1]!);
    pilot = await quietPilot(source);
    const sidecar = await startSidecar(pilot.xdsPort, {
      nodeId: `learner-${mode}`,
      workload: 'frontend',
      args: ['--xds-mode', mode, '--learn-timeout-ms', String(LEARN_TIMEOUT_MS), '--learn-ttl-ms', String(LEARN_TTL_MS)],
    });
    proxy = sidecar.child;
    adminPort = sidecar.started.adminPort;
    outbound = Number(sidecar.started.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
    await until('proxy ready', async () => ((await fetch(`http://127.0.0.1:${adminPort}/ready`)).ok ? true : undefined));
  }, 60_000);

  afterAll(async () => {
    await stopChild(proxy);
    await pilot?.stop();
    for (const s of servers) s.close();
  });

  it('routes a request for an undeclared service on its first call', async () => {
    const r = await get(outbound, 'catalog');
    expect(r).toMatchObject({ status: 200, body: 'catalog' });
    expect(r.ms).toBeLessThan(LEARN_TIMEOUT_MS);
    expect(learned(pilot)).toEqual(['demo/catalog']);
  });

  it('concurrent first requests for one host share one ask', async () => {
    const asksBefore = await metric(adminPort, 'octo_proxy_learn_asks_total');
    const heldBefore = await metric(adminPort, 'octo_proxy_learn_held_requests_total{result="routed"}');
    const rs = await Promise.all(Array.from({ length: 8 }, () => get(outbound, 'ratings.demo:9080')));
    expect(rs.map((r) => `${r.status} ${r.body}`)).toEqual(Array(8).fill('200 ratings'));
    expect((await metric(adminPort, 'octo_proxy_learn_asks_total')) - asksBefore).toBe(1);
    // Each was held for that one ask, or arrived once the route was in force (a busy machine
    // spreads "concurrent" requests out); at least the first was held.
    const held = (await metric(adminPort, 'octo_proxy_learn_held_requests_total{result="routed"}')) - heldBefore;
    expect(held).toBeGreaterThanOrEqual(1);
    expect(held).toBeLessThanOrEqual(8);
  });

  it('answers an unknown service 404 no-route, naming the host, after learnTimeoutMs', async () => {
    const r = await get(outbound, 'nosuch.demo.svc');
    expect(r).toMatchObject({ status: 404, reason: 'no-route' });
    expect(r.body).toContain('"nosuch.demo.svc"');
    expect(r.ms).toBeGreaterThanOrEqual(LEARN_TIMEOUT_MS - 50);
    expect(r.ms).toBeLessThan(LEARN_TIMEOUT_MS + 1500);
    expect(await metric(adminPort, 'octo_proxy_learn_timeouts_total')).toBe(1);
    // Asked already and not there: the next request is answered at once (the name stays subscribed).
    const again = await get(outbound, 'nosuch.demo.svc');
    expect(again).toMatchObject({ status: 404, reason: 'no-route' });
    expect(again.ms).toBeLessThan(LEARN_TIMEOUT_MS / 2);
    // Not a mesh name: never asked, answered at once.
    const external = await get(outbound, 'api.example.com');
    expect(external.status).toBe(404);
    expect(external.ms).toBeLessThan(LEARN_TIMEOUT_MS / 2);
  });

  it('keeps a learned service across a pilot restart, and unsubscribes one unused for learnTtlMs', async () => {
    // catalog is called throughout; ratings is not called again.
    const failures: string[] = [];
    let calls = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        const r = await get(outbound, 'catalog').catch((e: Error) => ({ status: 0, body: e.message }));
        calls++;
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    try {
      const port = pilot.xdsPort;
      await pilot.stop();
      pilot = await quietPilot(source, port);
      // The new pilot knows nothing of this node: it learns its services from the proxy's subscriptions.
      await until('the new pilot learned catalog from the reconnected proxy', async () => (learned(pilot).includes('demo/catalog') ? true : undefined), 15_000);
      // ratings, unused, is unsubscribed after its TTL, and the pilot forgets it; catalog stays.
      await until('ratings forgotten', async () => (learned(pilot).includes('demo/ratings') ? undefined : true), LEARN_TTL_MS * 4);
      type Dump = { dynamic: { clusters: { name: string }[] }; learned_dependencies: { service: string }[] };
      await until('ratings clusters gone from the proxy', async () => {
        const d = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as Dump;
        return d.dynamic.clusters.some((c) => c.name.endsWith('ratings.demo.svc')) ? undefined : d;
      });
      expect(learned(pilot)).toContain('demo/catalog');
      expect(await metric(adminPort, 'octo_proxy_learn_released_total')).toBeGreaterThanOrEqual(1);
    } finally {
      running = false;
      await loop;
    }
    expect(calls).toBeGreaterThan(10);
    expect(failures).toEqual([]);
    // ratings is learned again on its next call.
    expect(await get(outbound, 'ratings:9080')).toMatchObject({ status: 200, body: 'ratings' });
  }, 40_000);
});
