import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is packages/testing/{src,dist}/tools.*). */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const BUILD_TOOLS = join(REPO_ROOT, 'e2e/cluster/build-tools.sh');

/**
 * The folder holding kube-apiserver, etcd, helm and kwok built from Go modules. Uses
 * `OCTO_K8S_BIN` when set; else asks e2e/cluster/build-tools.sh for its cached build, building
 * it first when `build` is true (a cold build takes many minutes; progress goes to stderr).
 */
export function kubeBinDir(build = true): string {
  const fromEnv = process.env['OCTO_K8S_BIN'];
  if (fromEnv && existsSync(join(fromEnv, 'kube-apiserver'))) return fromEnv;
  try {
    return execFileSync(BUILD_TOOLS, ['--print-bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    if (!build) throw new Error(`Kubernetes binaries are not built; run ${BUILD_TOOLS}`);
  }
  const out = execFileSync(BUILD_TOOLS, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const last = out.trim().split('\n').at(-1) ?? '';
  if (!last.startsWith('OCTO_K8S_BIN=')) throw new Error(`${BUILD_TOOLS} did not print OCTO_K8S_BIN=<dir> last (got ${JSON.stringify(last)})`);
  return last.slice('OCTO_K8S_BIN='.length);
}

/**
 * The folder holding everything `kubeBinDir` holds plus kubelet, kube-controller-manager,
 * kube-scheduler, kube-proxy, coredns and pause (`build-tools.sh --node`): what the single-node
 * cluster (NodeCluster) runs. Uses `OCTO_K8S_NODE_BIN` when set; builds when `build` is true.
 */
export function kubeNodeBinDir(build = true): string {
  const fromEnv = process.env['OCTO_K8S_NODE_BIN'];
  if (fromEnv && existsSync(join(fromEnv, 'kubelet'))) return fromEnv;
  try {
    return execFileSync(BUILD_TOOLS, ['--print-bin', '--node'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    if (!build) throw new Error(`Kubernetes node binaries are not built; run ${BUILD_TOOLS} --node`);
  }
  const out = execFileSync(BUILD_TOOLS, ['--node'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const last = out.trim().split('\n').at(-1) ?? '';
  if (!last.startsWith('OCTO_K8S_BIN=')) throw new Error(`${BUILD_TOOLS} --node did not print OCTO_K8S_BIN=<dir> last (got ${JSON.stringify(last)})`);
  return last.slice('OCTO_K8S_BIN='.length);
}
