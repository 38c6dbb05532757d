import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

/**
 * V8's helper threads — the platform workers that run optimising-compiler jobs (Maglev,
 * Turbofan) and the parallel and concurrent parts of garbage collection — moved to the Linux
 * scheduling class SCHED_IDLE.
 *
 * Why: the event loop wakes a helper when it queues a compile job, and under EEVDF the freshly
 * woken helper preempts the event loop on the proxy's core for the length of the compile (1–5 ms
 * measured with `perf record -e sched:sched_switch`: the event loop switched out in state R right
 * after `NotifyConcurrencyIncrease`). Every request arriving meanwhile waits. At SCHED_IDLE a
 * helper never preempts a normal thread and runs only when the proxy's own threads leave the CPU
 * idle, which at sidecar load is most of the time, so code still gets optimised promptly.
 *
 * The cost: when the process shares a CPU with busy threads of other programs at normal priority
 * (no cgroup of its own), helpers may wait long for it — slower tier-up, and a garbage collection
 * that waits for a helper mid-task waits with it. In a pod the proxy's container is a cgroup of its
 * own, so its helpers compete only with the proxy's event loop. `v8Helpers: normal` leaves them as
 * they are. The move is one-way: leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE above the
 * default, so the proxy cannot hand helpers back their share while it is saturated; hence a
 * start-up setting rather than an adaptive one.
 *
 * That cost is not a slower tier-up alone. A scavenge or mark-compact that handed work to a
 * helper waits for the helper to finish it; a SCHED_IDLE helper in a CPU group with a program
 * that never sleeps (two `yes` processes, the embedded mesh on one machine: issue 18) gets about
 * 3/1024 of a share and the event loop stalls for seconds: 684 of 960 requests failed in 20 s
 * against 0 of 2,002 with the helpers at normal priority, and 0 of 2,000 at SCHED_BATCH, which
 * does not help the tail. Hence `auto`, the default ({@link helperClassFor}): SCHED_IDLE only
 * where the proxy's CPU group (cgroup) holds nothing but the sidecar's own processes — its
 * container in a pod, a systemd unit — and normal priority anywhere else. Not under the LEGO agent
 * either: a swap starts a second proxy in the same group, which keeps its CPUs busy while the
 * serving one's idle helpers wait (bench/lego round 3: 5 of 30 swaps added 104–999 ms with idle
 * helpers, 0 of 25 over 62 ms with normal ones).
 */

/** SCHED_IDLE's number in `sched_setscheduler(2)` and in `/proc/<pid>/stat` field 41. */
export const SCHED_IDLE = 5;
/** The thread name Node gives V8's platform workers. */
const HELPER = 'V8Worker';

export interface Thread {
  tid: number;
  /** The thread's name (at most 15 bytes). */
  comm: string;
  /** Scheduling policy: 0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE, … */
  policy: number;
}

/**
 * Parses one `/proc/<pid>/task/<tid>/stat` line. The name is field 2 in parentheses and may itself
 * contain spaces and parentheses, so the fields after it are counted from the last `)`.
 */
export function parseStat(text: string): Thread {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`stat line has no (name): ${JSON.stringify(text.slice(0, 80))}`);
  const rest = text.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state), so field 41 (policy) is rest[38].
  const policy = Number(rest[38]);
  const tid = Number(text.slice(0, open).trim());
  if (!Number.isInteger(tid) || !Number.isInteger(policy)) throw new Error(`stat line without tid or policy (field 41): ${JSON.stringify(text.slice(0, 80))}`);
  return { tid, comm: text.slice(open + 1, close), policy };
}

/** The helper threads still to move to SCHED_IDLE. */
export function helpersToIdle(threads: readonly Thread[]): number[] {
  return threads.filter((t) => t.comm === HELPER && t.policy !== SCHED_IDLE).map((t) => t.tid);
}

