#!/usr/bin/env node
// `npm run cluster:up`: the test cluster, by hand. Prints the kubeconfig path and keeps etcd and
// kube-apiserver running until Ctrl-C (or SIGTERM), then stops exactly those two processes.
import { TestCluster } from '../cluster.js';
import { kubeBinDir } from '../tools.js';

const cluster = await TestCluster.start(kubeBinDir(true));
const { info } = cluster;
console.log(`kube-apiserver ${info.server} ready in ${info.startSeconds.toFixed(1)}s (etcd pid ${info.pids.etcd}, apiserver pid ${info.pids.apiserver})`);
console.log(`export KUBECONFIG=${info.kubeconfig}`);
console.log(`kubectl apply -f crds/   # then: kubectl get routepolicies -A`);
console.log('Ctrl-C stops the cluster.');
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void cluster.stop().then(() => process.exit(0));
  });
}
