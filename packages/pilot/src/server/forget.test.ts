// A service a node made the pilot learn on demand is forgotten once the node unsubscribes every
// name that names it (what a proxy does for a dependency unused for its TTL): it leaves the
// node's scope and its clusters leave the node's CDS. Real ADS streams, SotW and delta.
import { afterEach, describe, expect, it } from '@jest/globals';
import type { Endpoint, Service } from '@octo-mesh/api';
import { Cluster, Node, TYPE_URL, type AggregatedDiscoveryServiceClient } from '@octo-mesh/proto';
import { waitFor } from '@octo-mesh/runtime';
import { Pilot } from '../pilot.js';
import { adsClient, DeltaClient, SotwClient } from '../sim/ads-client.js';
import { MemoryMeshSource } from '../source.js';
import { AdsServer } from './ads.js';

const svc = (name: string, port: number): Service => ({
  apiVersion: 'model.mesh.octo.io/v1',
  kind: 'Service',
  metadata: { name, namespace: 'demo' },
  spec: { ports: [{ name: 'http', port, protocol: 'http' }] },
});
const ep = (address: string): Endpoint => ({ address, port: 15006, labels: {}, healthy: true });
const CATALOG = 'outbound|8080||catalog.demo.svc';
const REVIEWS = 'outbound|9080||reviews.demo.svc';
/** The form a proxy asks with when the Host carries no port: the whole service is learned from any cluster name. */
const REVIEWS_ANY_PORT = 'outbound|0||reviews.demo.svc';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup() {
  const source = new MemoryMeshSource();
  source.upsertService(svc('catalog', 8080), [ep('10.0.0.1')]);
  source.upsertService(svc('reviews', 9080), [ep('10.0.0.2')]);
  const pilot = new Pilot({ source, debounce: { quietMs: 10, maxDelayMs: 50 } });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
  const port = await server.listen(0, '127.0.0.1');
  const client: AggregatedDiscoveryServiceClient = adsClient(`127.0.0.1:${port}`);
  const streams: { close(): void }[] = [];
  cleanup.push(async () => {
    for (const s of streams) s.close();
    client.close();
    pilot.close();
    await server.close(100);
  });
  const node = Node.fromPartial({ id: 'a', cluster: 'demo', metadata: { namespace: 'demo', dependencies: ['catalog'] } });
  const learned = () => pilot.describe().nodes.find((n) => n.id === 'a')?.learned ?? [];
  const track = <T extends { close(): void }>(s: T) => (streams.push(s), s);
  return { pilot, learned, sotw: () => track(new SotwClient(client, node)), delta: () => track(new DeltaClient(client, node)) };
}

const clusterNames = (r: { resources: { value: Buffer }[] }) => r.resources.map((a) => Cluster.decode(a.value).name).sort();
const until = (what: string, ok: () => boolean) => waitFor(what, async () => ok(), (v) => v, { timeoutMs: 3000, intervalMs: 20 });

describe('forgetting a dependency learned on demand', () => {
  it('SotW: learned from a port-less ask, kept while any name of it is subscribed, forgotten when none is', async () => {
    const { sotw, learned } = await setup();
    const c = sotw();
    let eds = [REVIEWS_ANY_PORT];
    let cds: string[] = [];
    let lastEds: { nonce: string; versionInfo: string } = { nonce: '', versionInfo: '' };
    /** Reads and ACKs what comes (with the EDS names of the moment) until `ok` or the stream goes quiet. */
    const drain = async (ok: () => boolean) => {
      for (let i = 0; i < 10 && !ok(); i++) {
        const r = await c.next();
        if (r.typeUrl === TYPE_URL.cluster) cds = clusterNames(r);
        if (r.typeUrl === TYPE_URL.endpoint) lastEds = r;
        c.ack(r, r.typeUrl === TYPE_URL.endpoint ? eds : []);
      }
    };
    c.subscribe(TYPE_URL.cluster);
    await drain(() => cds.length > 0);
    expect(cds).toEqual([CATALOG]);
    // The proxy's ask: the cluster form with port 0 (the Host named no port).
    c.subscribe(TYPE_URL.endpoint, eds);
    await drain(() => cds.includes(REVIEWS));
    expect(cds).toEqual([CATALOG, REVIEWS].sort());
    expect(learned()).toEqual(['demo/reviews']);
    // The ask dropped while the cluster's own name stays subscribed: kept.
    eds = [CATALOG, REVIEWS];
    c.send({ typeUrl: TYPE_URL.endpoint, resourceNames: eds, responseNonce: lastEds.nonce, versionInfo: lastEds.versionInfo });
    await drain(() => false).catch(() => undefined);
    expect(learned()).toEqual(['demo/reviews']);
    expect(cds).toEqual([CATALOG, REVIEWS].sort());
    // Every name of it dropped: forgotten, and CDS goes back to the declared dependency alone.
    eds = [CATALOG];
    c.send({ typeUrl: TYPE_URL.endpoint, resourceNames: eds, responseNonce: lastEds.nonce, versionInfo: lastEds.versionInfo });
    await drain(() => cds.length === 1);
    expect(cds).toEqual([CATALOG]);
    expect(learned()).toEqual([]);
  });

  it('delta: resource_names_unsubscribe of every name of the service forgets it', async () => {
    const { delta, learned } = await setup();
    const c = delta();
    c.subscribe(TYPE_URL.cluster);
    c.ack(await c.next());
    c.subscribe(TYPE_URL.endpoint, [REVIEWS]);
    await until('reviews learned', () => learned().includes('demo/reviews'));
    const removed: string[] = [];
    c.send({ typeUrl: TYPE_URL.endpoint, resourceNamesUnsubscribe: [REVIEWS] });
    await until('reviews forgotten', () => learned().length === 0);
    for (let i = 0; i < 6 && !removed.includes(REVIEWS); i++) {
      const r = await c.next();
      c.ack(r);
      if (r.typeUrl === TYPE_URL.cluster) removed.push(...r.removedResources);
    }
    expect(removed).toContain(REVIEWS);
  });

  it('a declared dependency is never forgotten by unsubscribing its names', async () => {
    const { delta, pilot } = await setup();
    const c = delta();
    c.subscribe(TYPE_URL.cluster);
    c.ack(await c.next());
    c.subscribe(TYPE_URL.endpoint, [CATALOG]);
    c.ack(await c.next());
    c.send({ typeUrl: TYPE_URL.endpoint, resourceNamesUnsubscribe: [CATALOG] });
    expect(await c.quiet(300)).toBe(true);
    expect(pilot.describe().nodes[0]!.scope).toEqual(['demo/catalog']);
  });
});
