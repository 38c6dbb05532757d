/**
 * The contract every {@link ResourceStore} backend passes (after Kuma's store contract tests).
 * Run it from a backend's test file: `describeStoreContract('memory', () => MemoryStore.open())`.
 * Not exported from the package index, so production code never imports jest.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { API_VERSION, MODEL_API_VERSION, type MeshResource, type ProxyVersion, type RoutePolicy, type Service } from '@octo-mesh/api';
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

/** A valid ProxyVersion (the contract's second kind: every backend stores it). */
export function proxyVersionFixture(name: string, namespace = 'demo'): ProxyVersion {
  return {
    apiVersion: API_VERSION,
    kind: 'ProxyVersion',
    metadata: { name, namespace },
    spec: {
      version: '1.4.2',
      package: { url: 'http://127.0.0.1:15018/packages/octo-proxy-1.4.2.tgz', sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' },
      strategy: { steps: [100] },
    },
  } as ProxyVersion;
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
export function describeStoreContract(
  name: string,
  makeStore: (namespaces: [string, string]) => Promise<ResourceStore> | ResourceStore,
  opts: { namespaces?: () => Promise<[string, string]> } = {},
): void {
  describe(`ResourceStore contract: ${name}`, () => {
    let store: ResourceStore;
    // Two namespaces per test ("demo" and "other" unless the backend needs fresh ones).
    let ns = 'demo';
    let other = 'other';
    beforeEach(async () => {
      [ns, other] = (await opts.namespaces?.()) ?? ['demo', 'other'];
      store = await makeStore([ns, other]);
    });
    afterEach(async () => {
      await store?.close();
    });

    it('put then get returns the object with a resourceVersion', async () => {
      const put = await store.put(routePolicyFixture('catalog', ns));
      expect(put.metadata.resourceVersion).toBeTruthy();
      const got = await store.get('RoutePolicy', `${ns}/catalog`);
      expect(got.metadata.resourceVersion).toBe(put.metadata.resourceVersion);
      expect(got.spec).toEqual(put.spec);
    });

    it('get of a missing object throws NotFoundError', async () => {
      await expect(store.get('RoutePolicy', `${ns}/absent`)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('delete removes; deleting again throws NotFoundError', async () => {
      await store.put(routePolicyFixture('catalog', ns));
      await store.delete('RoutePolicy', `${ns}/catalog`);
      await expect(store.get('RoutePolicy', `${ns}/catalog`)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.delete('RoutePolicy', `${ns}/catalog`)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('list filters by kind and namespace, and carries a version', async () => {
      await store.put(routePolicyFixture('catalog', ns));
      await store.put(routePolicyFixture('ratings', ns));
      await store.put(routePolicyFixture('catalog', other));
      await store.put(proxyVersionFixture('proxy-1-4-2', ns));
      const demo = await store.list('RoutePolicy', { namespace: ns });
      expect(demo.items.map((o) => o.metadata.name).sort()).toEqual(['catalog', 'ratings']);
      expect(demo.version).toBeTruthy();
      expect((await store.list('ProxyVersion', { namespace: ns })).items).toHaveLength(1);
    });

    it('every write increases the version; an identical put is a no-op', async () => {
      const a = await store.put(routePolicyFixture('catalog', ns, 80));
      const same = await store.put(routePolicyFixture('catalog', ns, 80));
      expect(same.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
      const b = await store.put(routePolicyFixture('catalog', ns, 50));
      expect(compareVersions(b.metadata.resourceVersion!, a.metadata.resourceVersion!)).toBeGreaterThan(0);
    });

    it('a put with a stale expectedVersion throws ConflictError and changes nothing', async () => {
      const a = await store.put(routePolicyFixture('catalog', ns, 80));
      await store.put(routePolicyFixture('catalog', ns, 70), { expectedVersion: a.metadata.resourceVersion! });
      await expect(store.put(routePolicyFixture('catalog', ns, 60), { expectedVersion: a.metadata.resourceVersion! })).rejects.toBeInstanceOf(ConflictError);
      const got = (await store.get('RoutePolicy', `${ns}/catalog`)) as RoutePolicy;
      expect(got.spec.rules?.[0]?.route[0]?.weight).toBe(70);
    });

    it("expectedVersion '0' creates only", async () => {
      await store.put(routePolicyFixture('catalog', ns), { expectedVersion: '0' });
      await expect(store.put(routePolicyFixture('catalog', ns, 10), { expectedVersion: '0' })).rejects.toBeInstanceOf(ConflictError);
    });

    it('a delete with a stale expectedVersion throws ConflictError', async () => {
      const a = await store.put(routePolicyFixture('catalog', ns, 80));
      await store.put(routePolicyFixture('catalog', ns, 70));
      await expect(store.delete('RoutePolicy', `${ns}/catalog`, { expectedVersion: a.metadata.resourceVersion! })).rejects.toBeInstanceOf(ConflictError);
    });

    it('an invalid object throws ValidationError naming the field', async () => {
      const bad = routePolicyFixture('catalog', ns) as MeshResource & { spec: { rules: { route: { weight: number }[] }[] } };
      bad.spec.rules[0]!.route[0]!.weight = 90;
      const err = (await store.put(bad).catch((e: unknown) => e)) as ValidationError;
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.issues.map((i) => i.path)).toContain('spec.rules[0].route');
      await expect(store.get('RoutePolicy', `${ns}/catalog`)).rejects.toBeInstanceOf(NotFoundError);
    });

    it('watch delivers puts and deletes in version order, filtered by kind', async () => {
      const c = collector();
      const w = store.watch(c.handler, { kinds: ['RoutePolicy'] });
      try {
        await store.put(routePolicyFixture('catalog', ns, 80));
        await store.put(proxyVersionFixture('proxy-1-4-2', ns));
        await store.put(routePolicyFixture('catalog', ns, 20));
        await store.delete('RoutePolicy', `${ns}/catalog`);
        const events = await c.waitFor(3);
        expect(events.map((e) => [e.type, e.kind, e.key])).toEqual([
          ['PUT', 'RoutePolicy', `${ns}/catalog`],
          ['PUT', 'RoutePolicy', `${ns}/catalog`],
          ['DELETE', 'RoutePolicy', `${ns}/catalog`],
        ]);
        const versions = events.map((e) => e.version);
        expect([...versions].sort(compareVersions)).toEqual(versions);
        expect(new Set(versions).size).toBe(3);
      } finally {
        w.close();
      }
    });

    it('watch from a version replays what happened after it', async () => {
      const first = await store.put(routePolicyFixture('catalog', ns, 80));
      await store.put(routePolicyFixture('ratings', ns));
      await store.put(routePolicyFixture('catalog', ns, 30));
      const c = collector();
      const w = store.watch(c.handler, { fromVersion: first.metadata.resourceVersion!, kinds: ['RoutePolicy'] });
      try {
        const events = await c.waitFor(2);
        expect(events.map((e) => e.key)).toEqual([`${ns}/ratings`, `${ns}/catalog`]);
        expect(((events[1]!.resource as RoutePolicy).spec.rules?.[0]?.route[0]?.weight)).toBe(30);
      } finally {
        w.close();
      }
    });

    it('a closed watch receives nothing more', async () => {
      const c = collector();
      const w = store.watch(c.handler);
      w.close();
      await store.put(routePolicyFixture('catalog', ns));
      await new Promise((r) => setTimeout(r, 100));
      expect(c.events).toHaveLength(0);
    });

    it('status is a subresource: putStatus moves the version but not the generation; a put keeps the stored status', async () => {
      const created = await store.put(proxyVersionFixture('proxy-1', ns));
      const gen = (created.metadata as { generation?: number }).generation;
      const withStatus = await store.putStatus('ProxyVersion', `${ns}/proxy-1`, { phase: 'Progressing', currentBatch: 1 });
      expect(compareVersions(withStatus.metadata.resourceVersion!, created.metadata.resourceVersion!)).toBeGreaterThan(0);
      expect((withStatus.metadata as { generation?: number }).generation).toBe(gen);
      expect((withStatus as ProxyVersion).status).toMatchObject({ phase: 'Progressing', currentBatch: 1 });
      // A user's put (as octoctl apply or kubectl apply) changes the spec and leaves the status alone,
      // whatever status it carries.
      const applied = await store.put({ ...proxyVersionFixture('proxy-1', ns), spec: { ...proxyVersionFixture('proxy-1', ns).spec, paused: true }, status: { phase: 'Succeeded' } } as ProxyVersion);
      expect((applied as ProxyVersion).status).toMatchObject({ phase: 'Progressing', currentBatch: 1 });
      expect((applied.metadata as { generation?: number }).generation).toBe((gen ?? 0) + 1);
      expect(((await store.get('ProxyVersion', `${ns}/proxy-1`)) as ProxyVersion).status?.phase).toBe('Progressing');
    });

    it('a put withStatus (a mirror of a store that owns status) writes the status too', async () => {
      await store.put({ ...proxyVersionFixture('proxy-9', ns), status: { phase: 'Succeeded' } } as ProxyVersion, { withStatus: true });
      expect(((await store.get('ProxyVersion', `${ns}/proxy-9`)) as ProxyVersion).status?.phase).toBe('Succeeded');
    });

    it('putStatus refuses a stale version, an absent object and an invalid status, each with its typed error', async () => {
      const created = await store.put(routePolicyFixture('catalog', ns));
      await store.putStatus('RoutePolicy', `${ns}/catalog`, { accepted: true });
      await expect(store.putStatus('RoutePolicy', `${ns}/catalog`, { accepted: false }, { expectedVersion: created.metadata.resourceVersion! })).rejects.toBeInstanceOf(ConflictError);
      await expect(store.putStatus('RoutePolicy', `${ns}/nothing`, { accepted: true })).rejects.toBeInstanceOf(NotFoundError);
      const bad = await store.putStatus('RoutePolicy', `${ns}/catalog`, { accepted: 'yes' }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(ValidationError);
      expect(String((bad as Error).message)).toContain('status.accepted');
      expect(((await store.get('RoutePolicy', `${ns}/catalog`)) as RoutePolicy).status).toMatchObject({ accepted: true });
    });

    it('VersionExpiredError is a typed error', () => {
      expect(new VersionExpiredError('x')).toBeInstanceOf(Error);
    });
  });
}
