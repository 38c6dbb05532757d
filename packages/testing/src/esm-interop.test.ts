// Proves the workspace's module choice: the packages are ESM, and @kubernetes/client-node 2.x is
// ESM-only, so it must load under jest (native ESM mode) and under Node 24 alike.
import { describe, expect, it } from '@jest/globals';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

describe('ESM interop', () => {
  it('imports @kubernetes/client-node and builds an API client from a kubeconfig', () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', skipTLSVerify: false }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    const api = kc.makeApiClient(CoreV1Api);
    expect(typeof api.listNamespace).toBe('function');
  });

  it('runs on the pinned Node 24, not the machine Node 20', () => {
    expect(Number(process.versions.node.split('.')[0])).toBe(24);
  });
});
