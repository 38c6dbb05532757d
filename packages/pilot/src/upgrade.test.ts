import { describe, expect, it } from '@jest/globals';
import type { ProxyVersion } from '@octo-mesh/api';
import type { NodeIdentity } from './node-meta.js';
import { instanceBucket, rolloutPercent, targetFor } from './upgrade.js';

const pv = (version: string, status: ProxyVersion['status'], strategy: Partial<ProxyVersion['spec']['strategy']> = { steps: [10, 50, 100] }, scope: ProxyVersion['spec']['scope'] = {}): ProxyVersion => ({
  apiVersion: 'mesh.octo.io/v1alpha1',
  kind: 'ProxyVersion',
  metadata: { name: `p-${version}`, namespace: 'octo-system', generation: 1 },
  spec: {
    version,
    package: { url: `https://repo/${version}.tgz`, sha256: 'b'.repeat(64) },
    scope,
    strategy: { pauseBetweenBatches: '30s', healthGate: { minReadySeconds: 10, maxFailurePercent: 0, progressDeadline: '10m' }, autoRollback: true, ...strategy },
    paused: false,
  },
  ...(status ? { status } : {}),
});
const node = (instanceId: string, extra: Partial<NodeIdentity> = {}): NodeIdentity => ({ id: instanceId, instanceId, namespace: 'shop', labels: {}, dependencies: [], ...extra });

describe('rolloutPercent', () => {
  // columns: strategy, status, expected percent
  it.each<[string, Partial<ProxyVersion['spec']['strategy']>, ProxyVersion['status'], number]>([
    ['pending', { steps: [10, 100] }, { phase: 'Pending' }, 0],
    ['first step', { steps: [10, 100] }, { phase: 'Progressing', currentBatch: 0 }, 10],
    ['canary then steps', { canary: { percent: 1 }, steps: [20, 100] }, { phase: 'Progressing', currentBatch: 1 }, 20],
    ['canary by instances', { canary: { instances: 5 }, steps: [100] }, { phase: 'Paused', currentBatch: 0, total: 50 }, 10],
    ['max unavailable', { maxUnavailable: 25 }, { phase: 'Progressing', currentBatch: 1, total: 100 }, 50],
    ['succeeded', { steps: [10, 100] }, { phase: 'Succeeded' }, 100],
    ['rolled back', { steps: [10, 100] }, { phase: 'RolledBack', currentBatch: 1 }, 0],
    ['rolling back', { steps: [10, 100] }, { phase: 'RollingBack', currentBatch: 1 }, 0],
    ['failed with autoRollback', { steps: [10, 100] }, { phase: 'Failed', currentBatch: 1 }, 0],
    ['failed without autoRollback holds its batch', { steps: [10, 100], autoRollback: false }, { phase: 'Failed', currentBatch: 0 }, 10],
    ['superseded holds its batch', { steps: [10, 50, 100] }, { phase: 'Superseded', currentBatch: 1 }, 50],
    ['canary percent then steps at or below it are dropped', { canary: { percent: 20 }, steps: [10, 20, 60, 100] }, { phase: 'Progressing', currentBatch: 1, total: 10 }, 60],
    ['max unavailable with a canary', { canary: { instances: 10 }, maxUnavailable: 30 }, { phase: 'Progressing', currentBatch: 2, total: 100 }, 70],
    ['max unavailable, last batch', { maxUnavailable: 30 }, { phase: 'Progressing', currentBatch: 9, total: 100 }, 100],
  ])('%s', (_n, strategy, status, expected) => {
    expect(rolloutPercent(pv('1.0.0', status, strategy))).toBeCloseTo(expected);
  });
});

describe('targetFor', () => {
  const ids = Array.from({ length: 2000 }, (_, i) => `pod-${i}`);

  it('covers about the rollout share of instances, and a growing rollout never drops one', () => {
    const at = (batch: number) => new Set(ids.filter((id) => targetFor(node(id), [pv('1.5.0', { phase: 'Progressing', currentBatch: batch })])));
    const [ten, fifty, all] = [at(0), at(1), at(2)];
    expect(ten.size / ids.length).toBeGreaterThan(0.07);
    expect(ten.size / ids.length).toBeLessThan(0.13);
    expect(fifty.size / ids.length).toBeGreaterThan(0.45);
    for (const id of ten) expect(fifty.has(id)).toBe(true);
    expect(all.size).toBe(ids.length);
  });

  it('is stable for an instance id', () => {
    expect(instanceBucket('pod-7')).toBe(instanceBucket('pod-7'));
  });

  it('prefers the newest release that reached the instance, else an older one, else none', () => {
    const old = pv('1.4.0', { phase: 'Succeeded' });
    const fresh = pv('1.10.0', { phase: 'Progressing', currentBatch: 0 });
    const versions = ids.slice(0, 200).map((id) => targetFor(node(id), [old, fresh])?.version);
    expect(new Set(versions)).toEqual(new Set(['1.4.0', '1.10.0']));
    expect(targetFor(node('x'), [pv('1.4.0', { phase: 'Pending' })])).toBeUndefined();
  });

  it('gives the instances of a release that rolls back, failed or was deleted the last Succeeded release, never "no target"', () => {
    const good = pv('1.4.0', { phase: 'Succeeded' });
    for (const bad of [
      pv('1.5.0', { phase: 'RollingBack', currentBatch: 2 }),
      pv('1.5.0', { phase: 'RolledBack', currentBatch: 2 }),
      pv('1.5.0', { phase: 'Failed', currentBatch: 2 }),
      undefined, // deleted
    ]) {
      const versions = new Set(ids.slice(0, 300).map((id) => targetFor(node(id), bad ? [good, bad] : [good])?.version));
      expect(versions).toEqual(new Set(['1.4.0']));
    }
    // Failed without autoRollback: held, the instances it reached keep it.
    const held = pv('1.5.0', { phase: 'Failed', currentBatch: 1 }, { steps: [10, 50, 100], autoRollback: false });
    const versions = ids.slice(0, 300).map((id) => targetFor(node(id), [good, held])?.version);
    expect(new Set(versions)).toEqual(new Set(['1.4.0', '1.5.0']));
  });

  it('honours the scope: namespaces, workload labels, services', () => {
    const done = { phase: 'Succeeded' as const };
    expect(targetFor(node('a'), [pv('1.0.0', done, undefined, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } })])).toBeDefined();
    expect(targetFor(node('a'), [pv('1.0.0', done, undefined, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'other' } } })])).toBeUndefined();
    expect(targetFor(node('a', { labels: { tier: 'web' } }), [pv('1.0.0', done, undefined, { workloadSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] } })])).toBeDefined();
    expect(targetFor(node('a', { labels: { tier: 'db' } }), [pv('1.0.0', done, undefined, { workloadSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] } })])).toBeUndefined();
    expect(targetFor(node('a', { app: 'cart' }), [pv('1.0.0', done, undefined, { services: ['cart'] })])).toMatchObject({ version: '1.0.0', sha256: 'b'.repeat(64) });
    expect(targetFor(node('a'), [pv('1.0.0', done, undefined, { services: ['cart'] })])).toBeUndefined();
  });
});
