// The operator's Kubernetes store and RBAC on a real API server, as the operator's ServiceAccount:
// status goes through the status subresource (a spec in the body is ignored), a write that loses
// a resourceVersion race is re-read and decided again, and the ServiceAccount can do exactly what
// packages/operator/deploy/rbac.yaml grants (kubectl auth can-i, both ways).
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { ProxyVersion, ProxyVersionStatus } from '@octo-mesh/api';
import { createLogger, createMetricsRegistry, waitFor } from '@octo-mesh/runtime';
import { adminKubeConfig, kubectl, REPO_ROOT } from '@octo-mesh/testing';
import { KubernetesOperatorStore } from '../../packages/operator/src/kube-store.js';
import { OperatorMetrics } from '../../packages/operator/src/metrics.js';
import { GROUP, VERSION, getProxyVersion, operatorNamespace, proxyVersion, type OperatorNamespace } from './operator-support.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

let env: OperatorNamespace;
let store: KubernetesOperatorStore;
let metrics: OperatorMetrics;

beforeAll(async () => {
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/proxyversions.mesh.octo.io', 'crd/routepolicies.mesh.octo.io', 'crd/authorizationpolicies.mesh.octo.io']).status).toBe(0);
  env = await operatorNamespace('op-store');
  const kc = new KubeConfig();
  kc.loadFromFile(env.kubeconfig);
  metrics = new OperatorMetrics(createMetricsRegistry('test'));
  store = new KubernetesOperatorStore({ kubeConfig: kc, namespace: env.ns, logger: quiet(), metrics });
  await store.start();
}, 60_000);

afterAll(async () => {
  await store?.stop();
});

describe('KubernetesOperatorStore as the operator ServiceAccount', () => {
  it('writes status through the status subresource; a lost resourceVersion race is re-read and decided again', async () => {
    const admin = adminKubeConfig().makeApiClient(CustomObjectsApi);
    const body = proxyVersion(env.ns, '2.0.0');
    await admin.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: env.ns, plural: 'proxyversions', body });
    const key = `${env.ns}/${body.metadata.name}`;
    await waitFor('the informer to see it', () => store.get('ProxyVersion', key), (o) => o !== undefined, { timeoutMs: 10_000 });

    // Someone else writes the status between our read and our write: the first attempt conflicts.
    const decided: (string | undefined)[] = [];
    let raced = false;
    const stored = await store.updateStatus('ProxyVersion', key, (current: ProxyVersion) => {
      decided.push(current.status?.message);
      if (!raced) {
        raced = true;
        expect(kubectl(['-n', env.ns, 'patch', 'proxyversion', body.metadata.name, '--subresource=status', '--type=merge', '-p', '{"status":{"message":"written by someone else"}}']).status).toBe(0);
      }
      return { ...current.status, phase: 'Pending', message: `decided on: ${current.status?.message ?? 'nothing'}` } as ProxyVersionStatus;
    });
    expect(decided).toEqual([undefined, 'written by someone else']);
    expect(stored?.status?.message).toBe('decided on: written by someone else');
    expect((await metrics.statusConflicts.get()).values[0]?.value).toBe(1);
    const fresh = await getProxyVersion(env.ns, body.metadata.name);
    expect(fresh.status).toMatchObject({ phase: 'Pending', message: 'decided on: written by someone else' });
    // Read-your-writes: the store serves what it wrote even before the informer delivers it.
    expect(store.get('ProxyVersion', key)?.status?.message).toBe('decided on: written by someone else');
  }, 30_000);

  it('a spec in the status write is ignored by the API server (the subresource only takes status)', async () => {
    const name = 'proxy-2-0-0';
    const key = `${env.ns}/${name}`;
    const stored = await store.updateStatus('ProxyVersion', key, (current) => {
      current.spec.paused = true; // the body carries it, the API server drops it
      return { ...current.status, message: 'status only' };
    });
    expect(stored?.spec.paused).toBe(false);
    expect((await getProxyVersion(env.ns, name)).spec.paused).toBe(false);
  }, 30_000);
});

describe('RBAC of the operator ServiceAccount (packages/operator/deploy/rbac.yaml)', () => {
  // columns: verb and resource (kubectl auth can-i arguments), namespace ('' = the operator's), expected
  const cases: [string[], string, 'yes' | 'no'][] = [
    [['list', 'proxyversions.mesh.octo.io'], '', 'yes'],
    [['watch', 'routepolicies.mesh.octo.io'], '', 'yes'],
    [['get', 'proxyversions.mesh.octo.io'], 'default', 'yes'],
    [['update', 'proxyversions.mesh.octo.io', '--subresource=status'], '', 'yes'],
    [['patch', 'routepolicies.mesh.octo.io', '--subresource=status'], '', 'yes'],
    [['create', 'events'], '', 'yes'],
    [['patch', 'events'], '', 'yes'],
    [['get', 'leases.coordination.k8s.io'], '', 'yes'],
    [['create', 'leases.coordination.k8s.io'], '', 'yes'],
    [['update', 'leases.coordination.k8s.io'], '', 'yes'],
    // and nothing else
    [['update', 'proxyversions.mesh.octo.io'], '', 'no'],
    [['create', 'proxyversions.mesh.octo.io'], '', 'no'],
    [['delete', 'routepolicies.mesh.octo.io'], '', 'no'],
    [['delete', 'leases.coordination.k8s.io'], '', 'no'],
    [['update', 'leases.coordination.k8s.io'], 'default', 'no'],
    [['get', 'secrets'], '', 'no'],
    [['list', 'pods'], '', 'no'],
    [['*', '*'], '', 'no'],
  ];
  it.each(cases)('can-i %j in %j: %s', (args, ns, expected) => {
    const r = kubectl(['auth', 'can-i', ...args, '-n', ns || env.ns], { kubeconfig: env.kubeconfig });
    expect(r.stdout.trim()).toBe(expected);
  });
});
