/**
 * Readings for docs/kubernetes.md, taken from the node itself: a container's working set (what
 * the kubelet reports: memory usage minus inactive file cache) from its cgroup v1 memory
 * controller.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Whether `p` is a directory; false when it is gone (cgroups of exiting pods vanish as we walk). */
function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function findDir(root: string, name: string, depth = 4): string | undefined {
  if (depth < 0 || !existsSync(root)) return undefined;
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // removed since existsSync
    throw err;
  }
  for (const e of entries) {
    const p = join(root, e);
    if (!isDir(p)) continue;
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
