import { spawn, spawnSync } from 'node:child_process';
import type { NodeClusterInfo } from './node-cluster.js';

/** The single-node cluster jest's globalSetup started for this run (the `cluster` project). */
export function nodeClusterInfo(): NodeClusterInfo {
  const raw = process.env['OCTO_NODE_CLUSTER'];
  if (!raw) throw new Error('OCTO_NODE_CLUSTER is not set: run this test in the jest "cluster" project');
  return JSON.parse(raw) as NodeClusterInfo;
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** A command against the node cluster (KUBECONFIG set), synchronously; 120 s timeout. */
export function clusterCommand(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): CommandResult {
  const r = spawnSync(cmd, args, { input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, env: { ...process.env, KUBECONFIG: nodeClusterInfo().kubeconfig } });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking the event loop (for commands that wait, e.g. `helm --wait`). */
export function clusterCommandAsync(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, KUBECONFIG: nodeClusterInfo().kubeconfig }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
