// The dispatcher's store contract against a real kube-apiserver + etcd (this jest project starts one
// per run): the same suite the in-memory store passes (packages/dispatcher), on the CRD kinds.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { adminKubeConfig, createTestNamespace, kubectl, REPO_ROOT } from '@octo-mesh/testing';
import { ValidationError } from '@octo-mesh/runtime';
import { KubernetesStore } from '../../packages/dispatcher/src/kube-store.js';
import { describeStoreContract, serviceFixture } from '../../packages/dispatcher/src/store-contract.js';

beforeAll(() => {
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/routepolicies.mesh.octo.io', 'crd/proxyversions.mesh.octo.io']).status).toBe(0);
}, 60_000);

describeStoreContract('kubernetes', (namespaces) => KubernetesStore.open({ kubeConfig: adminKubeConfig(), namespaces }), {
  namespaces: async () => [await createTestNamespace('store'), await createTestNamespace('store-other')],
});

describe('KubernetesStore', () => {
  it('refuses the derived kinds, which come from the Kubernetes source', async () => {
    const store = await KubernetesStore.open({ kubeConfig: adminKubeConfig() });
    await expect(store.put(serviceFixture('catalog'))).rejects.toBeInstanceOf(ValidationError);
    await store.close();
  });
});
