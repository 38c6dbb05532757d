import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { MODEL_API_VERSION, type ServiceEndpoints } from '@octo-mesh/api';
import { createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { Writable } from 'node:stream';
import { DispatcherConnection } from './client.js';
import { MemoryStore } from './memory-store.js';
import { DispatcherMeshSource, type MeshChange } from './mesh-source.js';
import { DispatcherGrpc, DispatcherService, startGrpcServer, type StartedGrpc } from './server.js';
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

  it('notifies changes of watched services only, by kind; update() changes the set', async () => {
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const changes: MeshChange[] = [];
    const w = source.watch(['demo/catalog'], (c) => changes.push(...c));
    try {
      await until(() => service.list().length === 1, 'watch open');
      await store.put(serviceFixture('ratings'));
      await store.put(endpoints('catalog', [1001]));
      await store.put(routePolicyFixture('catalog'));
      await until(() => changes.length >= 2, 'two changes');
      await new Promise((r) => setTimeout(r, 50));
      expect(changes).toEqual([
        { kind: 'endpoints', service: 'demo/catalog' },
        { kind: 'routePolicy', service: 'demo/catalog' },
      ]);
      w.update(['demo/ratings']);
      await until(() => service.list()[0]?.subscriptions[0]?.service === 'demo/ratings', 'subscriptions replaced');
      await store.put(serviceFixture('ratings', 'demo', 9090));
      await until(() => changes.length === 3, 'ratings change');
      expect(changes[2]).toEqual({ kind: 'service', service: 'demo/ratings' });
    } finally {
      w.close();
    }
  });

  it('after a dispatcher restart with a new store, the watcher is told to resync', async () => {
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-1' });
    const changes: MeshChange[] = [];
    const w = source.watch(['demo/catalog'], (c) => changes.push(...c));
    try {
      await until(() => service.list().length === 1, 'watch open');
      await store.put(serviceFixture('catalog'));
      await until(() => changes.length === 1, 'first change');
      const port = grpc.port;
      await grpc.close();
      const fresh = MemoryStore.open({ initialVersion: BigInt(Date.now()) * 1000n + 1_000_000n });
      service = new DispatcherGrpc({ store: fresh, logger: quiet(), registry: createMetricsRegistry('t'), coalesceMs: 5 });
      grpc = await startGrpcServer('127.0.0.1', port, (s) => s.addService(DispatcherService, service.implementation()));
      await until(() => changes.some((c) => c.kind === 'resync'), 'resync', 10_000);
    } finally {
      w.close();
    }
  });
});
