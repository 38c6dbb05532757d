// Server-side apply and a @kubernetes/client-node informer on RoutePolicies: create, update and
// delete are each seen within 1 s.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CustomObjectsApi, KubernetesObjectApi, makeInformer, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { adminKubeConfig, createTestNamespace, kubectl, REPO_ROOT } from '@octo-mesh/testing';

type Policy = KubernetesObject & { spec: { targetRef: { service: string }; loadBalancer?: { policy: string } } };

let ns = '';
beforeAll(async () => {
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/routepolicies.mesh.octo.io']).status).toBe(0);
  ns = await createTestNamespace('informer');
});

describe('RoutePolicy informer', () => {
  const events: { type: string; name: string; policy?: string; at: number }[] = [];
  let informer: ReturnType<typeof makeInformer<Policy>> | undefined;

  afterAll(async () => {
    await informer?.stop();
  });

  /** Resolves with the time the first event matching `pred` arrived. */
  const seen = (pred: (e: (typeof events)[number]) => boolean, timeoutMs = 5000) =>
    new Promise<number>((resolve, reject) => {
      const started = Date.now();
      const poll = () => {
        const e = events.find(pred);
        if (e) return resolve(e.at);
        if (Date.now() - started > timeoutMs) return reject(new Error(`no matching event within ${timeoutMs} ms; saw ${JSON.stringify(events)}`));
        setTimeout(poll, 5);
      };
      poll();
    });

  it('sees server-side-applied create, update and delete within 1 s each', async () => {
    const kc = adminKubeConfig();
    const custom = kc.makeApiClient(CustomObjectsApi);
    informer = makeInformer<Policy>(kc, `/apis/mesh.octo.io/v1alpha1/namespaces/${ns}/routepolicies`, () =>
      custom.listNamespacedCustomObject({ group: 'mesh.octo.io', version: 'v1alpha1', namespace: ns, plural: 'routepolicies' }),
    );
    for (const type of ['add', 'update', 'delete'] as const)
      informer.on(type, (obj) => events.push({ type, name: obj.metadata!.name!, policy: obj.spec.loadBalancer?.policy, at: Date.now() }));
    await informer.start();

    const objects = KubernetesObjectApi.makeApiClient(kc);
    const policy = (lb: string): Policy => ({
      apiVersion: 'mesh.octo.io/v1alpha1',
      kind: 'RoutePolicy',
      metadata: { name: 'catalog', namespace: ns },
      spec: { targetRef: { service: 'catalog' }, loadBalancer: { policy: lb } },
    });
    const ssa = (p: Policy) => objects.patch(p, undefined, undefined, 'octo-e2e', true, PatchStrategy.ServerSideApply);

    let t = Date.now();
    await ssa(policy('RoundRobin'));
    expect((await seen((e) => e.type === 'add' && e.name === 'catalog')) - t).toBeLessThan(1000);

    t = Date.now();
    await ssa(policy('LeastRequest'));
    expect((await seen((e) => e.type === 'update' && e.policy === 'LeastRequest')) - t).toBeLessThan(1000);
    expect(informer.get('catalog', ns)?.spec.loadBalancer?.policy).toBe('LeastRequest');

    t = Date.now();
    await objects.delete(policy('LeastRequest'));
    expect((await seen((e) => e.type === 'delete' && e.name === 'catalog')) - t).toBeLessThan(1000);
    expect(informer.list(ns)).toEqual([]);
  });
});
