import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { DispatcherWatchEventType, type DispatcherWatchEvent } from '@octo-mesh/proto';
import { ConflictError, NotFoundError, ValidationError, createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { Writable } from 'node:stream';
import { MemoryStore } from './memory-store.js';
import { DispatcherConnection, DispatcherInformer, startGrpcServer, type InformerChange, type StartedGrpc } from '@octo-mesh/clients';
import { DispatcherGrpc, DispatcherService } from './server.js';
import { routePolicyFixture, serviceFixture } from './store-contract.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('dispatcher over gRPC', () => {
  let store: MemoryStore;
  let grpc: StartedGrpc;
  let conn: DispatcherConnection;
  let service: DispatcherGrpc;

  beforeEach(async () => {
    store = MemoryStore.open({ historySize: 50 });
    service = new DispatcherGrpc({ store, logger: quiet(), registry: createMetricsRegistry('dispatcher-test'), coalesceMs: 30 });
    grpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(DispatcherService, service.implementation()));
    conn = new DispatcherConnection(`127.0.0.1:${grpc.port}`);
  });
  afterEach(async () => {
    conn.close();
    await grpc.close();
    await store.close();
  });

  /** Opens a raw Watch and collects its events. */
  function rawWatch(first: { subscriptions: object[]; resumeVersion?: string }) {
    const events: DispatcherWatchEvent[] = [];
    const stream = conn.watch();
    stream.on('data', (e: DispatcherWatchEvent) => events.push(e));
    stream.on('error', () => {});
    const subscriptions = first.subscriptions.map((s) => ({ kind: '', namespace: '', name: '', service: '', ...s }));
    stream.write({ clientId: 'pilot-test', resumeVersion: first.resumeVersion ?? '', subscriptions });
    return { events, stream, notifies: () => events.filter((e) => e.type === DispatcherWatchEventType.NOTIFY) };
  }

  it('UpdateStatus writes only the status; Apply leaves it; errors map back to typed ones', async () => {
    await conn.apply(routePolicyFixture('catalog'));
    const updated = await conn.updateStatus('RoutePolicy', 'demo/catalog', { accepted: true, observedGeneration: 1 });
    expect((updated as RoutePolicy).status).toMatchObject({ accepted: true });
    const reapplied = await conn.apply(routePolicyFixture('catalog', 'demo', 70));
    expect((reapplied as RoutePolicy).status).toMatchObject({ accepted: true });
    await expect(conn.updateStatus('RoutePolicy', 'demo/none', { accepted: true })).rejects.toBeInstanceOf(NotFoundError);
    await expect(conn.updateStatus('RoutePolicy', 'demo/catalog', { accepted: true }, '1')).rejects.toBeInstanceOf(ConflictError);
    await expect(conn.updateStatus('Service', 'demo/catalog', {})).rejects.toBeInstanceOf(ValidationError);
  });

  it('serves Apply, Get, List and Delete with typed errors', async () => {
    const applied = await conn.apply(routePolicyFixture('catalog'));
    expect(applied.metadata.resourceVersion).toBeTruthy();
    expect((await conn.get('RoutePolicy', 'demo/catalog')).metadata.name).toBe('catalog');
    expect((await conn.list('RoutePolicy', 'demo')).items).toHaveLength(1);
    await expect(conn.get('RoutePolicy', 'demo/nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(conn.apply(routePolicyFixture('catalog', 'demo', 10), '999')).rejects.toBeInstanceOf(ConflictError);
    const bad = routePolicyFixture('x') as RoutePolicy;
    bad.spec.targetRef.service = 'Not_A_Label';
    const err = await conn.apply(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toContain('spec.targetRef.service');
    await conn.delete('RoutePolicy', 'demo/catalog');
    await expect(conn.get('RoutePolicy', 'demo/catalog')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('notifies only subscribers of a change, with kind, key and version but never the object', async () => {
    const catalog = rawWatch({ subscriptions: [{ kind: 'RoutePolicy', service: 'demo/catalog' }] });
    const services = rawWatch({ subscriptions: [{ kind: 'Service' }] });
    await until(() => catalog.events.length > 0 && services.events.length > 0, 'SYNCED');
    expect(catalog.events[0]!.type).toBe(DispatcherWatchEventType.SYNCED);
    const put = await store.put(routePolicyFixture('catalog'));
    await store.put(routePolicyFixture('ratings'));
    await until(() => catalog.notifies().length === 1, 'catalog notification');
    await new Promise((r) => setTimeout(r, 100));
    expect(catalog.notifies()).toEqual([
      expect.objectContaining({ kind: 'RoutePolicy', namespace: 'demo', name: 'catalog', version: put.metadata.resourceVersion, deleted: false, service: 'demo/catalog' }),
    ]);
    expect(Object.keys(catalog.notifies()[0]!)).not.toContain('json');
    expect(services.notifies()).toHaveLength(0);
    catalog.stream.cancel();
    services.stream.cancel();
  });

  it('coalesces a burst of changes to one key into one notification with the latest version', async () => {
    const w = rawWatch({ subscriptions: [{}] });
    await until(() => w.events.length > 0, 'SYNCED');
    let last = '';
    for (let i = 0; i <= 100; i++) last = (await store.put(routePolicyFixture('catalog', 'demo', i))).metadata.resourceVersion!;
    await store.put(serviceFixture('catalog'));
    await until(() => w.notifies().length >= 2, 'notifications');
    await new Promise((r) => setTimeout(r, 100));
    const ns = w.notifies();
    expect(ns.map((n) => [n.kind, n.name, n.version])).toEqual([
      ['RoutePolicy', 'catalog', last],
      ['Service', 'catalog', String(BigInt(last) + 1n)],
    ]);
    w.stream.cancel();
  });

  it('a reconnecting client resumes from its version, or is told to resync when that is too old', async () => {
    const v0 = (await store.put(routePolicyFixture('catalog', 'demo', 10))).metadata.resourceVersion!;
    await store.put(routePolicyFixture('ratings'));
    const resumed = rawWatch({ subscriptions: [{ kind: 'RoutePolicy' }], resumeVersion: v0 });
    await until(() => resumed.events.some((e) => e.type === DispatcherWatchEventType.SYNCED), 'SYNCED after replay');
    expect(resumed.events.map((e) => [e.type, e.name])).toEqual([
      [DispatcherWatchEventType.NOTIFY, 'ratings'],
      [DispatcherWatchEventType.SYNCED, ''],
    ]);
    resumed.stream.cancel();
    for (let i = 0; i < 60; i++) await store.put(routePolicyFixture('catalog', 'demo', i)); // push v0 out of the history of 50
    const stale = rawWatch({ subscriptions: [{}], resumeVersion: v0 });
    await until(() => stale.events.length > 0, 'RESYNC');
    expect(stale.events[0]).toMatchObject({ type: DispatcherWatchEventType.RESYNC, version: store.version() });
    stale.stream.cancel();
  });

  it('changing subscriptions mid-stream takes effect', async () => {
    const w = rawWatch({ subscriptions: [{ kind: 'Service' }] });
    await until(() => w.events.length > 0, 'SYNCED');
    w.stream.write({ clientId: 'pilot-test', subscriptions: [{ kind: 'RoutePolicy', namespace: '', name: '', service: '' }], resumeVersion: '' });
    await new Promise((r) => setTimeout(r, 50));
    await store.put(serviceFixture('catalog'));
    await store.put(routePolicyFixture('catalog'));
    await until(() => w.notifies().length === 1, 'notification');
    expect(w.notifies()[0]!.kind).toBe('RoutePolicy');
    w.stream.cancel();
  });

  it('the informer keeps a cache current across a dispatcher restart', async () => {
    await store.put(routePolicyFixture('catalog', 'demo', 80));
    const changes: InformerChange[] = [];
    const informer = new DispatcherInformer({ connection: conn, clientId: 'pilot-a', kinds: ['RoutePolicy', 'Service'], onChange: (c) => changes.push(c) });
    await informer.start();
    try {
      expect(informer.list('RoutePolicy')).toHaveLength(1);
      await store.put(routePolicyFixture('catalog', 'demo', 30));
      await until(() => changes.length === 1, 'change');
      expect((informer.get('RoutePolicy', 'demo/catalog') as RoutePolicy).spec.rules?.[0]?.route[0]?.weight).toBe(30);

      // Restart the server on the same port; the informer resumes and sees what changed meanwhile.
      const port = grpc.port;
      await grpc.close();
      await store.put(serviceFixture('ratings'));
      await store.delete('RoutePolicy', 'demo/catalog');
      grpc = await startGrpcServer('127.0.0.1', port, (s) => s.addService(DispatcherService, service.implementation()));
      await until(() => informer.list('RoutePolicy').length === 0 && informer.list('Service').length === 1, 'resumed cache', 10_000);
      expect(changes.map((c) => [c.kind, c.key, !!c.resource])).toEqual([
        ['RoutePolicy', 'demo/catalog', true],
        ['Service', 'demo/ratings', true],
        ['RoutePolicy', 'demo/catalog', false],
      ]);
    } finally {
      await informer.stop();
    }
  });

  it('sends Apply and Delete of write-through kinds to their store (the API server in Kubernetes mode)', async () => {
    const apiServer = MemoryStore.open();
    const hub = MemoryStore.open();
    const svc = new DispatcherGrpc({ store: hub, logger: quiet(), registry: createMetricsRegistry('wt'), writeThrough: { store: apiServer, kinds: ['RoutePolicy', 'ProxyVersion'] } });
    const g = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(DispatcherService, svc.implementation()));
    const c = new DispatcherConnection(`127.0.0.1:${g.port}`);
    try {
      await c.apply(routePolicyFixture('catalog'));
      await c.apply(serviceFixture('catalog'));
      expect((await apiServer.list('RoutePolicy')).items).toHaveLength(1);
      expect((await hub.list('RoutePolicy')).items).toHaveLength(0);
      expect((await hub.list('Service')).items).toHaveLength(1);
      await c.delete('RoutePolicy', 'demo/catalog');
      expect((await apiServer.list('RoutePolicy')).items).toHaveLength(0);
    } finally {
      c.close();
      await g.close();
    }
  });
});
