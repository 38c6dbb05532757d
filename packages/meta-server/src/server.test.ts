import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import type { ServiceEndpoints, Workload } from '@octo-mesh/api';
import { execFileSync } from 'node:child_process';
import { DispatcherConnection, PilotMembership, RegisteredInstance, locatePilot, startGrpcServer, type StartedGrpc } from '@octo-mesh/clients';
import { waitFor, createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { REPO_ROOT, startProcess, type TestProcess } from '@octo-mesh/testing';
import { MetaServer, MetaServerService, ServiceRegistryService } from './server.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

const until = <T>(get: () => T | Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 8000): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs });

describe('meta server over gRPC', () => {
  let meta: MetaServer;
  let grpc: StartedGrpc;
  // A real dispatcher process, the registry's peer (the meta server writes Workloads through it).
  let dispatcher: TestProcess;
  let dispatcherAddress: string;
  let address: string;
  const members: PilotMembership[] = [];

  beforeAll(async () => {
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/dispatcher'], { cwd: REPO_ROOT });
    dispatcher = startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', '0', '--admin-port', '0']);
    dispatcherAddress = `127.0.0.1:${(await dispatcher.line<{ grpcPort: number }>('listening', { timeoutMs: 30_000 })).grpcPort}`;
  }, 120_000);
  afterAll(() => dispatcher.stop());

  beforeEach(async () => {
    meta = new MetaServer({
      logger: quiet(),
      registry: createMetricsRegistry('m'),
      pilotTtlMs: 1500,
      heartbeatIntervalMs: 100,
      maxMovesPerSecond: 1000,
      instanceTtlMs: 1000,
      dispatcherAddress,
    });
    meta.start();
    grpc = await startGrpcServer('127.0.0.1', 0, (s) => {
      s.addService(MetaServerService, meta.metaService());
      s.addService(ServiceRegistryService, meta.registryService());
    });
    address = `127.0.0.1:${grpc.port}`;
  });
  afterEach(async () => {
    for (const m of members.splice(0)) await m.stop({ deregister: false });
    await meta.stop();
    await grpc.close();
  });

  /** A pilot whose "connected sidecars" are whatever Locate sent to it and it has not shed. */
  function pilot(id: string) {
    const connected = new Map<string, { nodeId: string; namespace: string; workload: string }>();
    const shed: string[] = [];
    const m = new PilotMembership({
      metaAddress: address,
      pilotId: id,
      xdsAddress: `127.0.0.1:1${id.slice(-1)}`,
      sidecars: () => [...connected.values()],
      onShed: (ids) => {
        shed.push(...ids);
        for (const n of ids) connected.delete(n);
      },
    });
    m.start();
    members.push(m);
    return { m, connected, shed };
  }

  it('locates sidecars by workload, and moves only a dead pilot’s sidecars, within the lease TTL', async () => {
    const p1 = pilot('pilot-1');
    const p2 = pilot('pilot-2');
    await until(() => meta.pilots.list().length, (n) => n === 2, 'two pilots');
    const pilots = { 'pilot-1': p1, 'pilot-2': p2 } as Record<string, typeof p1>;
    const home = new Map<string, string>();
    for (const app of ['frontend', 'catalog', 'ratings', 'reviews', 'cart', 'search'])
      for (const i of [0, 1]) {
        const nodeId = `${app}-${i}`;
        const r = await locatePilot({ metaAddress: address, nodeId, namespace: 'demo', workload: app, timeoutMs: 2000 });
        if (i === 1) expect(r.pilotId).toBe(home.get(`${app}-0`)); // one app, one pilot
        home.set(nodeId, r.pilotId);
        pilots[r.pilotId]!.connected.set(nodeId, { nodeId, namespace: 'demo', workload: app });
      }
    expect(new Set(home.values()).size).toBe(2);

    const victim = members[0]!;
    const t0 = Date.now();
    await victim.stop({ deregister: false }); // crash: the lease lapses
    members.splice(0, 1);
    await until(() => meta.pilots.list().map((p) => p.id), (ids) => ids.length === 1, 'lease lapse');
    const lapse = Date.now() - t0;
    expect(lapse).toBeLessThan(3000);
    for (const [nodeId, was] of home) {
      const app = nodeId.replace(/-\d$/, '');
      const r = await locatePilot({ metaAddress: address, nodeId, namespace: 'demo', workload: app, ...(was === 'pilot-1' ? { unreachablePilotId: 'pilot-1' } : {}), timeoutMs: 2000 });
      expect([nodeId, r.pilotId]).toEqual([nodeId, 'pilot-2']);
    }
    expect(meta.sidecarTable().filter((s) => s.pilot === 'pilot-2')).toHaveLength(12);
  });

  it('takes the workload of a sidecar a pilot reports by node id only from its Locate call', async () => {
    const connected: { nodeId: string; namespace: string; workload: string }[] = [];
    const m = new PilotMembership({ metaAddress: address, pilotId: 'pilot-1', xdsAddress: '127.0.0.1:1', sidecars: () => connected });
    m.start();
    members.push(m);
    await until(() => meta.pilots.list().length, (n) => n === 1, 'pilot');
    await locatePilot({ metaAddress: address, nodeId: 'catalog-v1-0.demo', namespace: 'demo', workload: 'catalog', timeoutMs: 2000 });
    connected.push({ nodeId: 'catalog-v1-0.demo', namespace: '', workload: '' }, { nodeId: 'stranger', namespace: '', workload: '' });
    const table = await until(() => meta.sidecarTable(), (t) => t.some((s) => s.connectedTo === 'pilot-1'), 'connected sidecar');
    expect(table).toEqual([expect.objectContaining({ nodeId: 'catalog-v1-0.demo', workload: 'catalog', pilot: 'pilot-1', connectedTo: 'pilot-1' })]);
  });

  it('a sidecar that reports its pilot unreachable gets another one before the lease lapses', async () => {
    pilot('pilot-1');
    pilot('pilot-2');
    await until(() => meta.pilots.list().length, (n) => n === 2, 'two pilots');
    const first = await locatePilot({ metaAddress: address, nodeId: 'a-0', namespace: 'demo', workload: 'a', timeoutMs: 2000 });
    const second = await locatePilot({ metaAddress: address, nodeId: 'a-0', namespace: 'demo', workload: 'a', unreachablePilotId: first.pilotId, timeoutMs: 2000 });
    expect(second.pilotId).not.toBe(first.pilotId);
  });

  it('when a pilot joins, the old pilot is told to shed the moved sidecars, which then locate the new one', async () => {
    const p1 = pilot('pilot-1');
    await until(() => meta.pilots.list().length, (n) => n === 1, 'one pilot');
    const apps = Array.from({ length: 40 }, (_, i) => `app-${i}`);
    for (const app of apps) {
      await locatePilot({ metaAddress: address, nodeId: `${app}-0`, namespace: 'demo', workload: app, timeoutMs: 2000 });
      p1.connected.set(`${app}-0`, { nodeId: `${app}-0`, namespace: 'demo', workload: app });
    }
    pilot('pilot-2');
    const shed = await until(() => p1.shed.length, (n) => n > 5 && meta.pilots.pendingMoves() === 0, 'shedding');
    expect(shed).toBeLessThan(apps.length);
    for (const nodeId of p1.shed) {
      const r = await locatePilot({ metaAddress: address, nodeId, namespace: 'demo', workload: nodeId.replace(/-0$/, ''), timeoutMs: 2000 });
      expect(r.pilotId).toBe('pilot-2');
    }
  });

  it('publishes registry instances to the dispatcher, marks missed heartbeats unhealthy, removes deregistered ones', async () => {
    const conn = new DispatcherConnection(dispatcherAddress);
    const v1 = new RegisteredInstance({ metaAddress: address, namespace: 'demo', service: 'catalog', instanceId: 'catalog-v1', address: '127.0.0.1', port: 2001, labels: { version: 'v1' }, servicePort: 8080, ttlMs: 1000 });
    const v2 = new RegisteredInstance({ metaAddress: address, namespace: 'demo', service: 'catalog', instanceId: 'catalog-v2', address: '127.0.0.1', port: 2002, labels: { version: 'v2' }, servicePort: 8080, ttlMs: 1000 });
    v1.start();
    v2.start();
    const endpoints = () =>
      conn
        .get('ServiceEndpoints', 'demo/catalog')
        .then((r) => (r as ServiceEndpoints).spec.endpoints.map((e) => `${e.instance}:${e.healthy}`))
        .catch(() => [] as string[]);
    try {
      await until(endpoints, (e) => e.join() === 'catalog-v1:true,catalog-v2:true', 'both published');
      expect((await conn.get('Service', 'demo/catalog')).kind).toBe('Service');
      const workload = await until(
        () => conn.get('Workload', 'demo/catalog').then((w) => (w as Workload).spec.instances.map((i) => i.id)).catch(() => [] as string[]),
        (ids) => ids.length === 2,
        'the workload with both instances',
      );
      expect(workload).toEqual(['catalog-v1', 'catalog-v2']);
      await v2.stop({ deregister: false }); // crashed: misses its heartbeats
      await until(endpoints, (e) => e.join() === 'catalog-v1:true,catalog-v2:false', 'the silent one unhealthy', 5000);
      await until(endpoints, (e) => e.join() === 'catalog-v1:true', 'the silent one removed after three TTLs', 8000);
      await v1.stop();
      await until(endpoints, (e) => e.length === 0, 'the deregistered one removed at once', 3000);
      await until(() => conn.get('Workload', 'demo/catalog').then(() => 'present').catch(() => 'gone'), (x) => x === 'gone', 'workload removed', 3000);
    } finally {
      await v1.stop();
      await v2.stop();
      conn.close();
    }
  });

  it('restarted, it publishes nothing until instances had their grace period to register again, then retires the ones that did not', async () => {
    const conn = new DispatcherConnection(dispatcherAddress);
    const inst = (id: string, port: number, version: string) =>
      new RegisteredInstance({ metaAddress: address, namespace: 'demo', service: 'orders', instanceId: id, address: '127.0.0.1', port, labels: { version }, servicePort: 8080, ttlMs: 1000 });
    const a = inst('orders-a', 3001, 'v1');
    const b = inst('orders-b', 3002, 'v2');
    const gone = inst('orders-gone', 3003, 'v2');
    for (const i of [a, b, gone]) i.start();
    const endpoints = () =>
      conn
        .get('ServiceEndpoints', 'demo/orders')
        .then((r) => (r as ServiceEndpoints).spec.endpoints.map((e) => e.instance).sort().join())
        .catch(() => '');
    const seen = new Set<string>();
    let sampling = true;
    try {
      await until(endpoints, (e) => e === 'orders-a,orders-b,orders-gone', 'all three published');
      const sampler = (async () => {
        while (sampling) {
          seen.add(await endpoints());
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      // Restart: a new meta server on the same address knows no instance; `gone` died meanwhile.
      await gone.stop({ deregister: false });
      const port = grpc.port;
      await meta.stop();
      await grpc.close();
      meta = new MetaServer({ logger: quiet(), registry: createMetricsRegistry('m2'), pilotTtlMs: 1500, heartbeatIntervalMs: 100, maxMovesPerSecond: 1000, instanceTtlMs: 1000, dispatcherAddress });
      meta.start();
      grpc = await startGrpcServer('127.0.0.1', port, (srv) => {
        srv.addService(MetaServerService, meta.metaService());
        srv.addService(ServiceRegistryService, meta.registryService());
      });
      await until(endpoints, (e) => e === 'orders-a,orders-b', 'the dead instance retired after the grace period', 8000);
      sampling = false;
      await sampler;
      // Never a partial registry: only the full old set, then the full new one.
      expect([...seen].filter((e) => e !== 'orders-a,orders-b,orders-gone' && e !== 'orders-a,orders-b')).toEqual([]);
      const svc = await conn.get('Service', 'demo/orders');
      expect(svc.metadata.annotations?.['mesh.octo.io/source']).toBe('registry');
    } finally {
      sampling = false;
      for (const i of [a, b, gone]) await i.stop();
      conn.close();
    }
  }, 30_000);
});
