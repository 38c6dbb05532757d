import { describe, expect, it } from '@jest/globals';
import { ProxyConfigSchema } from '../config.js';
import { askTarget, dependencyKey } from './dependency-learner.js';

describe('askTarget: the service a Host names, and the EDS name the proxy asks its pilot with', () => {
  // authority, the proxy's namespace, expected service, expected EDS name (undefined: not a mesh service, never asked)
  it.each([
    ['catalog', 'demo', 'demo/catalog', 'outbound|0||catalog.demo.svc'],
    ['catalog:8080', 'demo', 'demo/catalog', 'outbound|8080||catalog.demo.svc'],
    ['catalog.shop', 'demo', 'shop/catalog', 'outbound|0||catalog.shop.svc'],
    ['catalog.shop:9000', 'demo', 'shop/catalog', 'outbound|9000||catalog.shop.svc'],
    ['catalog.shop.svc', 'demo', 'shop/catalog', 'outbound|0||catalog.shop.svc'],
    ['Catalog.Shop.svc.cluster.local:8080', 'demo', 'shop/catalog', 'outbound|8080||catalog.shop.svc'],
    ['catalog.shop.svc.cluster.local.', 'demo', 'shop/catalog', 'outbound|0||catalog.shop.svc'],
    ['api.example.com', 'demo', undefined, undefined],
    ['10.0.0.5:8080', 'demo', undefined, undefined],
    ['[::1]:8080', 'demo', undefined, undefined],
    ['catalog:0', 'demo', undefined, undefined],
    ['catalog:70000', 'demo', undefined, undefined],
    ['a.b.svc.extra', 'demo', undefined, undefined],
    ['under_score', 'demo', undefined, undefined],
    ['', 'demo', undefined, undefined],
  ])('%s (namespace %s) → %s %s', (authority, ns, service, name) => {
    const t = askTarget(authority, ns);
    expect(t?.service).toBe(service);
    expect(t?.name).toBe(name);
  });

  it.each([
    ['ratings', 'demo/ratings'],
    ['ratings.shop', 'shop/ratings'],
    ['ratings.shop.svc.cluster.local', 'shop/ratings'],
    ['shop/ratings', 'shop/ratings'],
  ])('declared dependency %s is %s', (dep, key) => expect(dependencyKey(dep, 'demo')).toBe(key));
});

describe('learning settings', () => {
  it('default to a 1 s hold and a 10 min TTL', () => {
    expect(ProxyConfigSchema.parse({})).toMatchObject({ learnTimeoutMs: 1000, learnTtlMs: 600_000 });
  });
  it.each([
    [{ learnTimeoutMs: -1 }, 'learnTimeoutMs'],
    [{ learnTimeoutMs: 'soon' }, 'learnTimeoutMs'],
    [{ learnTimeoutMs: 120_000 }, 'learnTimeoutMs'],
    [{ learnTtlMs: 0 }, 'learnTtlMs'],
  ])('%j is refused naming %s', (input, field) => {
    const r = ProxyConfigSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual([field]);
  });
});
