import { describe, expect, it } from '@jest/globals';
import type { ServiceBacking } from '@octo-mesh/contracts';
import { BackingIndex, backedServices } from './authz-status.js';

describe('backedServices: which services a sidecar\'s inbound listener guards', () => {
  const node = { namespace: 'demo', app: 'catalog', appPort: 8080, instanceId: 'catalog-7d9f-abcde', labels: { app: 'catalog', tier: 'backend' } };
  const b = (service: string, rest: Partial<ServiceBacking> = {}): ServiceBacking => ({ service, workloads: [], instances: [], ...rest });
  // name, node overrides, backings of the namespace, services guarded
  it.each<[string, Record<string, unknown>, ServiceBacking[], string[]]>([
    ['its own service by app name, even with no endpoints yet', {}, [], ['demo/catalog']],
    ['a service named unlike the workload whose endpoints name the workload', {}, [b('demo/catalog-api', { workloads: ['demo/catalog'] })], ['demo/catalog', 'demo/catalog-api']],
    ['a service whose endpoints name the instance (a registry instance without a workload)', {}, [b('demo/legacy', { instances: ['catalog-7d9f-abcde'] })], ['demo/catalog', 'demo/legacy']],
    ['a service whose selector the node\'s labels match', {}, [b('demo/backends', { selector: { tier: 'backend' } })], ['demo/backends', 'demo/catalog']],
    ['not a selector the labels do not match', {}, [b('demo/frontends', { selector: { tier: 'frontend' } })], ['demo/catalog']],
    ['not another workload\'s service', {}, [b('demo/orders', { workloads: ['demo/orders'], instances: ['orders-1'] })], ['demo/catalog']],
    ['not a service of another namespace naming the workload', {}, [b('other/catalog-api', { workloads: ['demo/catalog'] })], ['demo/catalog']],
    ['without an app: only by instance or selector', { app: undefined }, [b('demo/catalog-api', { workloads: ['demo/catalog'] }), b('demo/x', { instances: ['catalog-7d9f-abcde'] })], ['demo/x']],
    ['nothing without an inbound listener', { appPort: undefined }, [b('demo/catalog-api', { workloads: ['demo/catalog'] })], []],
    ['an app socket is an inbound listener too', { appPort: undefined, appSocket: '/run/app.sock' }, [b('demo/catalog-api', { workloads: ['demo/catalog'] })], ['demo/catalog', 'demo/catalog-api']],
  ])('%s', (_name, overrides, backings, want) => {
    const id = { ...node, ...overrides } as Parameters<typeof backedServices>[0];
    expect(backedServices(id, backings)).toEqual(want);
    // The index pilot keeps per namespace answers the same.
    expect(new BackingIndex(backings).guarded(id)).toEqual(want);
  });

  it('keeps its index right as backings change and go', () => {
    const index = new BackingIndex([b('demo/catalog-api', { workloads: ['demo/catalog'] })]);
    expect(index.guarded(node)).toEqual(['demo/catalog', 'demo/catalog-api']);
    index.set(b('demo/catalog-api', { workloads: ['demo/orders'] }));
    expect(index.guarded(node)).toEqual(['demo/catalog']);
    index.set(b('demo/legacy', { instances: ['catalog-7d9f-abcde'] }));
    expect(index.guarded(node)).toEqual(['demo/catalog', 'demo/legacy']);
    index.delete('demo/legacy');
    expect(index.guarded(node)).toEqual(['demo/catalog']);
  });
});
