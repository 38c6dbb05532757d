// Issue 18, "amplification": one ADS client asking for 10,000 made-up names grew a pilot from 140
// to 695 MB, which stayed after the stream closed. Streams are now bounded — over a bound the
// stream ends with RESOURCE_EXHAUSTED naming it — and what a stream made the pilot learn is
// released when it ends.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Service } from '@octo-mesh/api';
import { Node, TYPE_URL, type AggregatedDiscoveryServiceClient } from '@octo-mesh/proto';
import { Pilot } from '../pilot.js';
import { adsClient, DeltaClient, SotwClient } from '../sim/ads-client.js';
import { MemoryMeshSource } from '../source.js';
import { AdsServer } from './ads.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMb = () => {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed / 1048576;
};

const svc = (name: string): Service => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
const node = (id: string) => Node.fromPartial({ id, cluster: 'demo', metadata: { namespace: 'demo', dependencies: ['catalog'] } });
const madeUp = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `outbound|8080||made-up-${from + i}.demo.svc`);

describe('ADS stream bounds', () => {
  let pilot: Pilot;
  let server: AdsServer;
  let client: AggregatedDiscoveryServiceClient;

  beforeAll(async () => {
    const source = new MemoryMeshSource();
    source.upsertService(svc('catalog'), [{ address: '10.0.0.1', port: 15006, labels: {}, healthy: true }]);
    pilot = new Pilot({ source, debounce: { quietMs: 10, maxDelayMs: 50 } });
    server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
    client = adsClient(`127.0.0.1:${await server.listen(0, '127.0.0.1')}`);
  });
  afterAll(async () => {
    client.close();
    pilot.close();
    await server.close(100);
  });

  const ended = async (c: SotwClient | DeltaClient) => {
    const err = (await c.next(10_000).then(
      () => undefined,
      (e: unknown) => e,
    )) as (Error & { code?: number; details?: string }) | undefined;
    return err;
  };

  it.each([
    // protocol, names asked for, expected message
    ['sotw', 10_001, /10001 resource names subscribed; at most 10000 per type/],
    ['sotw', 5_000, /more than 1000 resource names this pilot does not have/],
    ['delta', 10_001, /10001 resource names subscribed; at most 10000 per type/],
    ['delta', 5_000, /more than 1000 resource names this pilot does not have/],
  ] as const)('%s: %i made-up names end the stream with RESOURCE_EXHAUSTED, and nothing is learned', async (kind, n, message) => {
    const c = kind === 'sotw' ? new SotwClient(client, node(`greedy-${kind}-${n}`)) : new DeltaClient(client, node(`greedy-${kind}-${n}`));
    c.subscribe(TYPE_URL.cluster, madeUp(n));
    const err = await ended(c);
    expect(err?.code).toBe(8);
    expect(err?.details ?? err?.message).toMatch(message);
    c.close();
    await waitUntil(() => pilot.describe().nodes.length === 0);
    expect(pilot.describe().services.map((s) => s.key)).toEqual([]);
  });

  it('what a stream learned on demand is released when it ends: the heap returns near its baseline', async () => {
    // Warm up one ordinary sidecar, then measure.
    const warm = new SotwClient(client, node('warm'));
    warm.subscribe(TYPE_URL.cluster);
    warm.ack(await warm.next(5000));
    warm.close();
    await waitUntil(() => pilot.describe().nodes.length === 0);
    const baseline = heapMb();

    // Within the bounds: 900 unknown names per stream, ten streams one after the other, each
    // learning (fetching, tracking) 900 services that do not exist.
    let peak = 0;
    for (let round = 0; round < 10; round++) {
      const c = new SotwClient(client, node(`curious-${round}`));
      c.subscribe(TYPE_URL.cluster, ['outbound|8080||catalog.demo.svc', ...madeUp(900, round * 900)]);
      const r = await c.next(10_000);
      c.ack(r, ['outbound|8080||catalog.demo.svc']);
      expect(pilot.describe().nodes[0]?.learned.length).toBe(900);
      peak = Math.max(peak, process.memoryUsage().heapUsed / 1048576);
      c.close();
      await waitUntil(() => pilot.describe().nodes.length === 0);
    }
    expect(pilot.describe().services).toEqual([]);
    expect(pilot.describe().scopes).toBe(0);
    const after = heapMb();
    process.stdout.write(`ADS bounds: heap baseline ${baseline.toFixed(1)} MB, peak ${peak.toFixed(1)} MB, after ${after.toFixed(1)} MB\n`);
    expect(after - baseline).toBeLessThan(15);
  }, 60_000);
});

async function waitUntil(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
