#!/usr/bin/env node
// `npm run cluster:node [-- up|clean]`: the single-node cluster (real pods) by hand.
//   up     start it (after removing a crashed run's leftovers), print `export KUBECONFIG=…`, keep
//          it until Ctrl-C or SIGTERM, then tear everything down
//   clean  only remove a crashed run's leftovers (processes, mounts, bridge, iptables, netns)
import { cleanupNode } from '../node-cleanup.js';
import { NodeCluster } from '../node-cluster.js';
import { DEFAULT_NODE_LAYOUT } from '../node-config.js';
import { kubeNodeBinDir } from '../tools.js';

const cmd = process.argv[2] ?? 'up';
const log = (line: string) => console.log(`[cluster] ${line}`);
if (cmd === 'clean') {
  const done = NodeCluster.cleanup();
  log(done.length ? done.join('\n[cluster] ') : 'nothing to clean');
  process.exit(0);
}
if (cmd !== 'up') {
  console.error(`usage: cluster:node [up|clean] (got ${JSON.stringify(cmd)})`);
  process.exit(2);
}
// A signal during the start must not leave half a cluster: start() cleans up what it made
// when it fails, and a later `up` or `clean` removes the rest of a hard kill.
let starting = true;
const early = () => {
  if (starting) {
    log('interrupted during start: cleaning up');
    cleanupNode({ root: DEFAULT_NODE_LAYOUT.root, run: DEFAULT_NODE_LAYOUT.run, bridge: DEFAULT_NODE_LAYOUT.bridge });
    process.exit(130);
  }
};
process.once('SIGINT', early);
process.once('SIGTERM', early);
const cluster = await NodeCluster.start(kubeNodeBinDir(true), { log });
starting = false;
process.off('SIGINT', early);
process.off('SIGTERM', early);
log(`ready in ${cluster.info.startSeconds.toFixed(1)}s: ${cluster.info.server}, node ${cluster.info.nodeName} (${cluster.info.nodeIp})`);
console.log(`export KUBECONFIG=${cluster.info.kubeconfig}`);
log('Ctrl-C stops the cluster and removes everything it made.');
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void cluster.stop().then((done) => {
      log(`stopped: ${done.join('; ')}`);
      process.exit(0);
    });
  });
}
