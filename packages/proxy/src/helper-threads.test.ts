import { describe, expect, it } from '@jest/globals';
import { SCHED_IDLE, helpersToIdle, idleV8Helpers, parseStat, threadsOf, type Thread } from './helper-threads.js';

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
