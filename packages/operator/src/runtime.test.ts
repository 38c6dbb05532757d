import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { TerminalError, createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { Controller } from './controller.js';
import { leaseDecision, releasedRecord, type LeaderRecord } from './leader.js';
import { OperatorMetrics } from './metrics.js';
import { WorkQueue } from './queue.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('coalesces a key added many times, and never hands out a key being processed', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a'); // while processing: queued again only after done
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
    q.done('a');
    expect(await q.get()).toBe('a');
    q.shutDown();
    expect(await q.get()).toBeUndefined();
  });

  it('addAfter keeps the earliest wake-up; addRateLimited backs off per key until forget', async () => {
    const q = new WorkQueue({ initialMs: 20, maxMs: 1000, multiplier: 2, jitter: 0 });
    q.addAfter('a', 500);
    q.addAfter('a', 10);
    await sleep(40);
    expect(q.length).toBe(1);
    expect([q.addRateLimited('x'), q.addRateLimited('x'), q.addRateLimited('x')]).toEqual([20, 40, 80]);
    q.forget('x');
    expect(q.addRateLimited('x')).toBe(20);
    q.shutDown();
  });
});

describe('Controller', () => {
  it('retries a thrown error with backoff, records a TerminalError without retrying, and honours requeueAfter', async () => {
    const calls: string[] = [];
    let failures = 2;
    const reconciler = {
      async reconcile(key: string) {
        calls.push(key);
        if (key === 'flaky' && failures-- > 0) throw new Error('API server unavailable');
        if (key === 'bad') throw new TerminalError('invalid spec');
        if (key === 'poll' && calls.filter((c) => c === 'poll').length < 3) return { requeueAfterMs: 10 };
        return {};
      },
    };
    const metrics = new OperatorMetrics(createMetricsRegistry('test'));
    const c = new Controller({ name: 't', reconciler, logger: quiet(), metrics, backoff: { initialMs: 5, maxMs: 50, jitter: 0 } });
    c.start();
    for (const k of ['flaky', 'bad', 'poll']) c.enqueue(k);
    await sleep(300);
    await c.stop();
    expect(calls.filter((k) => k === 'flaky')).toHaveLength(3);
    expect(calls.filter((k) => k === 'bad')).toHaveLength(1);
    expect(calls.filter((k) => k === 'poll')).toHaveLength(3);
    expect((await metrics.reconciles.get()).values.find((v) => v.labels.result === 'terminal')?.value).toBe(1);
    expect((await metrics.reconciles.get()).values.find((v) => v.labels.result === 'error')?.value).toBe(2);
  });
});

describe('leaseDecision', () => {
  const held = (holder: string, rv = '5'): LeaderRecord => ({ holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: 0, renewTime: 1000, leaseTransitions: 2, resourceVersion: rv });
  // columns: name, current record, identity, now, observedAt, expected (undefined = wait)
  it.each<[string, LeaderRecord | undefined, string, number, number, LeaderRecord | undefined]>([
    ['no Lease: create it', undefined, 'a', 100, 100, { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: 100, renewTime: 100, leaseTransitions: 0 }],
    ['held by another, observed recently: wait', held('b'), 'a', 10_000, 1000, undefined],
    ['held by another, unchanged for a lease duration as we observed it: take it', held('b'), 'a', 16_001, 1000, { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: 16_001, renewTime: 16_001, leaseTransitions: 3, resourceVersion: '5' }],
    ['ours: renew, keeping acquireTime and transitions', held('a'), 'a', 5000, 1000, { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: 0, renewTime: 5000, leaseTransitions: 2, resourceVersion: '5' }],
    ['released (empty holder): take it at once', releasedRecord(held('b'), 2000), 'a', 2001, 2000, { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: 2001, renewTime: 2001, leaseTransitions: 3, resourceVersion: '5' }],
  ])('%s', (_n, current, identity, now, observedAt, expected) => {
    expect(leaseDecision(current, identity, now, observedAt, 15_000)).toEqual(expected);
  });
});
