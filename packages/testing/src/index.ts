export { TestCluster, type ClusterInfo } from './cluster.js';
export { freePort } from '@octo-mesh/runtime';
export { generatePki, RESTRICTED_USER, type ClusterPki } from './pki.js';
export { kubeBinDir, kubeNodeBinDir, REPO_ROOT } from './tools.js';
export { clusterInfo, adminKubeConfig, restrictedKubeConfig, kubectl, createTestNamespace, type KubectlResult } from './kube.js';
export { startProcess, stopAll, type TestProcess } from './process.js';
export { NodeCluster, type NodeClusterInfo, type NodeClusterOptions } from './node-cluster.js';
export { DEFAULT_NODE_LAYOUT, PAUSE_IMAGE, COREDNS_IMAGE, type NodeLayout } from './node-config.js';
export { cleanupNode, iptablesCleanupCommands, mountsUnder } from './node-cleanup.js';
