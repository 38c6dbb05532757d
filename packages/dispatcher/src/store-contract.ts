/**
 * The contract every {@link ResourceStore} backend passes (after Kuma's store contract tests).
 * Run it from a backend's test file: `describeStoreContract('memory', () => MemoryStore.open())`.
 * Not exported from the package index, so production code never imports jest.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { API_VERSION, MODEL_API_VERSION, type MeshResource, type RoutePolicy, type Service } from '@octo-mesh/api';
import { ConflictError, NotFoundError, ValidationError } from '@octo-mesh/runtime';
import { compareVersions, VersionExpiredError, type ResourceStore, type StoreEvent } from './store.js';

/** A valid RoutePolicy splitting `service` between v1 and v2. */
export function routePolicyFixture(name: string, namespace = 'demo', v1Weight = 80): RoutePolicy {
  return {
    apiVersion: API_VERSION,
    kind: 'RoutePolicy',
    metadata: { name, namespace },
    spec: {
      targetRef: { service: name },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
      rules: [{ route: [{ subset: 'v1', weight: v1Weight }, { subset: 'v2', weight: 100 - v1Weight }] }],
    },
  } as RoutePolicy;
}

export function serviceFixture(name: string, namespace = 'demo', port = 8080): Service {
  return {
    apiVersion: MODEL_API_VERSION,
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports: [{ name: 'http', port, protocol: 'http' }] },
  };
}

/** Collects events of a watch and lets a test wait for a number of them. */
function collector() {
  const events: StoreEvent[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    events,
    handler: (e: StoreEvent) => {
      events.push(e);
      for (const w of [...waiters]) if (events.length >= w.n) w.resolve();
    },
    async waitFor(n: number, timeoutMs = 5000): Promise<StoreEvent[]> {
      if (events.length < n)
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`expected ${n} events, got ${events.length}`)), timeoutMs);
          waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
        });
      return events.slice(0, n);
    },
  };
}

/**
 * Registers the contract tests for one backend. `makeStore` returns a fresh, empty store (or one
 * whose namespace `demo` is empty); it is closed after each test.
 */
