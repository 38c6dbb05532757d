import { readFileSync, readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * CPU priority (nice) of a proxy child, per thread. On Linux `setpriority(PRIO_PROCESS, id)` —
 * Node's `os.setPriority` — sets one thread's nice when `id` is a thread id, and a new thread
 * (or process) inherits the nice of the thread that creates it. So a process started at a
 * lower priority is made by lowering the forking thread's own priority around the fork (every
 * thread the child ever creates then starts there), and it is restored thread by thread from
 * `/proc/<pid>/task`.
 *
 * Lowering is always allowed; raising it back (a lower nice value) needs CAP_SYS_NICE, or an
 * RLIMIT_NICE that allows that value (`20 - nice <= limit`). Without either the agent would
 * leave the proxy it promotes at the lower priority for good, so it does not lower it at all
 * (`restoreCapability`).
 */

/** Linux capability number of CAP_SYS_NICE. */
const CAP_SYS_NICE = 23;

/**
 * Whether this process may raise a thread's priority back to nice `to` (the agent's own):
 * CAP_SYS_NICE in its effective set, or a soft RLIMIT_NICE of at least `20 - to`. `status` and
 * `limits` are the contents of /proc/self/status and /proc/self/limits (parameters for the
 * tests' tables).
 */
export function restoreCapability(to: number, status: string, limits: string): { ok: true; via: string } | { ok: false; reason: string } {
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (eff !== undefined && (BigInt(`0x${eff}`) >> BigInt(CAP_SYS_NICE)) & 1n) return { ok: true, via: 'CAP_SYS_NICE' };
  const lim = /^Max nice priority\s+(\S+)/m.exec(limits)?.[1];
  // NaN (no such line) compares false.
  if ((lim === 'unlimited' ? Infinity : Number(lim)) >= 20 - to) return { ok: true, via: `RLIMIT_NICE ${lim}` };
  return { ok: false, reason: `no CAP_SYS_NICE (CapEff ${eff ?? 'unknown'}) and RLIMIT_NICE ${lim ?? 'unknown'} does not allow raising back to nice ${to}` };
}

/** This process's own capability check: may it raise a thread back to its own nice (Linux /proc; elsewhere never capable). */
export function ownRestoreCapability(): { ok: true; via: string } | { ok: false; reason: string } {
  try {
    return restoreCapability(getPriority(0), readFileSync('/proc/self/status', 'utf8'), readFileSync('/proc/self/limits', 'utf8'));
  } catch (err) {
    return { ok: false, reason: `cannot read /proc/self: ${(err as Error).message}` };
  }
}

/**
 * Runs `fork` with the calling thread's nice raised by `by` (capped at 19), then restores it: the
 * process `fork` creates — and every thread it creates — starts at that nice. Returns the nice
 * the new process started with and the caller's own (to restore the child to). Lowering failing
 * throws before anything is forked; restoring the caller's thread failing does not throw (the
 * child exists) but comes back as `restoreError`: the caller's thread is then left lowered.
 */
export function forkLowered<T>(by: number, fork: () => T): { result: T; nice: number; own: number; restoreError?: Error } {
  // pid 0: the calling thread on Linux (setpriority(PRIO_PROCESS, 0) is per thread there).
  const own = getPriority(0);
  const nice = Math.min(19, own + by);
  setPriority(0, nice);
  let restoreError: Error | undefined;
  let result: T;
  try {
    result = fork();
  } finally {
    try {
      setPriority(0, own);
    } catch (err) {
      restoreError = err as Error;
    }
  }
  return { result, nice, own, ...(restoreError ? { restoreError } : {}) };
}

/** Nice of each thread of `pid` (from /proc/<pid>/task/<tid>/stat); threads gone meanwhile are left out. */
export function threadNices(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      // Fields after the command (which may hold spaces and parentheses): state is field 3, nice 19.
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      out.set(Number(t), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return out;
}

/**
 * Sets every thread of `pid` to `nice`. A thread created meanwhile by one still at the old value
 * would inherit that, so the threads are listed again until a pass finds none left (at most
 * `passes`). Returns how many threads were changed; throws on a refusal (EPERM/EACCES) with the
 * thread named. A process that has exited is not an error (0 changed).
 */
export function setThreadsNice(pid: number, nice: number, passes = 5): { changed: number; threads: number } {
  let changed = 0;
  let threads = 0;
  for (let pass = 0; pass < passes; pass++) {
    const now = threadNices(pid);
    threads = now.size;
    const off = [...now].filter(([, n]) => n !== nice);
    if (off.length === 0) return { changed, threads };
    for (const [tid] of off) {
      try {
        setPriority(tid, nice);
        changed++;
      } catch (err) {
        if ((err as { info?: { code?: string } }).info?.code === 'ESRCH' || (err as NodeJS.ErrnoException).code === 'ESRCH') continue; // exited meanwhile
        throw new Error(`setting nice ${nice} on thread ${tid} of ${pid}: ${(err as Error).message}`, { cause: err });
      }
    }
  }
  const left = [...threadNices(pid)].filter(([, n]) => n !== nice);
  if (left.length) throw new Error(`threads of ${pid} still not at nice ${nice} after ${passes} passes: ${left.map(([t, n]) => `${t}=${n}`).join(', ')}`);
  return { changed, threads };
}
