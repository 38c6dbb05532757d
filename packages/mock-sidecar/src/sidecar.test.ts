import { afterEach, describe, expect, it } from '@jest/globals';
import { TYPE_URL } from '@octo-mesh/proto';
import { directTarget, MockSidecar } from './sidecar.js';
import { adsServer as startAdsServer } from './test-support/ads-server.js';

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

/** The shared test ADS server (test-support/ads-server.ts), shut down after each test. */
async function adsServer() {
  const server = await startAdsServer();
  cleanup.push(() => server.close());
  // Subscriptions (requests without a nonce) per type.
  const asked = (typeUrl: string) => server.requests.filter((r) => !r.responseNonce && r.typeUrl === typeUrl).length;
  return { address: server.address, asked };
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
    expect(asked(TYPE_URL.endpoint)).toBe(1);
    expect(s.probe('eds')).toBe(true);
    expect(s.probe('eds')).toBe(false); // one at a time
    await until('probe answered', () => s.probes.length === 1);
    expect(asked(TYPE_URL.endpoint)).toBe(2);
    expect(s.probes[0]!).toBeGreaterThanOrEqual(0);
    expect(s.probes[0]!).toBeLessThan(5000);
    expect(s.probe('eds')).toBe(true);
  });
});
