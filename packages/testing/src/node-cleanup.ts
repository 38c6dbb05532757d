/**
 * Tears the single-node cluster down, from a clean stop or after a crashed run: every step
 * looks for what the cluster leaves on the host and removes only that — the processes it
 * recorded (checked against their command line), containerd's shims and the containers under
 * them (found by the cluster's private containerd socket), the pods' cgroups, every mount under
 * the cluster's own directories and the pods' network namespaces, the CNI bridge, and the
 * KUBE-/CNI- iptables chains kube-proxy, the kubelet and CNI create. Idempotent: running it on a
 * clean host does nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a running cluster writes to `<root>/state.json` so a later run can undo it. */
export interface NodeState {
  /** The process that runs the cluster (the test runner or `cluster:node`). */
  owner?: number;
  pids: Record<string, number>;
  /** net.ipv4.ip_forward before the cluster set it to 1. */
  ipForward?: string;
}

export const stateFile = (root: string) => join(root, 'state.json');

export function readState(root: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(root), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/** The owner of a cluster that is running now (not a crashed one), if any. */
export function liveOwner(root: string): number | undefined {
  const owner = readState(root)?.owner;
  if (!owner || owner === process.pid) return undefined;
  try {
    process.kill(owner, 0);
  } catch {
    return undefined; // gone: its leftovers are a crashed run's
  }
  return owner;
}

export function writeState(root: string, state: NodeState): void {
  writeFileSync(stateFile(root), JSON.stringify(state, null, 2));
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
};

function processes(): { pid: number; ppid: number; cmd: string }[] {
  const out: { pid: number; ppid: number; cmd: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(d), ppid, cmd: cmdline(Number(d)) ?? '' });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const kill = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
};

/** Mount points (decoded) from mountinfo that `keep` accepts, deepest first. */
export function mountsUnder(mountinfo: string, keep: (mountPoint: string) => boolean): string[] {
  const points = mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter(keep);
  return [...new Set(points)].sort((a, b) => b.length - a.length || b.localeCompare(a));
}

/** Splits one line of `iptables -S` into arguments (comments come double-quoted, with \" escapes). */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/**
 * The iptables commands that remove every rule jumping to a chain named `KUBE-…`/`CNI-…` and
 * then those chains, from `iptables -t <table> -S` output.
 */
export function iptablesCleanupCommands(table: string, rules: string): string[][] {
  const ours = (chain: string) => /^(KUBE-|CNI-)/.test(chain);
  const cmds: string[][] = [];
  const chains: string[] = [];
  for (const line of rules.split('\n')) {
    const f = splitRule(line.trim());
    if (f[0] === '-N' && f[1] && ours(f[1])) chains.push(f[1]);
    if (f[0] === '-A' && f[1] && !ours(f[1])) {
      const j = f.indexOf('-j');
      if (j > 0 && f[j + 1] && ours(f[j + 1]!)) cmds.push(['-t', table, '-D', ...f.slice(1)]);
    }
  }
  for (const c of chains) cmds.push(['-t', table, '-F', c]);
  for (const c of chains) cmds.push(['-t', table, '-X', c]);
  return cmds;
}

export interface CleanupTarget {
  root: string;
  run: string;
  bridge: string;
  /** Keep the root directory (logs) for a look afterwards. */
  keepRoot?: boolean;
}

