// jest globalSetup of the `cluster` project: one single-node cluster (real pods) per jest run,
// started only when a test of that project is selected. Tests find it through OCTO_NODE_CLUSTER
// (JSON NodeClusterInfo); globalTeardown (same process) tears it down. A jest run that is
// interrupted still removes it (exit handler and signals), and a hard kill is cleaned up by the
// next start.
import { NodeCluster } from './node-cluster.js';
import { kubeNodeBinDir } from './tools.js';

declare global {
  var __octoNodeCluster: NodeCluster | undefined;
}

export default async function globalSetup(): Promise<void> {
  const binDir = kubeNodeBinDir(true);
  const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);
  process.stderr.write('\n');
  const cluster = await NodeCluster.start(binDir, { log });
  globalThis.__octoNodeCluster = cluster;
  process.env['OCTO_NODE_CLUSTER'] = JSON.stringify(cluster.info);
  process.once('exit', () => cluster.killNow());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cluster.killNow();
      process.exit(130);
    });
  }
  log(`ready in ${cluster.info.startSeconds.toFixed(1)}s: ${cluster.info.server} (kubeconfig ${cluster.info.kubeconfig})`);
}
