/**
 * Readings for docs/kubernetes.md, taken from the node itself: a container's working set (what
 * the kubelet reports: memory usage minus inactive file cache) from its cgroup v1 memory
 * controller.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findDir(root: string, name: string, depth = 4): string | undefined {
  if (depth < 0 || !existsSync(root)) return undefined;
  for (const e of readdirSync(root)) {
    const p = join(root, e);
    if (!statSync(p).isDirectory()) continue;
    if (e === name || e.endsWith(name)) return p;
    const found = findDir(p, name, depth - 1);
    if (found) return found;
  }
  return undefined;
}

/** Working set in bytes of a container (`containerd://<id>`), or undefined when not found. */
export function workingSetBytes(containerId: string): number | undefined {
  const id = containerId.replace(/^containerd:\/\//, '');
  const dir = findDir('/sys/fs/cgroup/memory/kubepods', id);
  if (!dir) return undefined;
  const usage = Number(readFileSync(join(dir, 'memory.usage_in_bytes'), 'utf8'));
  const stat = Object.fromEntries(
    readFileSync(join(dir, 'memory.stat'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
  return Math.max(0, usage - Number(stat['total_inactive_file'] ?? 0));
}

export const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
