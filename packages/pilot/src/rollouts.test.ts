import { describe, expect, it } from '@jest/globals';
import { proxyVersion, type ProxyVersion } from '@octo-mesh/api';
import type { AgentStatus } from '@octo-mesh/contracts';
import type { NodeIdentity } from './node-meta.js';
import { rolloutAggregates, type ReportingNode } from './rollouts.js';
import { targetFor } from './upgrade.js';

const pv = (name: string, version: string, phase: string, extra: Record<string, unknown> = {}): ProxyVersion =>
  proxyVersion.parse({
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'ProxyVersion',
    metadata: { name, namespace: 'octo-system', generation: 3 },
    spec: { version, package: { url: 'http://repo/p.tgz', sha256: version[0]!.repeat(64) }, strategy: { steps: [50, 100] }, ...extra },
    status: { phase, currentBatch: 0, total: 4 },
  });

const node = (id: string, labels: Record<string, string> = { app: 'catalog' }): NodeIdentity => ({ id, namespace: 'demo', instanceId: id, app: labels['app'] ?? '', labels, dependencies: [] });

const agent = (running: string, more: Partial<AgentStatus> = {}): AgentStatus => ({
  instanceId: '',
  runningVersion: running,
  target: null,
  phase: 'Idle',
  ready: true,
  readySince: '2026-12-06T10:00:00.000Z',
  lastError: null,
  badVersions: [],
  lastChange: '2026-12-06T10:00:00.000Z',
  ...more,
});

// Instances whose stable hash falls in the first 50 % (steps [50, 100], batch 0) and those that do not.
const ids = Array.from({ length: 40 }, (_, i) => `catalog-${i}`);
const v2 = pv('proxy-2', '2.0.0', 'Progressing');
const inBatch = ids.filter((id) => targetFor(node(id), [v2])?.version === '2.0.0');
const outOfBatch = ids.filter((id) => !inBatch.includes(id));

describe('rolloutAggregates', () => {
  it('has instances on both sides of the first batch to test with', () => {
    expect(inBatch.length).toBeGreaterThan(3);
    expect(outOfBatch.length).toBeGreaterThan(3);
  });

  // columns: case, nodes, expected counts of proxy-2 (inScope, targeted, upgraded, ready, failed)
  it.each<[string, ReportingNode[], [number, number, number, number, number]]>([
    ['no agent reports yet', [{ identity: node(inBatch[0]!) }, { identity: node(outOfBatch[0]!) }], [2, 1, 0, 0, 0]],
    ['targeted and still on the old version', [{ identity: node(inBatch[0]!), agent: agent('1.0.0') }], [1, 1, 0, 0, 0]],
    ['upgraded, not ready yet', [{ identity: node(inBatch[0]!), agent: agent('2.0.0', { ready: false, readySince: null }) }], [1, 1, 1, 0, 0]],
    ['upgraded and ready', [{ identity: node(inBatch[0]!), agent: agent('2.0.0') }], [1, 1, 1, 1, 0]],
    ['refused the package', [{ identity: node(inBatch[0]!), agent: agent('1.0.0', { badVersions: [{ version: '2.0.0', sha256: '2'.repeat(64), reason: 'DigestMismatch' }] }) }], [1, 1, 0, 0, 1]],
    ['bad for another package of the same version does not count', [{ identity: node(inBatch[0]!), agent: agent('1.0.0', { badVersions: [{ version: '2.0.0', sha256: 'f'.repeat(64), reason: 'DigestMismatch' }] }) }], [1, 1, 0, 0, 0]],
    ['running 2.0.0 outside the batch is not counted as upgraded', [{ identity: node(outOfBatch[0]!), agent: agent('2.0.0') }], [1, 0, 0, 0, 0]],
    ['out of scope', [{ identity: node(inBatch[0]!, { app: 'ratings' }), agent: agent('2.0.0') }], [0, 0, 0, 0, 0]],
  ])('%s', (_case, nodes, [inScope, targeted, upgraded, ready, failed]) => {
    const scoped = pv('proxy-2', '2.0.0', 'Progressing', { scope: { workloadSelector: { matchLabels: { app: 'catalog' } } } });
    const [agg] = rolloutAggregates(nodes, [scoped]);
    expect(agg).toMatchObject({ rollout: 'octo-system/proxy-2', generation: 3, version: '2.0.0', batch: 0, inScope, targeted, upgraded, ready, failed });
  });

  it('names the failures with the agent’s message and keeps at most 20', () => {
    const nodes = inBatch.map((id) => ({
      identity: node(id),
      agent: agent('1.0.0', { badVersions: [{ version: '2.0.0', sha256: '2'.repeat(64), reason: 'NotReady' }], lastError: { reason: 'NotReady', message: 'not ready within 10s', version: '2.0.0' } }),
    }));
    const [agg] = rolloutAggregates([...nodes, ...nodes, ...nodes, ...nodes, ...nodes], [v2]);
    expect(agg!.failed).toBe(nodes.length * 5);
    expect(agg!.failures).toHaveLength(Math.min(20, nodes.length * 5));
    expect(agg!.failures[0]).toEqual({ instanceId: inBatch[0], reason: 'NotReady', message: 'not ready within 10s' });
  });

  it('reports the newest ready time among ready instances', () => {
    const [agg] = rolloutAggregates(
      [
        { identity: node(inBatch[0]!), agent: agent('2.0.0', { readySince: '2026-12-06T10:00:05.000Z' }) },
        { identity: node(inBatch[1]!), agent: agent('2.0.0', { readySince: '2026-12-06T10:00:09.000Z' }) },
        { identity: node(inBatch[2]!), agent: agent('2.0.0', { ready: false, readySince: null }) },
      ],
      [v2],
    );
    expect(agg!.newestReadyAt).toBe('2026-12-06T10:00:09.000Z');
  });

  it('while a rollout rolls back, its instances count toward the Succeeded release they fall back to', () => {
    const v1 = pv('proxy-1', '1.0.0', 'Succeeded');
    const back = pv('proxy-2', '2.0.0', 'RollingBack');
    const nodes = [{ identity: node(inBatch[0]!), agent: agent('2.0.0') }, { identity: node(inBatch[1]!), agent: agent('1.0.0') }];
    const [a1, a2] = rolloutAggregates(nodes, [v1, back]);
    expect(a2).toMatchObject({ inScope: 2, targeted: 0, upgraded: 0 });
    expect(a1).toMatchObject({ inScope: 2, targeted: 2, upgraded: 1, ready: 1 });
  });

  it('lists a ProxyVersion with no sidecar in scope here, so the operator can tell it was seen', () => {
    expect(rolloutAggregates([], [v2])).toEqual([expect.objectContaining({ rollout: 'octo-system/proxy-2', inScope: 0 })]);
  });
});
