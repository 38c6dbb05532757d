import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { MODEL_API_VERSION, type AuthorizationPolicy, type ServiceEndpoints } from '@octo-mesh/api';
import { createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { Writable } from 'node:stream';
import { MemoryStore } from './memory-store.js';
import { DispatcherConnection, DispatcherMeshSource, startGrpcServer, type StartedGrpc } from '@octo-mesh/clients';
import type { MeshChange } from '@octo-mesh/contracts';
import { DispatcherGrpc, DispatcherService } from './server.js';
import { routePolicyFixture, serviceFixture } from './store-contract.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const endpoints = (name: string, ports: number[]): ServiceEndpoints => ({
  apiVersion: MODEL_API_VERSION,
  kind: 'ServiceEndpoints',
  metadata: { name, namespace: 'demo' },
  spec: { endpoints: ports.map((port) => ({ address: '127.0.0.1', port, labels: { version: 'v1' }, healthy: true })) },
});

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('DispatcherMeshSource (pilot MeshSource over the dispatcher)', () => {
  let store: MemoryStore;
  let grpc: StartedGrpc;
  let conn: DispatcherConnection;
  let service: DispatcherGrpc;

  beforeEach(async () => {
    store = MemoryStore.open();
    service = new DispatcherGrpc({ store, logger: quiet(), registry: createMetricsRegistry('t'), coalesceMs: 5 });
    grpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(DispatcherService, service.implementation()));
    conn = new DispatcherConnection(`127.0.0.1:${grpc.port}`);
  });
  afterEach(async () => {
    conn.close();
    await grpc.close();
  });

  it('fetches a service with its endpoints and the policies targeting it; absent services are absent', async () => {
    await store.put(serviceFixture('catalog'));
    await store.put(endpoints('catalog', [1001, 1002]));
    await store.put(routePolicyFixture('catalog'));
    await store.put(routePolicyFixture('ratings'));
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const got = await source.fetch(['demo/catalog', 'demo/missing']);
    expect([...got.keys()]).toEqual(['demo/catalog']);
    const data = got.get('demo/catalog')!;
    expect(data.endpoints.map((e) => e.port)).toEqual([1001, 1002]);
    expect(data.policies.map((p) => p.metadata.name)).toEqual(['catalog']);
  });

  it('fetches the AuthorizationPolicies of a service (its own namespace only) and notifies their changes', async () => {
    const authz = (name: string, namespace: string, service: string): AuthorizationPolicy =>
      ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace }, spec: { service, action: 'ALLOW', rules: [{ to: [{ methods: ['GET'] }] }] } }) as AuthorizationPolicy;
    await store.put(serviceFixture('catalog'));
    await store.put(authz('readers', 'demo', 'catalog'));
    await store.put(authz('ratings-readers', 'demo', 'ratings'));
    // Same service name, another namespace: protects other/catalog, not demo/catalog.
    await store.put(authz('elsewhere', 'other', 'catalog'));
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    expect((await source.fetch(['demo/catalog'])).get('demo/catalog')!.authorizationPolicies!.map((p) => p.metadata.name)).toEqual(['readers']);
    const changes: MeshChange[] = [];
    const w = source.watch(['demo/catalog'], (c) => changes.push(...c));
    try {
      await until(() => changes.length === 1, 'initial resync');
      await store.put(authz('writers', 'demo', 'catalog'));
      await until(() => changes.length === 2, 'the policy change');
      expect(changes[1]).toEqual({ kind: 'authorizationPolicy', service: 'demo/catalog' });
    } finally {
      w.close();
    }
  });

  it('tells who backs each service of a namespace, and notifies the namespace\'s service and endpoints changes when asked to', async () => {
    const backed = (name: string, workload: string): ServiceEndpoints => ({
      ...endpoints(name, [1001]),
      spec: { endpoints: [{ address: '10.0.0.7', port: 15006, labels: {}, healthy: true, instance: `${workload}-0`, workload: `demo/${workload}` }] },
    });
    await store.put(serviceFixture('catalog'));
    await store.put(serviceFixture('catalog-api'));
    await store.put(backed('catalog-api', 'catalog'));
    await store.put(serviceFixture('elsewhere', 'other'));
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const got = (await source.backing('demo')).sort((a, b) => a.service.localeCompare(b.service));
    expect(got).toEqual([
      { service: 'demo/catalog', workloads: [], instances: [] },
      { service: 'demo/catalog-api', workloads: ['demo/catalog'], instances: ['catalog-0'] },
    ]);
    const changes: MeshChange[] = [];
    const w = source.watch([], (c) => changes.push(...c));
    try {
      await until(() => changes.length === 1, 'initial resync');
      w.update([], ['demo']);
      // Another namespace's change first: it must not be delivered; the later demo one must.
      await store.put(serviceFixture('elsewhere2', 'other'));
      await store.put(backed('catalog-v2', 'catalog'));
      await until(() => changes.length === 2, 'the endpoints change of an unwatched service of a watched namespace');
      expect(changes[1]).toEqual({ kind: 'endpoints', service: 'demo/catalog-v2' });
    } finally {
      w.close();
    }
  });

  it('notifies changes of watched services only, by kind; update() changes the set', async () => {
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const changes: MeshChange[] = [];
    const w = source.watch(['demo/catalog'], (c) => changes.push(...c));
    try {
      // First contact: a resync, since nothing could be replayed for the time before it.
      await until(() => changes.length === 1, 'initial resync');
      expect(changes).toEqual([{ kind: 'resync' }]);
      await store.put(serviceFixture('ratings'));
      await store.put(endpoints('catalog', [1001]));
      await store.put(routePolicyFixture('catalog'));
      await until(() => changes.length >= 3, 'two changes');
      await new Promise((r) => setTimeout(r, 50));
      expect(changes.slice(1)).toEqual([
        { kind: 'endpoints', service: 'demo/catalog' },
        { kind: 'routePolicy', service: 'demo/catalog' },
      ]);
      // A change to ratings while it is not watched, after the last version this watcher saw:
      // when ratings becomes watched, that change is replayed; later ones arrive as usual.
      await store.put(serviceFixture('ratings', 'demo', 8081));
      await new Promise((r) => setTimeout(r, 50));
      expect(changes).toHaveLength(3);
      w.update(['demo/ratings']);
      await until(() => changes.length === 4, 'replayed ratings change');
      expect(changes[3]).toEqual({ kind: 'service', service: 'demo/ratings' });
      await store.put(serviceFixture('ratings', 'demo', 9090));
      await until(() => changes.length === 5, 'ratings change');
      expect(changes[4]).toEqual({ kind: 'service', service: 'demo/ratings' });
    } finally {
      w.close();
    }
  });

  it('after a dispatcher restart with a new store, the watcher is told to resync', async () => {
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const changes: MeshChange[] = [];
    const w = source.watch(['demo/catalog'], (c) => changes.push(...c));
    try {
      await until(() => changes.length === 1, 'initial resync');
      await store.put(serviceFixture('catalog'));
      await until(() => changes.length === 2, 'first change');
      const port = grpc.port;
      await grpc.close();
      const fresh = MemoryStore.open({ initialVersion: BigInt(Date.now()) * 1000n + 1_000_000n });
      service = new DispatcherGrpc({ store: fresh, logger: quiet(), registry: createMetricsRegistry('t'), coalesceMs: 5 });
      grpc = await startGrpcServer('127.0.0.1', port, (s) => s.addService(DispatcherService, service.implementation()));
      await until(() => changes.slice(2).some((c) => c.kind === 'resync'), 'resync', 10_000);
    } finally {
      w.close();
    }
  });
});
