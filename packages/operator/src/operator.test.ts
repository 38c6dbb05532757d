// The operator end to end in-process: the memory store, a simulated fleet over loopback HTTP (its
// instances follow the targets), the real controllers and planner.
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from '@jest/globals';
import { compareSemver, targetPercent, type ProxyVersion } from '@octo-mesh/api';
import { createLogger, createMetricsRegistry, waitFor } from '@octo-mesh/runtime';
import { MemoryEventRecorder } from './events.js';
import { FleetPoller, httpFleetClient } from './fleet.js';
import { FleetSim, type SimTargetFunction } from './fleet-sim.js';
import { OperatorMetrics } from './metrics.js';
import { Operator } from './operator.js';
import { MemoryOperatorStore } from './store.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

// The stable-hash rule as pilot/src/upgrade.ts has it (the k8s tests use pilot's own function).
const bucket = (id: string) => createHash('sha256').update(id).digest().readUInt32BE(0) % 10_000;
const targetOf: SimTargetFunction = (id, pvs) => {
  for (const pv of [...pvs].sort((a, b) => compareSemver(b.spec.version, a.spec.version))) {
    if (bucket(id) < targetPercent(pv.spec, pv.status) * 100) return { version: pv.spec.version, rollout: `${pv.metadata.namespace}/${pv.metadata.name}` };
  }
  return undefined;
};

const pv = (version: string, strategy: Partial<ProxyVersion['spec']['strategy']> = {}): ProxyVersion => ({
  apiVersion: 'mesh.octo.io/v1alpha1',
  kind: 'ProxyVersion',
  metadata: { name: `proxy-${version.replaceAll('.', '-')}`, namespace: 'mesh' },
  spec: {
    version,
    package: { url: `https://repo/${version}.tgz`, sha256: 'a'.repeat(64) },
    scope: {},
    paused: false,
    strategy: {
      canary: { percent: 10 },
      steps: [50, 100],
      pauseBetweenBatches: '0s',
      healthGate: { minReadySeconds: 0, maxFailurePercent: 0, progressDeadline: '20s' },
      autoRollback: true,
      ...strategy,
    },
  },
});

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(badVersions: string[] = []) {
  const store = new MemoryOperatorStore();
  const sim = new FleetSim({ pilots: 2, instances: 200, initialVersion: '1.0.0', targetOf, swapMs: 30, readyMs: 30, badVersions });
  await sim.start();
  const tick = setInterval(() => {
    sim.setProxyVersions(store.list('ProxyVersion'));
    sim.step();
  }, 10);
  const metrics = new OperatorMetrics(createMetricsRegistry('test'));
  const logger = quiet();
  const events = new MemoryEventRecorder();
  const operator = new Operator({ store, fleet: new FleetPoller(httpFleetClient(sim.metaUrl, 1000), logger, metrics), events, metrics, logger, pollIntervalMs: 50, statusMinIntervalMs: 100 });
  cleanup.push(async () => {
    clearInterval(tick);
    await operator.stopLeading();
    await sim.stop();
  });
  // 1.0.0 is what runs: it succeeded before.
  store.apply(pv('1.0.0'));
  await store.updateStatus('ProxyVersion', 'mesh/proxy-1-0-0', () => ({ phase: 'Succeeded', observedGeneration: 1, currentBatch: 2, total: 200 }));
  operator.startLeading();
  return { store, sim, events, operator };
}

const phaseOf = (store: MemoryOperatorStore, key: string) => store.get('ProxyVersion', key)?.status?.phase;

describe('Operator (memory store, simulated fleet)', () => {
  it('rolls a good release through the canary and both batches to Succeeded, one write per 100 ms at most', async () => {
    const { store, sim, events } = await setup();
    store.apply(pv('1.1.0'));
    await waitFor('1.1.0 succeeded', async () => phaseOf(store, 'mesh/proxy-1-1-0'), (p) => p === 'Succeeded', { timeoutMs: 20_000 });
    expect(sim.versions()).toEqual({ '1.1.0': 200 });
    const batches = store.writes.filter((w) => w.key === 'mesh/proxy-1-1-0').map((w) => (w.status as { currentBatch?: number }).currentBatch);
    expect([...new Set(batches)]).toEqual([0, 1, 2]);
    const times = store.writes.filter((w) => w.key === 'mesh/proxy-1-1-0').map((w) => w.at);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(95);
    expect(events.events.filter((e) => e.target.name === 'proxy-1-1-0').map((e) => e.reason)).toEqual(['RolloutStarted', 'BatchHealthy', 'BatchStarted', 'BatchHealthy', 'BatchStarted', 'BatchHealthy', 'RolloutSucceeded']);
  }, 30_000);

  it('a release that never becomes ready fails its canary, rolls back, and instances outside the canary are never touched', async () => {
    const { store, sim, events } = await setup(['1.2.0']);
    store.apply(pv('1.2.0'));
    await waitFor('1.2.0 rolled back', async () => phaseOf(store, 'mesh/proxy-1-2-0'), (p) => p === 'RolledBack', { timeoutMs: 20_000 });
    expect(sim.versions()).toEqual({ '1.0.0': 200 });
    const tried = sim.instances.filter((i) => i.bad.has('1.2.0')).map((i) => i.instanceId);
    expect(tried.length).toBeGreaterThan(0);
    expect(tried.length).toBeLessThan(40); // the canary (10 %) only
    const st = store.get('ProxyVersion', 'mesh/proxy-1-2-0')!.status!;
    expect(st).toMatchObject({ phase: 'RolledBack', currentBatch: 0, rollbackTo: '1.0.0' });
    expect(events.events.filter((e) => e.target.name === 'proxy-1-2-0').map((e) => e.reason)).toEqual(['RolloutStarted', 'RollingBack', 'RolledBack']);
  }, 30_000);

  it('holds while a pilot is silent, and continues when it answers again', async () => {
    const { store, sim } = await setup();
    sim.silent.add('pilot-1');
    store.apply(pv('1.1.0'));
    await waitFor('holding', async () => store.get('ProxyVersion', 'mesh/proxy-1-1-0')?.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, (r) => r === 'AggregateIncomplete', { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 500));
    expect(store.get('ProxyVersion', 'mesh/proxy-1-1-0')?.status?.phase).toBe('Pending');
    sim.silent.delete('pilot-1');
    await waitFor('1.1.0 succeeded', async () => phaseOf(store, 'mesh/proxy-1-1-0'), (p) => p === 'Succeeded', { timeoutMs: 20_000 });
  }, 30_000);

  it('deleting a release mid-rollout sends its instances back to the last Succeeded release', async () => {
    const { store, sim, events } = await setup();
    store.apply(pv('1.1.0', { pauseBetweenBatches: '1h' }));
    await waitFor('canary healthy', async () => store.get('ProxyVersion', 'mesh/proxy-1-1-0')?.status?.batchHealthyAt, (t) => t !== undefined, { timeoutMs: 10_000 });
    expect(sim.versions()['1.1.0']).toBeGreaterThan(0);
    store.delete('ProxyVersion', 'mesh/proxy-1-1-0');
    await waitFor('all back on 1.0.0', async () => sim.versions(), (v) => v['1.0.0'] === 200, { timeoutMs: 10_000 });
    await waitFor('deleted event', async () => events.events.map((e) => e.reason), (r) => r.includes('RolloutDeleted'), { timeoutMs: 5000 });
  }, 30_000);
});

