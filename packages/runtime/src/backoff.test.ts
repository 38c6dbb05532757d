import { describe, expect, it } from '@jest/globals';
import { Backoff, Restarter, backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  // attempt, random, expected (initial 100 ms, max 1 s, ×2, jitter 0.5)
  it.each([
    [0, 0, 100],
    [0, 1, 50],
    [1, 0, 200],
    [3, 0, 800],
    [4, 0, 1000],
    [10, 0.5, 750],
  ])('attempt %i with random %f waits %i ms', (attempt, random, expected) => {
    expect(backoffDelay(attempt, { initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => random)).toBe(expected);
  });

  it('stays within [d·(1−jitter), d] for random draws', () => {
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(2, { initialMs: 100, maxMs: 10_000, jitter: 1 });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(400);
    }
  });

  it('Backoff grows per attempt and resets', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 100, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    b.reset();
    expect(b.next()).toBe(10);
  });
});

describe('Restarter', () => {
  it('restarts with growing delays until a start succeeds, and reports health while down', async () => {
    let fails = 2;
    const starts: number[] = [];
    const t0 = Date.now();
    let resolveUp!: () => void;
    const up = new Promise<void>((r) => (resolveUp = r));
    const r = new Restarter({
      name: 'informer',
      backoff: { initialMs: 20, maxMs: 1000, jitter: 0 },
      start: async () => {
        starts.push(Date.now() - t0);
        if (fails-- > 0) throw new Error('still down');
        resolveUp();
      },
    });
    expect(r.health()).toBe(true);
    r.failed(new Error('watch closed'));
    r.failed(new Error('second report while a restart is pending'));
    expect(r.health(0, Date.now() + 1500)).toMatch(/^informer down for [12] s: second report/);
    expect(r.health(60_000)).toBe(true); // within the grace period
    await up;
    await new Promise((res) => setImmediate(res));
    expect(starts).toHaveLength(3);
    // delays 20, 40, 80 ms (no jitter): each restart waits longer than the one before
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(35);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(75);
    expect(r.health()).toBe(true);
    r.stop();
  });
});
