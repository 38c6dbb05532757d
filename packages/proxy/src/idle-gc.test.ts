import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { IDLE_GC_DEFAULTS, IdleGc, decideIdleGc, exposedGc, type IdleGcSample, type IdleGcState } from './idle-gc.js';
import { oneRouteBootstrap } from './test-support/resources.js';

const MB = 1024 * 1024;
const cfg = { ...IDLE_GC_DEFAULTS, idleMs: 5000 };
const sample = (now: number, over: Partial<IdleGcSample> = {}): IdleGcSample => ({ now, ready: true, elu: 0.001, heapTotal: 30 * MB, ...over });

describe('decideIdleGc', () => {
  // state before, the sample, whether to collect, idleSince after
  it.each<[string, IdleGcState, IdleGcSample, boolean, number | undefined]>([
    ['first idle check starts the idle streak', {}, sample(1000), false, 1000],
    ['idle, but not long enough yet', { idleSince: 1000 }, sample(5999), false, 1000],
    ['idle long enough, never collected: collect', { idleSince: 1000 }, sample(6000), true, 1000],
    ['not ready (warming up, TLS waiting): streak reset', { idleSince: 1000 }, sample(9000, { ready: false }), false, undefined],
    ['loop busier than 2 % (traffic): streak reset', { idleSince: 1000 }, sample(9000, { elu: 0.05 }), false, undefined],
    ['exactly at the threshold counts as idle', { idleSince: 1000 }, sample(6000, { elu: 0.02 }), true, 1000],
    ['collected before, heap not grown 8 MB since: no', { idleSince: 100_000, last: { at: 1000, heapTotal: 25 * MB } }, sample(200_000, { heapTotal: 32 * MB }), false, 100_000],
    ['collected before, heap grown 8 MB since, a minute ago: collect', { idleSince: 100_000, last: { at: 1000, heapTotal: 22 * MB } }, sample(200_000, { heapTotal: 30 * MB }), true, 100_000],
    ['grown, but the last collection is under a minute old: no', { idleSince: 10_000, last: { at: 1000, heapTotal: 10 * MB } }, sample(60_000, { heapTotal: 30 * MB }), false, 10_000],
  ])('%s', (_name, before, s, collect, idleSince) => {
    const d = decideIdleGc(before, s, cfg);
    expect(d.collect).toBe(collect);
    expect(d.state.idleSince).toBe(idleSince);
    expect(d.state.last).toEqual(before.last);
  });
});

describe('IdleGc', () => {
  const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
  beforeAll(() => void execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: ROOT }), 120_000);

  it('gets V8\'s gc without --expose-gc and runs a last-resort collection, counted', async () => {
    expect(typeof exposedGc()).toBe('function');
    const registry = createMetricsRegistry('test');
    const g = new IdleGc({ idleMs: 60_000, ready: () => true, logger: createLogger('test', 'error'), registry });
    g.collect();
    g.stop();
    const text = await registry.metrics();
    expect(text).toMatch(/octo_proxy_idle_gc_total\{result="done"\} 1/);
    expect(text).toMatch(/octo_proxy_idle_gc_seconds_count 1/);
  });

  it('counts the collection before the first accept apart, with idleMs 0 too', async () => {
    const registry = createMetricsRegistry('test');
    const g = new IdleGc({ idleMs: 0, ready: () => true, logger: createLogger('test', 'error'), registry });
    g.beforeAccept();
    g.stop();
    const text = await registry.metrics();
    expect(text).toMatch(/octo_proxy_gc_before_accept_total\{result="done"\} 1/);
    expect(text).toMatch(/octo_proxy_gc_before_accept_seconds_count 1/);
    expect(text).not.toMatch(/octo_proxy_idle_gc_total\{result="done"\}/);
  });

  it('the executable collects once it is ready and idle, and not with idleGcMs 0; before the first accept with gcBeforeAccept always', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-idle-gc-'));
    const file = join(dir, 'bootstrap.json');
    writeFileSync(file, oneRouteBootstrap({ v8Helpers: 'normal' }));
    // The proxy's own log line says when it collected (no polling: scraping /metrics is work that
    // would keep its loop from looking idle); then one scrape reads the counter.
    const counted = async (idleGcMs: number, gcBeforeAccept: 'always' | 'off', waitMs: number) => {
      const child = spawn(process.execPath, [join(ROOT, 'packages/proxy/dist/main.js'), '--config', file, '--idle-gc-ms', String(idleGcMs), '--gc-before-accept', gcBeforeAccept, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        const adminPort = await new Promise<number>((resolve, reject) => {
          child.on('message', (m: { type?: string; adminPort?: number }) => m.type === 'octo.proxy.started' && resolve(m.adminPort!));
          child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
        });
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, waitMs);
          let out = '';
          child.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('idle: memory-reducing GC')) {
              clearTimeout(t);
              resolve();
            }
          });
        });
        const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        const done = (metric: string) => Number(new RegExp(`^${metric}\\{result="done"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
        return { idle: done('octo_proxy_idle_gc_total'), beforeAccept: done('octo_proxy_gc_before_accept_total') };
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    };
    // Generous: the collection waits for 300 ms of a nearly idle loop, which a busy CI machine may delay.
    expect(await counted(300, 'off', 20_000)).toEqual({ idle: 1, beforeAccept: 0 });
    // Idle GC off: nothing in 3 s (ten times the 300 ms above); the one before the first accept ran.
    expect(await counted(0, 'always', 3000)).toEqual({ idle: 0, beforeAccept: 1 });
  }, 60_000);
});
