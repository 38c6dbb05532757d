import { describe, expect, it } from '@jest/globals';
import { Backoff, backoffDelay } from './backoff.js';

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