describe('AuthorizationPolicy status (memory store, simulated pilots)', () => {
  const ap = (generation: number) =>
    ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'readers', namespace: 'demo', generation }, spec: { service: 'catalog', action: 'ALLOW' } }) as const;
  // What a pilot's /debug/authorizationpolicyz says of the policy (the contract's shape).
  const view = (generation: number, accepted: boolean, acked: number, total: number, message = 'translated') => ({
    policy: 'demo/readers',
    target: 'demo/catalog',
    status: { observedGeneration: generation, accepted, conditions: [{ type: 'Accepted', status: accepted ? 'True' : 'False', reason: accepted ? 'Translated' : 'Invalid', message }], sidecars: { total, acked, nacked: 0 } },
  });

  it('sums the pilots\' views into Accepted and Synced with sidecar counts, and follows a rejection', async () => {
    const store = new MemoryOperatorStore();
    const sim = new FleetSim({ pilots: 2, instances: 0, initialVersion: '1.0.0', targetOf: () => undefined });
    await sim.start();
    const metrics = new OperatorMetrics(createMetricsRegistry('test'));
    const logger = quiet();
    const operator = new Operator({ store, fleet: new FleetPoller(httpFleetClient(sim.metaUrl, 1000), logger, metrics), events: new MemoryEventRecorder(), metrics, logger, statusMinIntervalMs: 50, routePolicyResyncMs: 100 });
    cleanup.push(async () => {
      await operator.stopLeading();
      await sim.stop();
    });
    store.apply(ap(1) as never);
    operator.startLeading();
    const statusOf = () => store.get('AuthorizationPolicy', 'demo/readers')?.status;
    // No pilot has a sidecar of catalog yet.
    await waitFor('NoSidecars', async () => statusOf(), (s) => s?.conditions?.find((c) => c.type === 'Accepted')?.reason === 'NoSidecars', { timeoutMs: 10_000, intervalMs: 20 });
    expect(statusOf()!.conditions!.find((c) => c.type === 'Accepted')!.message).toContain('no sidecar of the protected service');

    sim.authorizationViews.set('pilot-0', [view(1, true, 2, 2)]);
    sim.authorizationViews.set('pilot-1', [view(1, true, 1, 3)]);
    const s = await waitFor('counts', async () => statusOf(), (x) => x?.sidecars?.total === 5, { timeoutMs: 10_000, intervalMs: 20 });
    expect(s).toMatchObject({ observedGeneration: 1, accepted: true, sidecars: { total: 5, acked: 3, nacked: 0 } });
    expect(s!.conditions!.find((c) => c.type === 'Synced')).toMatchObject({ status: 'Unknown', reason: 'Pending', message: '3 of 5 sidecars ACKed generation 1' });

    sim.authorizationViews.set('pilot-1', [view(1, true, 3, 3)]);
    const synced = await waitFor('all acked', async () => statusOf(), (x) => x?.sidecars?.acked === 5, { timeoutMs: 10_000, intervalMs: 20 });
    expect(synced!.conditions!.find((c) => c.type === 'Synced')).toMatchObject({ status: 'True', reason: 'AllAcked' });

    store.apply({ ...ap(1), spec: { service: 'catalog', action: 'DENY' } } as never);
    const bad = 'spec.rules[0].from[0].serviceAccounts[0]: must be <namespace>/<service account>; enforced fail-closed (allows nothing)';
    sim.authorizationViews.set('pilot-0', [view(2, false, 0, 2, bad)]);
    sim.authorizationViews.set('pilot-1', [view(2, false, 0, 3, bad)]);
    const rejected = await waitFor('rejected', async () => statusOf(), (x) => x?.observedGeneration === 2 && x.accepted === false, { timeoutMs: 10_000, intervalMs: 20 });
    expect(rejected!.conditions!.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'Invalid', message: bad });
    expect(rejected!.conditions!.find((c) => c.type === 'Synced')).toMatchObject({ status: 'False', reason: 'NotAccepted' });
  });
});
