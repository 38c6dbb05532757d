// The octo-operator executable on a real API server, as its ServiceAccount, against a simulated
// fleet of 200 sidecars on 2 pilots (loopback HTTP; the instances follow pilot's own target
// function): two replicas, the leader SIGKILLed mid-rollout, the other takes over within the
// lease time and finishes with no batch skipped or started twice; a replica stopped with SIGTERM
// releases the Lease, and the one started after it re-reads the status and continues.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiException, CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { waitFor } from '@octo-mesh/runtime';
import { adminKubeConfig, kubectl, REPO_ROOT } from '@octo-mesh/testing';
import { GROUP, VERSION, baseline, batchHistory, getProxyVersion, operatorNamespace, proxyVersion, recordStatus, startFleet, startOperator, type OperatorProcess } from './operator-support.js';

const LEASE_MS = 6000;
const RETRY_MS = 1000;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

beforeAll(async () => {
  execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', 'packages/operator'], { cwd: REPO_ROOT, stdio: 'pipe' });
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/proxyversions.mesh.octo.io', 'crd/routepolicies.mesh.octo.io', 'crd/authorizationpolicies.mesh.octo.io']).status).toBe(0);
}, 120_000);

function track(p: OperatorProcess): OperatorProcess {
  cleanup.push(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });
  return p;
}

const holder = async (ns: string) => {
  try {
    return (await adminKubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'octo-operator', namespace: ns })).spec?.holderIdentity ?? '';
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined; // not created yet
    throw err;
  }
};

async function rollout(prefix: string) {
  const env = await operatorNamespace(prefix);
  await baseline(env.ns, '1.0.0');
  const fleet = await startFleet(env.ns, { pilots: 2, instances: 200, initialVersion: '1.0.0' });
  cleanup.push(() => fleet.stop());
  return { env, fleet };
}

async function apply(ns: string, version: string) {
  const body = proxyVersion(ns, version);
  await adminKubeConfig().makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'proxyversions', body });
  const rec = recordStatus(ns, body.metadata.name);
  cleanup.push(() => rec.stop());
  return { name: body.metadata.name, rec };
}

const batchOf = async (ns: string, name: string) => (await getProxyVersion(ns, name)).status;

describe('octo-operator replicas on a real API server', () => {
  it('the leader is SIGKILLed mid-rollout; the other takes over within the lease time and finishes, no batch skipped or repeated', async () => {
    const { env, fleet } = await rollout('op-failover');
    const a = track(startOperator(env, fleet.sim.metaUrl, 'replica-a'));
    await waitFor('replica-a leads', () => holder(env.ns), (h) => h === 'replica-a', { timeoutMs: 20_000, intervalMs: 100 });
    const b = track(startOperator(env, fleet.sim.metaUrl, 'replica-b'));
    await waitFor('replica-b running', () => b.output(), (o) => o.includes('"listening"'), { timeoutMs: 20_000 });

    const { name, rec } = await apply(env.ns, '1.1.0');
    await waitFor('batch 2 of 4 in progress', () => batchOf(env.ns, name), (s) => s?.phase === 'Progressing' && (s.currentBatch ?? 0) >= 1, { timeoutMs: 60_000, intervalMs: 100 });
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exited;
    await waitFor('replica-b takes the Lease', () => holder(env.ns), (h) => h === 'replica-b', { timeoutMs: LEASE_MS + 3 * RETRY_MS + 2000, intervalMs: 100 });
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThanOrEqual(LEASE_MS + 2 * RETRY_MS + 1000);

    await waitFor('1.1.0 Succeeded', () => batchOf(env.ns, name), (s) => s?.phase === 'Succeeded', { timeoutMs: 90_000, intervalMs: 200 });
    await rec.stop();
    const history = batchHistory(rec.seen);
    expect(history.batches).toEqual([0, 1, 2, 3]);
    expect(history.startsPerBatch).toEqual({ 0: 1, 1: 1, 2: 1, 3: 1 });
    expect(fleet.sim.versions()).toEqual({ '1.1.0': 200 });
    process.stdout.write(`operator failover: takeover after SIGKILL in ${takeoverMs} ms (lease ${LEASE_MS} ms)\n`);
  }, 180_000);

  it('SIGTERM releases the Lease; a restarted operator re-reads the status and continues where it was', async () => {
    const { env, fleet } = await rollout('op-restart');
    const first = track(startOperator(env, fleet.sim.metaUrl, 'first'));
    await waitFor('first leads', () => holder(env.ns), (h) => h === 'first', { timeoutMs: 20_000, intervalMs: 100 });
    const { name, rec } = await apply(env.ns, '1.2.0');
    const at = await waitFor('batch 2 of 4 in progress', () => batchOf(env.ns, name), (s) => s?.phase === 'Progressing' && (s.currentBatch ?? 0) >= 1, { timeoutMs: 60_000, intervalMs: 100 });
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await holder(env.ns)).toBe(''); // released, not left to lapse
    const frozen = await batchOf(env.ns, name);
    expect(frozen?.currentBatch).toBeGreaterThanOrEqual(at!.currentBatch!);

    track(startOperator(env, fleet.sim.metaUrl, 'second'));
    await waitFor('second leads at once', () => holder(env.ns), (h) => h === 'second', { timeoutMs: 3 * RETRY_MS + 5000, intervalMs: 100 });
    await waitFor('1.2.0 Succeeded', () => batchOf(env.ns, name), (s) => s?.phase === 'Succeeded', { timeoutMs: 90_000, intervalMs: 200 });
    await rec.stop();
    const history = batchHistory(rec.seen);
    expect(history.batches).toEqual([0, 1, 2, 3]);
    expect(history.startsPerBatch).toEqual({ 0: 1, 1: 1, 2: 1, 3: 1 });
    expect(fleet.sim.versions()).toEqual({ '1.2.0': 200 });
  }, 180_000);
});
