import { describe, expect, it } from '@jest/globals';
import { StreamAdmission } from './admission.js';

/** Settles pending promise callbacks (no timers involved). */
const flush = () => new Promise((r) => setImmediate(r));

describe('StreamAdmission', () => {
  it('admits a burst at once, then queues the rest in order at the configured rate', async () => {
    const a = new StreamAdmission({ ratePerSecond: 100, burst: 3 });
    const order: number[] = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => a.admit().admitted.then(() => order.push(i))));
    const ms = performance.now() - t0;
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // 5 beyond the burst at 100/s ≈ 50 ms
    expect(ms).toBeGreaterThanOrEqual(40);
    expect(ms).toBeLessThan(500);
  });

  it('lets at most maxSettingUp streams set up at once, the next in order as each is done; a stream gone while queued gives up its place', async () => {
    const a = new StreamAdmission({ ratePerSecond: 1_000_000, burst: 1_000_000, maxSettingUp: 2 });
    const admitted: number[] = [];
    const tickets = Array.from({ length: 5 }, (_, i) => {
      const t = a.admit();
      void t.admitted.then(() => admitted.push(i));
      return t;
    });
    await flush();
    // columns: what happens, then: admitted so far, queued, setting up
    const steps: [string, () => void, number[], number, number][] = [
      ['nothing yet', () => undefined, [0, 1], 3, 2],
      ['0 set up', () => tickets[0]!.done(), [0, 1, 2], 2, 2],
      ['0 done again (idempotent)', () => tickets[0]!.done(), [0, 1, 2], 2, 2],
      ['3 gone while queued', () => tickets[3]!.done(), [0, 1, 2], 1, 2],
      ['1 set up', () => tickets[1]!.done(), [0, 1, 2, 4], 0, 2],
      ['2 and 4 set up', () => (tickets[2]!.done(), tickets[4]!.done()), [0, 1, 2, 4], 0, 0],
    ];
    for (const [what, act, order, queued, settingUp] of steps) {
      act();
      await flush();
      expect({ what, order: admitted, queued: a.queued, settingUp: a.settingUp }).toEqual({ what, order, queued, settingUp });
    }
  });

  it('stops counting a stream that has not set up within setupTimeoutMs', async () => {
    const a = new StreamAdmission({ ratePerSecond: 1_000_000, burst: 1_000_000, maxSettingUp: 1, setupTimeoutMs: 50 });
    a.admit(); // never done
    const t0 = performance.now();
    await a.admit().admitted;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(40);
    expect(a.settingUp).toBe(1);
  });

  it('refuses a nonsensical configuration', () => {
    expect(() => new StreamAdmission({ ratePerSecond: 0, burst: 1 })).toThrow('ratePerSecond');
    expect(() => new StreamAdmission({ ratePerSecond: 1, burst: 1, maxSettingUp: 0 })).toThrow('maxSettingUp');
  });
});
