import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { MemoryStore } from './memory-store.js';
import { describeStoreContract, routePolicyFixture } from './store-contract.js';
import { isVersionExpired, type StoreEvent } from './store.js';

describeStoreContract('memory', () => MemoryStore.open());

describe('MemoryStore', () => {
  it('persisted to a directory, a reopened store has every object and continues the version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-store-'));
    try {
      const a = MemoryStore.open({ dir });
      await a.put(routePolicyFixture('catalog', 'demo', 80));
      await a.put(routePolicyFixture('ratings'));
      await a.delete('RoutePolicy', 'demo/ratings');
      const version = a.version();
      await a.close();

      const b = MemoryStore.open({ dir });
      expect(b.version()).toBe(version);
      expect(((await b.get('RoutePolicy', 'demo/catalog')) as RoutePolicy).spec.rules?.[0]?.route[0]?.weight).toBe(80);
      expect((await b.list('RoutePolicy')).items).toHaveLength(1);
      // A watcher that had seen everything resumes; one that had not must resync.
      b.watch(() => {}, { fromVersion: version }).close();
      expect(() => b.watch(() => {}, { fromVersion: '1' })).toThrow(/older than the retained history/);
      const next = await b.put(routePolicyFixture('catalog', 'demo', 10));
      expect(BigInt(next.metadata.resourceVersion!)).toBe(BigInt(version) + 1n);
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('forgets history beyond historySize: resuming from before it is VersionExpired', async () => {
    const s = MemoryStore.open({ historySize: 3 });
    const first = await s.put(routePolicyFixture('a'));
    for (const w of [10, 20, 30, 40]) await s.put(routePolicyFixture('a', 'demo', w));
    let err: unknown;
    try {
      s.watch(() => {}, { fromVersion: first.metadata.resourceVersion! });
    } catch (e) {
      err = e;
    }
    expect(isVersionExpired(err)).toBe(true);
    const seen: StoreEvent[] = [];
    s.watch((e) => seen.push(e), { fromVersion: String(BigInt(s.version()) - 3n) }).close();
    expect(seen).toHaveLength(3);
    await s.close();
  });

  it('sets generation only when the spec changes, and keeps uid and creationTimestamp', async () => {
    const s = MemoryStore.open();
    const a = await s.put(routePolicyFixture('a', 'demo', 80));
    const withLabel = await s.put({ ...routePolicyFixture('a', 'demo', 80), metadata: { name: 'a', namespace: 'demo', labels: { x: 'y' } } } as RoutePolicy);
    const changed = await s.put(routePolicyFixture('a', 'demo', 50));
    expect([a.metadata.generation, withLabel.metadata.generation, changed.metadata.generation]).toEqual([1, 1, 2]);
    expect(changed.metadata.uid).toBe(a.metadata.uid);
    expect(changed.metadata.creationTimestamp).toBe(a.metadata.creationTimestamp);
    await s.close();
  });
});