export function describeStoreContract(name: string, makeStore: () => Promise<ResourceStore> | ResourceStore): void {
  describe(`ResourceStore contract: ${name}`, () => {
    let store: ResourceStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('put then get returns the object with a resourceVersion', async () => {
      const put = await store.put(routePolicyFixture('catalog'));
      expect(put.metadata.resourceVersion).toBeTruthy();
      const got = await store.get('RoutePolicy', 'demo/catalog');
      expect(got.metadata.resourceVersion).toBe(put.metadata.resourceVersion);
      expect(got.spec).toEqual(put.spec);
    });

    it('get of a missing object throws NotFoundError', async () => {
      await expect(store.get('RoutePolicy', 'demo/absent')).rejects.toBeInstanceOf(NotFoundError);
    });

    it('delete removes; deleting again throws NotFoundError', async () => {
      await store.put(routePolicyFixture('catalog'));
      await store.delete('RoutePolicy', 'demo/catalog');
      await expect(store.get('RoutePolicy', 'demo/catalog')).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.delete('RoutePolicy', 'demo/catalog')).rejects.toBeInstanceOf(NotFoundError);
    });

    it('list filters by kind and namespace, and carries a version', async () => {
      await store.put(routePolicyFixture('catalog'));
      await store.put(routePolicyFixture('ratings'));
      await store.put(routePolicyFixture('catalog', 'other'));
      await store.put(serviceFixture('catalog'));
      const demo = await store.list('RoutePolicy', { namespace: 'demo' });
      expect(demo.items.map((o) => o.metadata.name).sort()).toEqual(['catalog', 'ratings']);
      expect(demo.version).toBeTruthy();
      expect((await store.list('Service', { namespace: 'demo' })).items).toHaveLength(1);
    });

    it('every write increases the version; an identical put is a no-op', async () => {
      const a = await store.put(routePolicyFixture('catalog', 'demo', 80));
      const same = await store.put(routePolicyFixture('catalog', 'demo', 80));
      expect(same.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
      const b = await store.put(routePolicyFixture('catalog', 'demo', 50));
      expect(compareVersions(b.metadata.resourceVersion!, a.metadata.resourceVersion!)).toBeGreaterThan(0);
    });

    it('a put with a stale expectedVersion throws ConflictError and changes nothing', async () => {
      const a = await store.put(routePolicyFixture('catalog', 'demo', 80));
      await store.put(routePolicyFixture('catalog', 'demo', 70), { expectedVersion: a.metadata.resourceVersion! });
      await expect(store.put(routePolicyFixture('catalog', 'demo', 60), { expectedVersion: a.metadata.resourceVersion! })).rejects.toBeInstanceOf(ConflictError);
      const got = (await store.get('RoutePolicy', 'demo/catalog')) as RoutePolicy;
      expect(got.spec.rules?.[0]?.route[0]?.weight).toBe(70);
    });

    it("expectedVersion '0' creates only", async () => {
      await store.put(routePolicyFixture('catalog'), { expectedVersion: '0' });
      await expect(store.put(routePolicyFixture('catalog', 'demo', 10), { expectedVersion: '0' })).rejects.toBeInstanceOf(ConflictError);
    });

    it('a delete with a stale expectedVersion throws ConflictError', async () => {
      const a = await store.put(routePolicyFixture('catalog', 'demo', 80));
      await store.put(routePolicyFixture('catalog', 'demo', 70));
      await expect(store.delete('RoutePolicy', 'demo/catalog', { expectedVersion: a.metadata.resourceVersion! })).rejects.toBeInstanceOf(ConflictError);
    });

    it('an invalid object throws ValidationError naming the field', async () => {
      const bad = routePolicyFixture('catalog') as MeshResource & { spec: { rules: { route: { weight: number }[] }[] } };
      bad.spec.rules[0]!.route[0]!.weight = 90;
      const err = (await store.put(bad).catch((e: unknown) => e)) as ValidationError;
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.issues.map((i) => i.path)).toContain('spec.rules[0].route');
      await expect(store.get('RoutePolicy', 'demo/catalog')).rejects.toBeInstanceOf(NotFoundError);
    });

    it('watch delivers puts and deletes in version order, filtered by kind', async () => {
      const c = collector();
      const w = store.watch(c.handler, { kinds: ['RoutePolicy'] });
      try {
        await store.put(routePolicyFixture('catalog', 'demo', 80));
        await store.put(serviceFixture('catalog'));
        await store.put(routePolicyFixture('catalog', 'demo', 20));
        await store.delete('RoutePolicy', 'demo/catalog');
        const events = await c.waitFor(3);
        expect(events.map((e) => [e.type, e.kind, e.key])).toEqual([
          ['PUT', 'RoutePolicy', 'demo/catalog'],
          ['PUT', 'RoutePolicy', 'demo/catalog'],
          ['DELETE', 'RoutePolicy', 'demo/catalog'],
        ]);
        const versions = events.map((e) => e.version);
        expect([...versions].sort(compareVersions)).toEqual(versions);
        expect(new Set(versions).size).toBe(3);
      } finally {
        w.close();
      }
    });

    it('watch from a version replays what happened after it', async () => {
      const first = await store.put(routePolicyFixture('catalog', 'demo', 80));
      await store.put(routePolicyFixture('ratings'));
      await store.put(routePolicyFixture('catalog', 'demo', 30));
      const c = collector();
      const w = store.watch(c.handler, { fromVersion: first.metadata.resourceVersion!, kinds: ['RoutePolicy'] });
      try {
        const events = await c.waitFor(2);
        expect(events.map((e) => e.key)).toEqual(['demo/ratings', 'demo/catalog']);
        expect(((events[1]!.resource as RoutePolicy).spec.rules?.[0]?.route[0]?.weight)).toBe(30);
      } finally {
        w.close();
      }
    });

    it('a closed watch receives nothing more', async () => {
      const c = collector();
      const w = store.watch(c.handler);
      w.close();
      await store.put(routePolicyFixture('catalog'));
      await new Promise((r) => setTimeout(r, 100));
      expect(c.events).toHaveLength(0);
    });

    it('VersionExpiredError is a typed error', () => {
      expect(new VersionExpiredError('x')).toBeInstanceOf(Error);
    });
  });
}
