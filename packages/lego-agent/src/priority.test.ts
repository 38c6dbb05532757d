// A swap's new proxy at a lower CPU priority (priority.ts): the capability check as a table, and
// real processes — a forked child whose threads (Node's own and worker threads it starts later)
// are all at the lowered nice, and all back at the agent's after restorePriority.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { createLogger } from '@octo-mesh/runtime';
import { ProxyChild } from './child.js';
import { ownRestoreCapability, restoreCapability, threadNices } from './priority.js';
import { ListeningSockets } from './sockets.js';

const quiet = createLogger('agent', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax nice priority         ${soft}                    ${soft}                    \n`;

describe('restoreCapability', () => {
  // CapEff, RLIMIT_NICE soft limit, nice to raise back to (the agent's), capable
  it.each<[string, string, string, number, boolean]>([
    ['root (every capability)', '000001ffffffffff', '0', 0, true],
    ['only CAP_SYS_NICE (bit 23)', '0000000000800000', '0', 0, true],
    ['a sidecar with drop ALL', '0000000000000000', '0', 0, false],
    ['every capability but CAP_SYS_NICE', '000001ffff7fffff', '0', 0, false],
    ['no capability, RLIMIT_NICE 20 allows nice 0 again', '0000000000000000', '20', 0, true],
    ['no capability, RLIMIT_NICE unlimited', '0000000000000000', 'unlimited', 0, true],
    ['no capability, RLIMIT_NICE 19 allows only nice 1', '0000000000000000', '19', 0, false],
    ['no capability, RLIMIT_NICE 19, an agent itself at nice 1', '0000000000000000', '19', 1, true],
  ])('%s', (_name, capEff, rlimit, nice, ok) => {
    const r = restoreCapability(nice, `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\n`, limits(rlimit));
    expect(r.ok).toBe(ok);
    if (!r.ok) expect(r.reason).toContain('no CAP_SYS_NICE');
  });

  it('an unreadable status is not capable', () => {
    expect(restoreCapability(0, '', '').ok).toBe(false);
  });
});

// A child with Node's threads at start, which starts two worker threads at 100 ms and two more
// when it gets a message (after the test restored it), then reports on stdout and waits.
const dir = mkdtempSync(join(tmpdir(), 'octo-priority-'));
const entry = join(dir, 'threads.cjs');
writeFileSync(
  entry,
  [
    "const { Worker } = require('node:worker_threads');",
    "const spin = () => new Worker('setInterval(() => {}, 1000)', { eval: true });",
    'const workers = [];',
    "setTimeout(() => { workers.push(spin(), spin()); setTimeout(() => process.send({ type: 'workers', n: workers.length }), 200); }, 100);",
    "process.on('message', () => { workers.push(spin(), spin()); setTimeout(() => process.send({ type: 'workers', n: workers.length }), 200); });",
    'setInterval(() => {}, 1000);',
  ].join('\n'),
);

const capable = ownRestoreCapability().ok;

describe('a proxy child started at a lower priority', () => {
  // Needs CAP_SYS_NICE (the CI machine runs as root); without it the agent never lowers (the table above).
  (capable ? it : it.skip)('starts with every thread at the lowered nice, threads created later too, and comes back to the agent\'s on restore', async () => {
    const own = getPriority(0);
    const c = new ProxyChild({ entry, args: [], sockets: new ListeningSockets(), logger: quiet, version: 'test', sha256: '', lowerNiceBy: 7 });
    try {
      const next = () => new Promise<{ n: number }>((r) => c.proc.once('message', (m: { n: number }) => r(m)));
      expect(c.priorityError).toBeUndefined();
      expect(c.lowered).toEqual({ nice: Math.min(19, own + 7), to: own });
      // The agent's own thread is back where it was once the fork returned.
      expect(getPriority(0)).toBe(own);
      expect((await next()).n).toBe(2);
      const before = threadNices(c.pid!);
      // Node's main thread, its platform workers, the libuv pool it may have started, two worker threads.
      expect(before.size).toBeGreaterThanOrEqual(5);
      expect(new Set(before.values())).toEqual(new Set([Math.min(19, own + 7)]));
      const r = c.restorePriority();
      expect(r).toEqual({ threads: before.size, changed: before.size });
      expect(c.lowered).toBeUndefined();
      expect(new Set(threadNices(c.pid!).values())).toEqual(new Set([own]));
      // Threads created after the restore inherit the restored nice.
      c.proc.send({ type: 'more' });
      expect((await next()).n).toBe(4);
      const after = threadNices(c.pid!);
      expect(after.size).toBeGreaterThan(before.size);
      expect(new Set(after.values())).toEqual(new Set([own]));
      // A second restore is a no-op.
      expect(c.restorePriority()).toBeUndefined();
    } finally {
      c.kill();
      await c.exit;
    }
  });

  it('a child not asked to be lowered runs at the agent\'s priority and has nothing to restore', async () => {
    const c = new ProxyChild({ entry, args: [], sockets: new ListeningSockets(), logger: quiet, version: 'test', sha256: '' });
    try {
      await new Promise((r) => c.proc.once('message', r));
      expect(c.lowered).toBeUndefined();
      expect(new Set(threadNices(c.pid!).values())).toEqual(new Set([getPriority(0)]));
      expect(c.restorePriority()).toBeUndefined();
    } finally {
      c.kill();
      await c.exit;
    }
  });
});
