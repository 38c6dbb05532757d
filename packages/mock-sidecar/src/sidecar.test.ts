import { afterEach, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { DiscoveryRequest, DiscoveryResponse, TYPE_URL } from '@octo-mesh/proto';
import { directTarget, MockSidecar } from './sidecar.js';

describe('directTarget', () => {
  // columns: address, target
  it.each([
    ['127.0.0.1:15010', 'ipv4:127.0.0.1:15010'],
    ['10.1.2.3:80', 'ipv4:10.1.2.3:80'],
    ['pilot.octo-system.svc:15010', 'pilot.octo-system.svc:15010'],
    ['[::1]:15010', '[::1]:15010'],
    ['127.0.0.1', '127.0.0.1'],
  ])('%s → %s', (address, target) => {
    expect(directTarget(address)).toBe(target);
  });
});

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A resource whose first string field is its name (all a MockSidecar reads of it). */
const named = (typeUrl: string, name: string) => ({ typeUrl, value: Buffer.concat([Buffer.from([0x0a, name.length]), Buffer.from(name)]) });

/**
 * A minimal SotW ADS server: answers every request that carries no nonce (a subscription) with the
 * type's resources — one cluster `c1`, its endpoints, the listener `outbound` and its routes — and
 * counts the requests per type.
 */
async function adsServer() {
  const server = new grpc.Server();
  const asked = new Map<string, number>();
  let nonce = 0;
  const resources: Record<string, string[]> = { [TYPE_URL.cluster]: ['c1'], [TYPE_URL.endpoint]: ['c1'], [TYPE_URL.listener]: ['outbound'], [TYPE_URL.route]: ['outbound'] };
  server.addService(
    {
      stream: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        requestStream: true,
        responseStream: true,
        requestDeserialize: (b: Buffer) => DiscoveryRequest.decode(b),
        responseSerialize: (r: DiscoveryResponse) => Buffer.from(DiscoveryResponse.encode(r).finish()),
      },
    } as unknown as grpc.ServiceDefinition,
    {
      stream: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        call.on('data', (req: DiscoveryRequest) => {
          if (req.responseNonce) return; // an ACK
          asked.set(req.typeUrl, (asked.get(req.typeUrl) ?? 0) + 1);
          const names = resources[req.typeUrl] ?? [];
          call.write(DiscoveryResponse.fromPartial({ typeUrl: req.typeUrl, versionInfo: 'v1', nonce: String(++nonce), resources: names.map((n) => named(req.typeUrl, n)) }));
        });
        call.on('end', () => call.end());
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  cleanup.push(() => void server.forceShutdown());
  return { address: `127.0.0.1:${port}`, asked };
}

const until = async (what: string, cond: () => boolean) => {
  for (const t0 = performance.now(); !cond(); ) {
    if (performance.now() - t0 > 5000) throw new Error(`not within 5 s: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('MockSidecar.probe', () => {
  it('asks for a type again as a proxy holding nothing would, and records the time to the answer', async () => {
    const { address, asked } = await adsServer();
    const s = new MockSidecar({ id: 'a.demo', template: 'a', namespace: 'demo', workload: 'a', version: 'v1', dependencies: [], protocol: 'sotw' }, { xdsAddress: address, pilotId: 'p' });
    cleanup.push(() => s.close());
    expect(s.probe('eds')).toBe(false); // no stream yet
    s.start();
    await until('synced', () => s.synced);
    expect(s.headersAt).toBeDefined();
    expect(asked.get(TYPE_URL.endpoint)).toBe(1);
    expect(s.probe('eds')).toBe(true);
    expect(s.probe('eds')).toBe(false); // one at a time
    await until('probe answered', () => s.probes.length === 1);
    expect(asked.get(TYPE_URL.endpoint)).toBe(2);
    expect(s.probes[0]!).toBeGreaterThanOrEqual(0);
    expect(s.probes[0]!).toBeLessThan(5000);
    expect(s.probe('eds')).toBe(true);
  });
});
