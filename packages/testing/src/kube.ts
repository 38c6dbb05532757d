import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ClusterInfo } from './cluster.js';

/** The cluster jest's globalSetup started for this run. */
export function clusterInfo(): ClusterInfo {
  const raw = process.env['OCTO_TEST_CLUSTER'];
  if (!raw) throw new Error('OCTO_TEST_CLUSTER is not set: run this test in the jest "k8s" project (npm test -- e2e/k8s)');
  return JSON.parse(raw) as ClusterInfo;
}

/** KubeConfig of the cluster admin (system:masters). */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(clusterInfo().kubeconfig);
  return kc;
}

/** KubeConfig of an authenticated user that RBAC grants nothing. */
export function restrictedKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(clusterInfo().restrictedKubeconfig);
  return kc;
}

export interface KubectlResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the machine's kubectl against the test cluster (admin unless another kubeconfig is given). */
export function kubectl(args: string[], opts: { input?: string; kubeconfig?: string } = {}): KubectlResult {
  const r = spawnSync('kubectl', ['--kubeconfig', opts.kubeconfig ?? clusterInfo().kubeconfig, ...args], {
    input: opts.input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Creates a fresh namespace (`<prefix>-<random>`) for one test file. Nothing deletes it: the
 * cluster has no namespace controller, and it is thrown away after the run.
 */
export async function createTestNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await adminKubeConfig().makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name, labels: { 'octo.io/test': prefix } } } });
  return name;
}
