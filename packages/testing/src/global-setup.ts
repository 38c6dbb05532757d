// jest globalSetup of the `k8s` project: one real cluster per jest run. Runs only when at least
// one test of that project is selected. The tests find it through OCTO_TEST_CLUSTER (JSON
// ClusterInfo); globalTeardown (same process) stops it.
import { TestCluster } from './cluster.js';
import { kubeBinDir } from './tools.js';

declare global {
  var __octoCluster: TestCluster | undefined;
}

export default async function globalSetup(): Promise<void> {
  const binDir = kubeBinDir(true);
  const cluster = await TestCluster.start(binDir);
  globalThis.__octoCluster = cluster;
  process.env['OCTO_TEST_CLUSTER'] = JSON.stringify(cluster.info);
  // A jest run that is interrupted must not leave etcd and kube-apiserver behind.
  process.once('exit', () => cluster.killNow());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cluster.killNow();
      process.exit(130);
    });
  }
  process.stderr.write(`\n[k8s] kube-apiserver ${cluster.info.server} ready in ${cluster.info.startSeconds.toFixed(1)}s (kubeconfig ${cluster.info.kubeconfig})\n`);
}
