import { describe, expect, it } from '@jest/globals';
import { waitFor } from './wait.js';

describe('waitFor', () => {
  it('returns the first value the predicate accepts', async () => {
    let n = 0;
    await expect(waitFor('n to reach 3', () => ++n, (v) => v >= 3, { timeoutMs: 1000, intervalMs: 1 })).resolves.toBe(3);
  });

  it('times out naming what it waited for, the last value and the detail', async () => {
    await expect(waitFor('ready', () => ({ ready: false }), (v) => v.ready, { timeoutMs: 30, intervalMs: 5, detail: () => 'log tail' })).rejects.toThrow(
      /^timed out after 30 ms waiting for ready; last: \{"ready":false\}\nlog tail$/,
    );
  });

  it('fails at once on an error unless told to retry errors', async () => {
    let calls = 0;
    const get = async () => {
      if (++calls < 3) throw new Error('not up');
      return 'up';
    };
    await expect(waitFor('server', get, () => true, { timeoutMs: 1000, intervalMs: 1 })).rejects.toThrow('not up');
    calls = 0;
    await expect(waitFor('server', get, () => true, { timeoutMs: 1000, intervalMs: 1, retryErrors: true })).resolves.toBe('up');
    await expect(waitFor('server', () => Promise.reject(new Error('down')), () => true, { timeoutMs: 20, intervalMs: 5, retryErrors: true })).rejects.toThrow(
      'last: error down',
    );
  });
});
