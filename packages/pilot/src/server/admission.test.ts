import { describe, expect, it } from '@jest/globals';
import { StreamAdmission } from './admission.js';

describe('StreamAdmission', () => {
  it('admits a burst at once, then queues the rest in order at the configured rate', async () => {
    const a = new StreamAdmission({ ratePerSecond: 100, burst: 3 });
    const order: number[] = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => a.admit().then(() => order.push(i))));
    const ms = performance.now() - t0;
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // 5 beyond the burst at 100/s ≈ 50 ms
    expect(ms).toBeGreaterThanOrEqual(40);
    expect(ms).toBeLessThan(500);
  });

  it('refuses a nonsensical configuration', () => {
    expect(() => new StreamAdmission({ ratePerSecond: 0, burst: 1 })).toThrow('ratePerSecond');
  });
});
