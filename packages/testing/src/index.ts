export { TestCluster, type ClusterInfo } from './cluster.js';
export { freePort } from '@octo-mesh/runtime';
export { generatePki, RESTRICTED_USER, type ClusterPki } from './pki.js';
export { kubeBinDir, REPO_ROOT } from './tools.js';
export { clusterInfo, adminKubeConfig, restrictedKubeConfig, kubectl, createTestNamespace, type KubectlResult } from './kube.js';
export { startProcess, stopAll, type TestProcess } from './process.js';
