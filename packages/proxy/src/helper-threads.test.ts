import { describe, expect, it } from '@jest/globals';
import { SCHED_IDLE, cpuGroupMembers, helperClassFor, helpersToIdle, idleV8Helpers, parseStat, threadsOf, type GroupMember, type Thread } from './helper-threads.js';

// A /proc/<pid>/task/<tid>/stat line: tid, (name), then fields 3..52; field 41 is the policy.
const stat = (tid: number, comm: string, policy: number) => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[0] = 'S';
  fields[38] = String(policy);
  return `${tid} (${comm}) ${fields.join(' ')}\n`;
};

describe('parseStat', () => {
  it.each([
    ['a plain name', stat(42, 'node', 0), { tid: 42, comm: 'node', policy: 0 }],
    ['a V8 helper at SCHED_IDLE', stat(43, 'V8Worker', 5), { tid: 43, comm: 'V8Worker', policy: 5 }],
    ['a name with spaces and parentheses', stat(44, 'a) (b c', 3), { tid: 44, comm: 'a) (b c', policy: 3 }],
  ])('reads %s', (_name, line, want) => {
    expect(parseStat(line)).toEqual(want);
  });

  it.each([
    ['no name', '42 S 1 2 3'],
    ['too few fields for the policy', '42 (node) S 1 2 3'],
  ])('rejects a line with %s, quoting it', (_name, line) => {
    expect(() => parseStat(line)).toThrow(JSON.stringify(line));
  });
});

describe('helpersToIdle', () => {
  const t = (tid: number, comm: string, policy = 0): Thread => ({ tid, comm, policy });
  it.each([
    ['only the V8 helpers, not the event loop or libuv threads', [t(1, 'node'), t(2, 'V8Worker'), t(3, 'V8Worker'), t(4, 'libuv-worker')], [2, 3]],
    ['none already at SCHED_IDLE', [t(1, 'node'), t(2, 'V8Worker', SCHED_IDLE), t(3, 'V8Worker')], [3]],
    ['nothing in a process without helpers', [t(1, 'node')], []],
  ])('picks %s', (_name, threads, want) => {
    expect(helpersToIdle(threads)).toEqual(want);
  });
});

describe('this process', () => {
  it('has its main thread and V8 helpers in /proc', () => {
    const threads = threadsOf();
    expect(threads.find((x) => x.tid === process.pid)).toBeDefined();
    expect(threads.some((x) => x.comm === 'V8Worker')).toBe(true);
  });

  it('says why it left the helpers alone when chrt is missing', async () => {
    expect(await idleV8Helpers('/nonexistent/chrt')).toEqual({ skipped: '/nonexistent/chrt not found (Debian package util-linux)' });
    expect(threadsOf().filter((x) => x.comm === 'V8Worker' && x.policy === SCHED_IDLE)).toEqual([]);
  });
});

describe('helperClassFor', () => {
  // Issue 18: a SCHED_IDLE helper beside a program that never sleeps stalls GC for seconds, so
  // `auto` idles the helpers only where the proxy's CPU group is the sidecar's alone.
  const self: GroupMember = { pid: 100, ppid: 50 };
  const m = (pid: number, ppid: number): GroupMember => ({ pid, ppid });
  it.each([
    ['idle, whatever the group', 'idle', [m(1, 0)], true],
    ['normal, whatever the group', 'normal', [self], false],
    ['auto: the proxy alone in its group', 'auto', [self], true],
    ['auto: the proxy and its agent', 'auto', [m(50, 1), self], true],
    ['auto: the agent, the proxy and the one being swapped in', 'auto', [m(50, 1), self, m(101, 50)], true],
    ['auto: a child of the proxy', 'auto', [self, m(102, 100)], true],
    ['auto: anything else in the group', 'auto', [m(50, 1), self, m(7, 1)], false],
    ['auto: a shared group read only in part (parents unknown)', 'auto', [m(100, -1), m(3, -1), m(4, -1)], false],
    ['auto: an unreadable group', 'auto', { unreadable: 'no cgroup.procs' }, false],
  ] as const)('%s', (_name, setting, group, idle) => {
    const d = helperClassFor(setting, self, group as readonly GroupMember[] | { unreadable: string });
    expect(d.idle).toBe(idle);
    expect(d.reason).toMatch(setting === 'auto' ? /^auto: / : new RegExp(`v8Helpers: ${setting}`));
  });

  // bench/lego round 3: with idle helpers 5 of 30 swaps added 104–999 ms (the new proxy's start
  // keeps the group's CPUs busy while the serving proxy's GC waits on its helpers); normal: none.
  it('auto under the LEGO agent: normal, even alone with it in its group', () => {
    const d = helperClassFor('auto', self, [m(50, 1), self], true);
    expect(d.idle).toBe(false);
    expect(d.reason).toContain('LEGO agent');
    expect(helperClassFor('idle', self, [m(50, 1), self], true).idle).toBe(true);
  });

  it('names the other process, or why the group could not be read', () => {
    expect(helperClassFor('auto', self, [self, m(7, 1)]).reason).toContain('pid 7');
    expect(helperClassFor('auto', self, { unreadable: 'no cgroup.procs for the cpu controller' }).reason).toContain('no cgroup.procs for the cpu controller');
  });
});

describe('cpuGroupMembers', () => {
  it("reads this process's CPU group, this process among its members", () => {
    const g = cpuGroupMembers();
    if (!Array.isArray(g)) throw new Error(`unreadable on this machine: ${(g as { unreadable: string }).unreadable}`);
    expect(g.some((x) => x.pid === process.pid)).toBe(true);
  });
});
