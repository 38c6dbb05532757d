import { afterEach, describe, expect, it } from '@jest/globals';
import type { Endpoint, Service } from '@octo-mesh/api';
import { HttpConnectionManager, Listener, Node, RouteConfiguration, TYPE_URL } from '@octo-mesh/proto';
import { Pilot } from './pilot.js';
import { AdsServer } from './server/ads.js';
import { adsClient, DeltaClient, SotwClient } from './sim/ads-client.js';
import { MemoryMeshSource } from './source.js';

// The wire side of proxyless clients: listener names learned on demand over SotW and delta, and
// names that resolve to nothing answered as "does not exist" without disturbing the stream.
// proxyless-grpc.test.ts runs the real gRPC client against the same.

const svc = (name: string, port = 8080): Service => ({
  apiVersion: 'model.mesh.octo.io/v1',
  kind: 'Service',
  metadata: { name, namespace: 'demo' },
  spec: { ports: [{ name: 'grpc', port, protocol: 'grpc' }] },
});
const ep = (address: string): Endpoint => ({ address, port: 50051, labels: {}, healthy: true });
const node = (id: string) => Node.fromPartial({ id, metadata: { namespace: 'demo' } });

/** Listener name → its api_listener's RDS name. */
const apiListeners = (resources: { value: Buffer }[]) =>
  Object.fromEntries(
    resources.map((a) => {
      const l = Listener.decode(a.value);
      return [l.name, HttpConnectionManager.decode(l.apiListener!.apiListener!.value).rds?.routeConfigName];
    }),
  );

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup() {
  const source = new MemoryMeshSource();
  source.upsertService(svc('catalog'), [ep('10.0.0.1')]);
  const pilot = new Pilot({ source, debounce: { quietMs: 20, maxDelayMs: 100 } });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
  const port = await server.listen(0, '127.0.0.1');
  const client = adsClient(`127.0.0.1:${port}`);
  const streams: { close(): void }[] = [];
  cleanup.push(async () => {
    for (const s of streams) s.close();
    client.close();
    pilot.close();
    await server.close(100);
  });
  const open = <T extends { close(): void }>(s: T) => (streams.push(s), s);
  return { source, pilot, sotw: (id: string) => open(new SotwClient(client, node(id))), delta: (id: string) => open(new DeltaClient(client, node(id))) };
}

describe('proxyless listeners on demand', () => {
  it('SotW: the first LDS answer already holds the asked-for listener, and only names that exist', async () => {
    const { pilot, sotw } = await setup();
    const s = sotw('grpc-1');
    const names = ['catalog.demo.svc:8080', 'catalog:8080', 'nope.demo.svc:8080', 'catalog.demo.svc:9999', 'not a name'];
    s.subscribe(TYPE_URL.listener, names);
    const lds = await s.next();
    // Absent from a SotW LDS answer = does not exist (LDS and CDS answers are complete).
    expect(apiListeners(lds.resources)).toEqual({ 'catalog.demo.svc:8080': 'catalog.demo.svc:8080', 'catalog:8080': 'catalog.demo.svc:8080' });
    s.ack(lds, names);
    s.subscribe(TYPE_URL.route, ['catalog.demo.svc:8080']);
    const rds = await s.next();
    const rc = RouteConfiguration.decode(rds.resources[0]!.value);
    expect(rc.virtualHosts.map((v) => [v.domains, v.routes.map((r) => r.route?.cluster)])).toEqual([[['*'], ['outbound|8080||catalog.demo.svc']]]);
    s.ack(rds, ['catalog.demo.svc:8080']);
    s.subscribe(TYPE_URL.cluster, ['outbound|8080||catalog.demo.svc']);
    const cds = await s.next();
    expect(cds.resources).toHaveLength(1);
    const n = pilot.describe().nodes[0]!;
    expect(n.learned.sort()).toEqual(['demo/catalog', 'demo/nope']);
    expect(n.apiListeners?.sort()).toEqual(['catalog.demo.svc:8080', 'catalog.demo.svc:9999', 'catalog:8080', 'nope.demo.svc:8080']);
  });

  it('delta: asked-for listeners sent, unknown ones in removed_resources; the stream goes on and a service that appears later is pushed', async () => {
    const { source, delta } = await setup();
    const d = delta('grpc-2');
    d.subscribe(TYPE_URL.listener, ['catalog.demo.svc:8080', 'nope.demo.svc:8080']);
    const first = await d.next();
    expect(apiListeners(first.resources.map((r) => r.resource!))).toEqual({ 'catalog.demo.svc:8080': 'catalog.demo.svc:8080' });
    expect(first.removedResources).toEqual(['nope.demo.svc:8080']);
    d.ack(first);
    // Another name on the same stream.
    d.send({ typeUrl: TYPE_URL.listener, resourceNamesSubscribe: ['catalog.demo:8080'] });
    const second = await d.next();
    expect(Object.keys(apiListeners(second.resources.map((r) => r.resource!)))).toEqual(['catalog.demo:8080']);
    d.ack(second);
    // The unknown service was learned as a dependency: when it appears, its listener follows.
    source.upsertService(svc('nope'), [ep('10.0.0.2')]);
    const third = await d.next();
    expect(third.typeUrl).toBe(TYPE_URL.listener);
    expect(apiListeners(third.resources.map((r) => r.resource!))).toEqual({ 'nope.demo.svc:8080': 'nope.demo.svc:8080' });
  });

  it('a sidecar wildcard LDS subscription never sees the api_listeners of a proxyless node', async () => {
    const { sotw } = await setup();
    const g = sotw('grpc-3');
    g.subscribe(TYPE_URL.listener, ['catalog.demo.svc:8080']);
    expect((await g.next()).resources).toHaveLength(1);
    const s = sotw('sidecar-1');
    s.subscribe(TYPE_URL.listener);
    const lds = await s.next();
    expect(lds.resources.map((a) => Listener.decode(a.value).name)).toEqual(['outbound']);
  });
});