/** Undoes everything a (running or crashed) cluster left. Returns what it did, for the log. */
export function cleanupNode(t: CleanupTarget): string[] {
  const done: string[] = [];
  const state = readState(t.root);
  const mine = (cmd: string) => cmd.includes(t.root) || cmd.includes(t.run);

  // 1. The components it started, if they are still ours.
  for (const [name, pid] of Object.entries(state?.pids ?? {})) {
    const cmd = cmdline(pid);
    if (cmd && mine(cmd) && kill(pid)) done.push(`killed ${name} (${pid})`);
  }
  // 2. containerd shims of the private socket, and every process under them (the containers).
  const procs = processes();
  const shims = procs.filter((p) => p.cmd.includes('containerd-shim') && mine(p.cmd));
  const children = new Map<number, number[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  for (const shim of shims) {
    const stack = [shim.pid];
    const tree: number[] = [];
    while (stack.length) {
      const pid = stack.pop()!;
      tree.push(pid);
      stack.push(...(children.get(pid) ?? []));
    }
    for (const pid of tree.reverse()) kill(pid);
    done.push(`killed containerd shim ${shim.pid} and ${tree.length - 1} processes under it`);
  }
  // 3. The pods' cgroups (kubelet's cgroupfs driver: <controller>/kubepods/...).
  const cgroupRoot = '/sys/fs/cgroup';
  const controllers = existsSync(cgroupRoot) ? readdirSync(cgroupRoot).filter((c) => existsSync(join(cgroupRoot, c, 'kubepods'))) : [];
  for (const c of controllers) {
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d)) if (statSync(join(d, e)).isDirectory()) walk(join(d, e));
    };
    try {
      walk(join(cgroupRoot, c, 'kubepods'));
    } catch {
      continue;
    }
    for (const d of dirs) {
      try {
        for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) kill(Number(pid));
      } catch {
        // not readable: nothing to kill there
      }
    }
    // A killed process leaves its cgroup only once it has exited: retry for up to 3 s.
    let left = dirs.reverse();
    for (let i = 0; i < 30 && left.length; i++) {
      left = left.filter((d) => {
        try {
          rmdirSync(d);
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code !== 'ENOENT';
        }
      });
      if (left.length) sleepSync(100);
    }
    done.push(`removed ${dirs.length - left.length} of ${dirs.length} cgroups under ${c}/kubepods`);
  }
  // 4. Mounts: overlay rootfs, volumes, sandbox shm, and the pods' network namespaces.
  const netnsOfPods = (p: string) => /^\/(var\/)?run\/netns\/cni-/.test(p);
  const points = mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), (p) => p.startsWith(`${t.root}/`) || p.startsWith(`${t.run}/`) || p === t.run || netnsOfPods(p));
  for (const p of points) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
  if (points.length) done.push(`unmounted ${points.length} mounts`);
  for (const dir of ['/run/netns', '/var/run/netns']) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((n) => n.startsWith('cni-'))) {
      try {
        unlinkSync(join(dir, f));
        done.push(`removed netns ${f}`);
      } catch {
        // already gone (the two paths are usually the same directory)
      }
    }
  }
  // 5. The CNI bridge.
  if (existsSync(`/sys/class/net/${t.bridge}`)) {
    spawnSync('ip', ['link', 'del', t.bridge], { stdio: 'ignore' });
    done.push(`deleted bridge ${t.bridge}`);
  }
  // 6. iptables chains of kube-proxy, the kubelet and CNI.
  for (const bin of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const r = spawnSync(bin, ['-w', '5', '-t', table, '-S'], { encoding: 'utf8' });
      if (r.status !== 0) continue;
      const cmds = iptablesCleanupCommands(table, r.stdout);
      for (const c of cmds) spawnSync(bin, ['-w', '5', ...c], { stdio: 'ignore' });
      if (cmds.length) done.push(`${bin} ${table}: ${cmds.length} commands`);
    }
  }
  // 7. The one sysctl it changed.
  if (state?.ipForward !== undefined) {
    try {
      writeFileSync('/proc/sys/net/ipv4/ip_forward', state.ipForward);
      done.push(`net.ipv4.ip_forward back to ${state.ipForward.trim()}`);
    } catch {
      // not writable: nothing was changed then either
    }
  }
  // 8. Its directories.
  rmSync(t.run, { recursive: true, force: true });
  if (t.keepRoot) rmSync(stateFile(t.root), { force: true });
  else rmSync(t.root, { recursive: true, force: true });
  return done;
}

/** True when the tools a node needs from Debian are installed (see .ci/run). */
export function hostToolsMissing(): string[] {
  const need = ['containerd', 'runc', 'ctr', 'iptables', 'conntrack', 'ip', 'openssl'];
  const missing = need.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status !== 0);
  if (!existsSync('/usr/lib/cni/bridge')) missing.push('containernetworking-plugins (/usr/lib/cni/bridge)');
  return missing;
}

/** The host's address on its default route's interface (where pods reach the API server). */
export function defaultRouteAddress(): string {
  const route = execFileSync('ip', ['-4', '-o', 'route', 'show', 'default'], { encoding: 'utf8' });
  const dev = / dev (\S+)/.exec(route)?.[1];
  if (!dev) throw new Error(`no default route to find the node address by ("ip route show default": ${JSON.stringify(route)})`);
  const addr = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', dev], { encoding: 'utf8' });
  const ip = / inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr)?.[1];
  if (!ip) throw new Error(`interface ${dev} has no IPv4 address`);
  return ip;
}
