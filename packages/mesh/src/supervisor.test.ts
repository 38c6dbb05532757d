// Issue 18: nothing restarted a crashed component in embedded mode. The supervisor now starts a
// child that exits unasked again, with a backoff that grows while it keeps crashing, and never
// after stopAll began.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { freePort } from '@octo-mesh/runtime';
import { Supervisor, type RunningChild } from './supervisor.js';

const dir = mkdtempSync(join(tmpdir(), 'octo-supervisor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a child script. */
function script(name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, body);
  return file;
}

describe('Supervisor', () => {
  it('restarts a child killed with SIGKILL, ready again on the same port, with a new pid', async () => {
    const port = await freePort();
    const file = script('server', `import { createServer } from 'node:http'; createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1');`);
    const restarted: RunningChild[] = [];
    const exits: RunningChild[] = [];
    let resolveRestart!: () => void;
    const back = new Promise<void>((r) => (resolveRestart = r));
    const sup = new Supervisor(join(dir, 'logs'), {
      onExit: (c) => exits.push(c),
      onRestart: (c) => {
        restarted.push(c);
        resolveRestart();
      },
      restartBackoff: { initialMs: 50, maxMs: 1000, jitter: 0 },
    });
    try {
      const first = await sup.start({ name: 'server', script: file, args: [], readyUrl: `http://127.0.0.1:${port}/` });
      process.kill(first.pid, 'SIGKILL');
      await back;
      expect(exits.map((c) => c.exit?.signal)).toEqual(['SIGKILL']);
      expect(restarted[0]!.pid).not.toBe(first.pid);
      expect(restarted[0]!.restarts).toBe(1);
      expect(sup.find('server')).toBe(restarted[0]);
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    } finally {
      await sup.stopAll(2000);
    }
    expect(sup.find('server')?.exit?.signal).toBe('SIGTERM'); // stopped, and not started again
  }, 30_000);

  it('backs off while a child keeps crashing', async () => {
    const file = script('crasher', `setTimeout(() => process.exit(1), 10);`);
    const starts: number[] = [];
    const sup = new Supervisor(join(dir, 'logs'), { onExit: () => starts.push(Date.now()), restartBackoff: { initialMs: 50, maxMs: 5000, jitter: 0 } });
    try {
      await sup.start({ name: 'crasher', script: file, args: [] });
      while (starts.length < 5) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await sup.stopAll(1000);
    }
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    // Delays 50, 100, 200, 400 ms (plus each run's own ~10 ms and process start): each longer than the last.
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThan(gaps[i - 1]!);
    expect(gaps[3]!).toBeGreaterThanOrEqual(400);
  }, 30_000);
});