/** The threads of a process (default: this one), read from /proc. */
export function threadsOf(pid: number | 'self' = 'self'): Thread[] {
  const dir = `/proc/${pid}/task`;
  const out: Thread[] = [];
  for (const tid of readdirSync(dir)) {
    try {
      out.push(parseStat(readFileSync(`${dir}/${tid}/stat`, 'latin1')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // a thread that just ended
    }
  }
  return out;
}

export type HelperOutcome = { moved: number } | { skipped: string };

/** `v8Helpers`: `auto` decides by the proxy's CPU group ({@link helperClassFor}). */
export type HelperSetting = 'auto' | 'idle' | 'normal';

/** A process in the proxy's CPU group. */
export interface GroupMember {
  pid: number;
  ppid: number;
}

/**
 * Pure: whether the helpers go to SCHED_IDLE, and why. With `auto`, only when every process in
 * the proxy's CPU group is the sidecar's own — this proxy, its parent, the parent's other
 * children or this proxy's children — so a starved helper can only be starved by the sidecar
 * itself, and never under the LEGO agent (`underAgent`: sockets from the parent), where a swap
 * puts a second, busy proxy beside a serving one. An unreadable group means normal.
 */
export function helperClassFor(
  setting: HelperSetting,
  self: GroupMember,
  group: readonly GroupMember[] | { unreadable: string },
  underAgent = false,
): { idle: boolean; reason: string } {
  if (setting !== 'auto') return { idle: setting === 'idle', reason: `v8Helpers: ${setting}` };
  if (underAgent) return { idle: false, reason: 'auto: under the LEGO agent a swap runs a second proxy in the same CPU group; helpers stay at normal priority' };
  if (!Array.isArray(group)) return { idle: false, reason: `auto: cannot read the proxy's CPU group (${(group as { unreadable: string }).unreadable}); helpers stay at normal priority` };
  const ours = (m: GroupMember) => m.pid === self.pid || m.pid === self.ppid || m.ppid === self.ppid || m.ppid === self.pid;
  const others = group.filter((m) => !ours(m));
  if (others.length) return { idle: false, reason: `auto: the proxy's CPU group holds ${others.length} other process(es) (e.g. pid ${others[0]!.pid}); helpers stay at normal priority` };
  return { idle: true, reason: `auto: the proxy's CPU group holds only the sidecar's ${group.length} process(es)` };
}

/**
 * The processes of this process's CPU cgroup (v2: the unified group; v1: the `cpu` controller's),
 * with their parents, or why they could not be read. More than `max` processes: not read one by
 * one (a shared group; {@link helperClassFor} only needs to know it holds others).
 */
export function cpuGroupMembers(max = 32): GroupMember[] | { unreadable: string } {
  let procsFile: string | undefined;
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, controllers, path] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
      if (controllers === undefined || path === undefined) continue;
      const dirs = controllers === '' ? ['/sys/fs/cgroup'] : controllers.split(',').includes('cpu') ? [`/sys/fs/cgroup/${controllers}`, '/sys/fs/cgroup/cpu'] : [];
      for (const d of dirs) {
        // In a container the group is usually mounted at the hierarchy's root; on a host, at its path.
        for (const f of [`${d}${path}/cgroup.procs`, `${d}/cgroup.procs`]) {
          if (procsFile === undefined && existsSync(f)) procsFile = f;
        }
      }
      if (procsFile) break;
    }
  } catch (err) {
    return { unreadable: `/proc/self/cgroup: ${(err as Error).message}` };
  }
  if (!procsFile) return { unreadable: 'no cgroup.procs for the cpu controller under /sys/fs/cgroup' };
  let pids: number[];
  try {
    pids = readFileSync(procsFile, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch (err) {
    return { unreadable: `${procsFile}: ${(err as Error).message}` };
  }
  if (!pids.includes(process.pid)) return { unreadable: `${procsFile} does not list this process (${process.pid})` };
  if (pids.length > max) return [{ pid: process.pid, ppid: process.ppid }, ...pids.filter((p) => p !== process.pid).slice(0, max).map((pid) => ({ pid, ppid: -1 }))];
  const members: GroupMember[] = [];
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
      members.push({ pid, ppid: Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) });
    } catch {
      /* ended meanwhile */
    }
  }
  return members;
}

/**
 * Moves this process's V8 helper threads to SCHED_IDLE with `chrt` (util-linux): Node has no call
 * for another thread's scheduling class. A thread may lower its own class without privileges.
 * Never throws: a missing `chrt` or a refusal comes back as `skipped` with the reason.
 */
export async function idleV8Helpers(chrt = 'chrt'): Promise<HelperOutcome> {
  if (process.platform !== 'linux') return { skipped: `scheduling classes are Linux's (platform ${process.platform})` };
  let tids: number[];
  try {
    tids = helpersToIdle(threadsOf());
  } catch (err) {
    return { skipped: `cannot read /proc/self/task: ${(err as Error).message}` };
  }
  const failures = await Promise.all(
    tids.map(
      (tid) =>
        new Promise<string | undefined>((resolve) =>
          execFile(chrt, ['--idle', '--pid', '0', String(tid)], (err, _out, stderr) => {
            if (!err) return resolve(undefined);
            const code = (err as NodeJS.ErrnoException).code;
            resolve(code === 'ENOENT' ? `${chrt} not found (Debian package util-linux)` : `${chrt} --idle --pid 0 ${tid}: ${stderr.trim() || err.message}`);
          }),
        ),
    ),
  );
  const failed = failures.find((f) => f !== undefined);
  return failed ? { skipped: failed } : { moved: tids.length };
}
