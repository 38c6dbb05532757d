import { describe, expect, it } from '@jest/globals';
import { InstanceRegistry, type InstanceRegistration } from './registry.js';

const inst = (id: string, version: string, port: number): InstanceRegistration => ({
  namespace: 'demo',
  service: 'catalog',
  instanceId: id,
  address: '127.0.0.1',
  port,
  labels: { version },
  region: '',
  zone: 'z1',
  workload: '',
  servicePort: 8080,
  ttlMs: 0,
});

describe('InstanceRegistry', () => {
  it('publishes a Service and its endpoints with labels, locality and workload', () => {
    const r = new InstanceRegistry({ defaultTtlMs: 1000, maxTtlMs: 10_000 });
    expect(r.register(inst('b', 'v2', 2002), 0)).toEqual({ ttlMs: 1000, service: 'demo/catalog' });
    r.register(inst('a', 'v1', 2001), 0);
    const out = r.resources('demo/catalog', 10)!;
    expect(out.service.spec.ports).toEqual([{ name: 'http', port: 8080, protocol: 'http' }]);
    expect(out.endpoints.spec.endpoints).toEqual([
      { address: '127.0.0.1', port: 2001, labels: { version: 'v1' }, healthy: true, instance: 'a', workload: 'demo/catalog', locality: { zone: 'z1' } },
      { address: '127.0.0.1', port: 2002, labels: { version: 'v2' }, healthy: true, instance: 'b', workload: 'demo/catalog', locality: { zone: 'z1' } },
    ]);
  });

  // columns: case, heartbeat at (or none), sweep from → to, changed?, healthy after, still known
  it.each([
    ['fresh', 500, [500, 900], false, true, true],
    ['missed the TTL', undefined, [900, 1500], true, false, true],
    ['past three TTLs', undefined, [1500, 3500], true, undefined, false],
    ['already unhealthy, no new change', undefined, [1500, 2500], false, false, true],
  ] as const)('%s', (_case, beat, [since, now], changed, healthy, known) => {
    const r = new InstanceRegistry({ defaultTtlMs: 1000, maxTtlMs: 10_000 });
    r.register(inst('a', 'v1', 2001), 0);
    if (beat !== undefined) r.heartbeat('demo', 'catalog', 'a', beat);
    expect(r.sweep(since, now).has('demo/catalog')).toBe(changed);
    const res = r.resources('demo/catalog', now);
    expect(res !== undefined).toBe(known);
    expect(res?.endpoints.spec.endpoints[0]?.healthy).toBe(healthy);
  });

  it('heartbeat of an unknown instance asks to register; a recovering instance reports a change; TTL is capped', () => {
    const r = new InstanceRegistry({ defaultTtlMs: 1000, maxTtlMs: 5000 });
    expect(r.heartbeat('demo', 'catalog', 'a', 0)).toBeUndefined();
    expect(r.register({ ...inst('a', 'v1', 1), ttlMs: 60_000 }, 0).ttlMs).toBe(5000);
    expect(r.heartbeat('demo', 'catalog', 'a', 6000)).toEqual({ ttlMs: 5000, changed: 'demo/catalog' });
    expect(r.deregister('demo', 'catalog', 'a')).toBe('demo/catalog');
    expect(r.resources('demo/catalog', 6000)).toBeUndefined();
  });

  // columns: instances (id:version), expected workload version (undefined when mixed)
  it.each([
    [['a:v1', 'b:v1'], 'v1'],
    [['a:v1', 'b:v2'], undefined],
  ])('publishes the workload of %j with version %s', (specs, version) => {
    const r = new InstanceRegistry({ defaultTtlMs: 1000, maxTtlMs: 10_000 });
    for (const sp of specs) {
      const [id, v] = sp.split(':') as [string, string];
      r.register({ ...inst(id, v, 1), workload: 'catalog-app' }, 0);
    }
    expect(r.workloadKeys()).toEqual(new Set(['demo/catalog-app']));
    const w = r.workload('demo/catalog-app')!;
    expect(w.spec).toEqual({ app: 'catalog-app', ...(version ? { version } : {}), labels: {}, instances: [{ id: 'a', address: '127.0.0.1' }, { id: 'b', address: '127.0.0.1' }] });
    expect(r.workload('demo/other')).toBeUndefined();
  });
});
