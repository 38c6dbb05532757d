// Issue 18, "durable embedded state": every write the dispatcher answered survives kill -9 — the
// store journals each change and fsyncs before answering — and a write cut short by the kill (a
// torn last journal line) is dropped, not fatal.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { MemoryStore } from './memory-store.js';
import { routePolicyFixture } from './store-contract.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/dispatcher/dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'octo-dispatcher-durable-'));

function start(dataDir: string) {
  const child = spawn(process.execPath, [MAIN, '--grpc-port', '0', '--admin-port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.on('exit', (code, signal) => r(signal ?? code)));
  const listening = new Promise<{ grpcPort: number }>((resolve, reject) => {
    child.stdout.on('data', () => {
      const line = stdout.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line) as { grpcPort: number });
    });
    void exited.then((e) => reject(new Error(`exited ${String(e)} before listening: ${stdout}`)));
  });
  return { child, exited, listening };
}

beforeAll(() => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/dispatcher'], { cwd: ROOT });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dispatcher durability', () => {
  it('kill -9 right after the last answered Apply loses nothing', async () => {
    const data = join(dir, 'kill9');
    const first = start(data);
    const { grpcPort } = await first.listening;
    let conn = new DispatcherConnection(`127.0.0.1:${grpcPort}`);
    const N = 300;
    try {
      await Promise.all(Array.from({ length: N }, (_, i) => conn.apply(routePolicyFixture(`p-${i}`, 'demo', i % 101))));
      await conn.delete('RoutePolicy', 'demo/p-0');
    } finally {
      first.child.kill('SIGKILL'); // no shutdown hook runs: only what was fsynced survives
      conn.close();
    }
    expect(await first.exited).toBe('SIGKILL');

    const second = start(data);
    const again = await second.listening;
    conn = new DispatcherConnection(`127.0.0.1:${again.grpcPort}`);
    try {
      const { items } = await conn.list('RoutePolicy');
      expect(items).toHaveLength(N - 1);
      const p7 = items.find((o) => o.metadata.name === 'p-7') as RoutePolicy;
      expect(p7.spec.rules?.[0]?.route[0]?.weight).toBe(7);
      // Versions continue past the ones clients saw.
      const next = await conn.apply(routePolicyFixture('after-restart'));
      expect(BigInt(next.metadata.resourceVersion!)).toBeGreaterThan(BigInt(p7.metadata.resourceVersion!));
    } finally {
      conn.close();
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 60_000);

  it('a torn last journal line (a write the kill cut short, never answered) is dropped on open', async () => {
    const data = join(dir, 'torn');
    const a = MemoryStore.open({ dir: data });
    await a.put(routePolicyFixture('kept'));
    // Simulate the crash: the process dies without close(), the journal ends mid-line.
    appendFileSync(join(data, 'journal.jsonl'), '{"v":"99999999999999999999","kind":"RoutePolicy","key":"demo/torn","o":{"kin');
    const b = MemoryStore.open({ dir: data });
    expect((await b.list('RoutePolicy')).items.map((o) => o.metadata.name)).toEqual(['kept']);
    await b.put(routePolicyFixture('next'));
    await b.close();
    expect(readFileSync(join(data, 'store.json'), 'utf8')).toContain('"next"');
    const c = MemoryStore.open({ dir: data });
    expect((await c.list('RoutePolicy')).items.map((o) => o.metadata.name)).toEqual(['kept', 'next']);
    await c.close();
  });
});
