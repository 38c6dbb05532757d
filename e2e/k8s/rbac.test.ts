// RBAC on the real API server: an authenticated user with no bindings gets 403; a Role grants
// exactly what it names. Groundwork for proving the chart's roles are least-privilege.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ApiException, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { adminKubeConfig, clusterInfo, createTestNamespace, kubectl, REPO_ROOT, RESTRICTED_USER, restrictedKubeConfig } from '@octo-mesh/testing';

const group = 'mesh.octo.io';
const version = 'v1alpha1';
const plural = 'routepolicies';

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

let ns = '';
beforeAll(async () => {
  expect(kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]).status).toBe(0);
  expect(kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/routepolicies.mesh.octo.io']).status).toBe(0);
  ns = await createTestNamespace('rbac');
});

describe('RBAC', () => {
  it('denies a user with no bindings, then allows exactly what a Role grants', async () => {
    const restricted = restrictedKubeConfig().makeApiClient(CustomObjectsApi);
    expect(await statusOf(restricted.listNamespacedCustomObject({ group, version, namespace: ns, plural }))).toBe(403);

    const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: 'policy-reader' }, rules: [{ apiGroups: [group], resources: [plural], verbs: ['get', 'list', 'watch'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'policy-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'policy-reader' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: RESTRICTED_USER }],
      },
    });

    // RBAC changes reach the authorizer through its informer: allow a moment.
    let listed = 0;
    for (let i = 0; i < 50 && listed !== 200; i++) {
      listed = await statusOf(restricted.listNamespacedCustomObject({ group, version, namespace: ns, plural }));
      if (listed !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(listed).toBe(200);
    const body = { apiVersion: `${group}/${version}`, kind: 'RoutePolicy', metadata: { name: 'x' }, spec: { targetRef: { service: 'x' } } };
    expect(await statusOf(restricted.createNamespacedCustomObject({ group, version, namespace: ns, plural, body }))).toBe(403);
    // Another namespace is still out of reach.
    expect(await statusOf(restricted.listNamespacedCustomObject({ group, version, namespace: 'default', plural }))).toBe(403);
    expect(kubectl(['auth', 'can-i', 'delete', 'routepolicies', '-n', ns], { kubeconfig: clusterInfo().restrictedKubeconfig }).stdout.trim()).toBe('no');
  });
});
