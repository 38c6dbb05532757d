// The dispatcher's Kubernetes source against a real kube-apiserver: RoutePolicies, Services,
// EndpointSlices and Pods become the mesh's resource model in the dispatcher's store, and follow
// changes. (No controller-manager runs here, so the test writes the EndpointSlice itself.)
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from '@kubernetes/client-node';
import type { RoutePolicy, ServiceEndpoints, Workload } from '@octo-mesh/api';
import { waitFor, createLogger } from '@octo-mesh/runtime';
import { adminKubeConfig, createTestNamespace, kubectl, REPO_ROOT } from '@octo-mesh/testing';
import { KubernetesSource } from '../../packages/dispatcher/src/kube-source.js';
import { MemoryStore } from '../../packages/dispatcher/src/memory-store.js';
import { routePolicyFixture } from '../../packages/dispatcher/src/store-contract.js';

const quiet = createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
let ns = '';
const store = MemoryStore.open();
let source: KubernetesSource;

const until = <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 5000): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs, retryErrors: true });

beforeAll(async () => {
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/routepolicies.mesh.octo.io', 'crd/proxyversions.mesh.octo.io', 'crd/authorizationpolicies.mesh.octo.io']).status).toBe(0);
  ns = await createTestNamespace('source');
  source = new KubernetesSource({ kubeConfig: adminKubeConfig(), store, logger: quiet });
  await source.start();
}, 60_000);

afterAll(async () => {
  await source.stop();
  await store.close();
});

describe('KubernetesSource', () => {
  it('turns a RoutePolicy, a Service, its EndpointSlice and Pods into the model, and follows changes', async () => {
    const kc = adminKubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);

    await custom.createNamespacedCustomObject({ group: 'mesh.octo.io', version: 'v1alpha1', namespace: ns, plural: 'routepolicies', body: routePolicyFixture('catalog', ns, 70) });
    // No controller-manager: create the service account pods are admitted with.
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
    await core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'catalog' }, spec: { selector: { app: 'catalog' }, ports: [{ name: 'http', port: 8080 }] } } });
    for (const [name, version] of [['catalog-v1-a', 'v1'], ['catalog-v2-a', 'v2']] as const)
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name, labels: { app: 'catalog', version } }, spec: { containers: [{ name: 'app', image: 'catalog' }] } } });
    await discovery.createNamespacedEndpointSlice({
      namespace: ns,
      body: {
        metadata: { name: 'catalog-1', labels: { 'kubernetes.io/service-name': 'catalog' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [
          { addresses: ['10.1.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'catalog-v1-a', namespace: ns } },
          { addresses: ['10.1.0.2'], conditions: { ready: false }, targetRef: { kind: 'Pod', name: 'catalog-v2-a', namespace: ns } },
        ],
      },
    });

    const policy = (await until(() => store.get('RoutePolicy', `${ns}/catalog`), () => true, 'RoutePolicy')) as RoutePolicy;
    expect(policy.spec.rules?.[0]?.route[0]?.weight).toBe(70);
    expect((await until(() => store.get('Service', `${ns}/catalog`), () => true, 'Service')).spec).toEqual({ ports: [{ name: 'http', port: 8080, protocol: 'http' }], selector: { app: 'catalog' } });
    const eps = (await until(
      () => store.get('ServiceEndpoints', `${ns}/catalog`) as Promise<ServiceEndpoints>,
      (e) => e.spec.endpoints.length === 2 && e.spec.endpoints.every((x) => x.labels['version']),
      'endpoints with pod labels',
    )) as ServiceEndpoints;
    expect(eps.spec.endpoints.map((e) => [e.address, e.labels['version'], e.healthy, e.workload])).toEqual([
      ['10.1.0.1', 'v1', true, `${ns}/catalog`],
      ['10.1.0.2', 'v2', false, `${ns}/catalog`],
    ]);
    const w = (await until(() => store.get('Workload', `${ns}/catalog`) as Promise<Workload>, (x) => x.spec.instances.length === 2, 'workload')) as Workload;
    expect(w.spec.instances.map((i) => i.id)).toEqual(['catalog-v1-a', 'catalog-v2-a']);

    // Changes follow: the policy is edited, then the Service and the slice go away.
    await custom.replaceNamespacedCustomObject({
      group: 'mesh.octo.io',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'routepolicies',
      name: 'catalog',
      body: { ...routePolicyFixture('catalog', ns, 40), metadata: { name: 'catalog', namespace: ns, resourceVersion: (await custom.getNamespacedCustomObject({ group: 'mesh.octo.io', version: 'v1alpha1', namespace: ns, plural: 'routepolicies', name: 'catalog' })).metadata.resourceVersion } },
    });
    await until(() => store.get('RoutePolicy', `${ns}/catalog`) as Promise<RoutePolicy>, (p) => p.spec.rules?.[0]?.route[0]?.weight === 40, 'edited policy');
    await core.deleteNamespacedService({ namespace: ns, name: 'catalog' });
    await discovery.deleteNamespacedEndpointSlice({ namespace: ns, name: 'catalog-1' });
    await until(async () => (await store.list('Service', { namespace: ns })).items.length + (await store.list('ServiceEndpoints', { namespace: ns })).items.length, (n) => n === 0, 'deletes');
  }, 30_000);

  it('mirrors the status the operator writes on the API server (the status subresource), so pilots see a rollout progress', async () => {
    const api = adminKubeConfig().makeApiClient(CustomObjectsApi);
    const base = { group: 'mesh.octo.io', version: 'v1alpha1', namespace: ns, plural: 'proxyversions' };
    await api.createNamespacedCustomObject({
      ...base,
      body: {
        apiVersion: 'mesh.octo.io/v1alpha1',
        kind: 'ProxyVersion',
        metadata: { name: 'proxy-2', namespace: ns },
        spec: { version: '2.0.0', package: { url: 'http://repo/p.tgz', sha256: 'd'.repeat(64) }, strategy: { steps: [50, 100] } },
      },
    });
    const current = (await api.getNamespacedCustomObject({ ...base, name: 'proxy-2' })) as { metadata: { resourceVersion: string } };
    await api.replaceNamespacedCustomObjectStatus({ ...base, name: 'proxy-2', body: { ...current, status: { phase: 'Progressing', currentBatch: 1, total: 3 } } });
    const mirrored = await until(
      () => store.get('ProxyVersion', `${ns}/proxy-2`) as Promise<{ status?: { phase?: string; currentBatch?: number } }>,
      (o) => o.status?.phase === 'Progressing',
      'the status in the dispatcher',
    );
    expect(mirrored.status).toMatchObject({ phase: 'Progressing', currentBatch: 1, total: 3 });
  });
});
