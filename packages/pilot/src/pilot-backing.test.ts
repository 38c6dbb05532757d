import { afterEach, describe, expect, it } from '@jest/globals';
import type { AuthorizationPolicy, Endpoint, Service } from '@octo-mesh/api';
import type { ServiceBacking } from '@octo-mesh/contracts';
import { Node, TYPE_URL } from '@octo-mesh/proto';
import { Pilot } from './pilot.js';
import { AdsServer } from './server/ads.js';
import { adsClient, SotwClient } from './sim/ads-client.js';
import { MemoryMeshSource } from './source.js';

// Which services a sidecar's workload backs, through a real pilot and ADS server: the services
// whose policies guard each node's inbound listener, read from the source, and kept current.

const svc = (name: string): Service => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 80, protocol: 'http' }] } });
const ep = (workload: string): Endpoint => ({ address: '10.0.0.7', port: 15006, labels: {}, healthy: true, instance: `${workload}-0`, workload: `demo/${workload}` });
const deny = (name: string, service: string): AuthorizationPolicy =>
  ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'demo', generation: 1 }, spec: { service, action: 'DENY', rules: [{ to: [{ paths: ['/admin*'] }] }] } }) as AuthorizationPolicy;
const node = (id: string, workload: string) => Node.fromPartial({ id, metadata: { namespace: 'demo', workload, app_port: '8080', dependencies: [] } });

/** A memory source whose first backing() answer waits until released (a slow dispatcher). */
class SlowBackingSource extends MemoryMeshSource {
  backingCalls = 0;
  release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));
  override async backing(namespace: string): Promise<ServiceBacking[]> {
    this.backingCalls++;
    await this.gate;
    return super.backing(namespace);
  }
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(source: MemoryMeshSource) {
  const pilot = new Pilot({ source, debounce: { quietMs: 10, maxDelayMs: 100 } });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
  const port = await server.listen(0, '127.0.0.1');
  const client = adsClient(`127.0.0.1:${port}`);
  const streams: SotwClient[] = [];
  cleanup.push(async () => {
    for (const s of streams) s.close();
    client.close();
    pilot.close();
    await server.close(100);
  });
  const connect = (id: string, workload: string) => {
    const s = new SotwClient(client, node(id, workload));
    streams.push(s);
    s.subscribe(TYPE_URL.listener);
    return s;
  };
  /** The RBAC policy names in a node's inbound listener (they are plain strings in its bytes). */
  const guards = (id: string, names: string[]) => {
    const inbound = [...(pilot.cache.getSnapshot(id)?.get(TYPE_URL.listener)?.resources.values() ?? [])].find((r) => r.name === 'inbound');
    return inbound ? names.filter((n) => inbound.any.value.includes(n)) : undefined;
  };
  return { pilot, connect, guards };
}

describe('Pilot: the services a sidecar guards', () => {
  it('places no node of a namespace before its backing is read, however many arrive meanwhile', async () => {
    const source = new SlowBackingSource();
    source.upsertService(svc('catalog'), [ep('catalog')]);
    source.upsertService(svc('catalog-api'), [ep('catalog')]);
    source.applyAuthorizationPolicy(deny('api-admin', 'catalog-api'));
    const { connect, guards } = await setup(source);
    const a = connect('catalog-a', 'catalog');
    const b = connect('catalog-b', 'catalog');
    // Neither gets a listener while the list is in flight (one list for the namespace).
    expect(await a.quiet(200)).toBe(true);
    expect(await b.quiet(10)).toBe(true);
    expect(source.backingCalls).toBe(1);
    source.release();
    a.ack(await a.next(5000));
    b.ack(await b.next(5000));
    expect(guards('catalog-a', ['demo/api-admin[rule 0]'])).toEqual(['demo/api-admin[rule 0]']);
    expect(guards('catalog-b', ['demo/api-admin[rule 0]'])).toEqual(['demo/api-admin[rule 0]']);
  });

  it('adds and drops a service when its endpoints start and stop naming the workload; other workloads\' nodes get nothing', async () => {
    const source = new MemoryMeshSource();
    source.upsertService(svc('catalog'), [ep('catalog')]);
    source.upsertService(svc('orders'), [ep('orders')]);
    source.upsertService(svc('catalog-api'), []);
    source.applyAuthorizationPolicy(deny('api-admin', 'catalog-api'));
    const { pilot, connect, guards } = await setup(source);
    const catalog = connect('catalog-0', 'catalog');
    const orders = connect('orders-0', 'orders');
    catalog.ack(await catalog.next(5000));
    orders.ack(await orders.next(5000));
    expect(guards('catalog-0', ['demo/api-admin[rule 0]'])).toEqual([]);
    const ordersVersion = pilot.cache.getSnapshot('orders-0')!.version(TYPE_URL.listener);

    source.setEndpoints('demo/catalog-api', [ep('catalog')]);
    const push = await catalog.next(5000);
    expect(push.typeUrl).toBe(TYPE_URL.listener);
    catalog.ack(push);
    expect(guards('catalog-0', ['demo/api-admin[rule 0]'])).toEqual(['demo/api-admin[rule 0]']);
    expect(await orders.quiet(200)).toBe(true);
    expect(pilot.cache.getSnapshot('orders-0')!.version(TYPE_URL.listener)).toBe(ordersVersion);

    source.setEndpoints('demo/catalog-api', [ep('orders')]);
    catalog.ack(await catalog.next(5000));
    orders.ack(await orders.next(5000));
    expect(guards('catalog-0', ['demo/api-admin[rule 0]'])).toEqual([]);
    expect(guards('orders-0', ['demo/api-admin[rule 0]'])).toEqual(['demo/api-admin[rule 0]']);
  });
  it("keeps a namespace's backing while a node with an inbound listener is in it (a reconnect included), forgets it after the last one, reads it again for the next", async () => {
    const source = new SlowBackingSource();
    source.release();
    source.upsertService(svc('catalog'), [ep('catalog')]);
    const { connect } = await setup(source);
    const until = async (what: string, cond: () => boolean) => {
      for (const t0 = performance.now(); !cond(); ) {
        if (performance.now() - t0 > 5000) throw new Error(`not within 5 s: ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const a = connect('catalog-a', 'catalog');
    a.ack(await a.next(5000));
    expect(source.backingCalls).toBe(1);
    const again = connect('catalog-a', 'catalog'); // the same node on a new stream: its old one is replaced
    again.ack(await again.next(5000));
    const b = connect('catalog-b', 'catalog');
    b.ack(await b.next(5000));
    expect(source.backingCalls).toBe(1);
    a.close();
    again.close();
    b.close();
    // The namespace is forgotten once its last node has gone: the next node reads it again.
    const c = connect('catalog-c', 'catalog');
    await until('backing read again', () => source.backingCalls === 2);
    c.ack(await c.next(5000));
  });
});
