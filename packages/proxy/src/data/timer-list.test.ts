import { describe, expect, it } from '@jest/globals';
import { deadline } from './timer-list.js';

describe('deadline', () => {
  it('fires after its duration, in order, and not once cancelled', async () => {
    const fired: string[] = [];
    const t0 = performance.now();
    const times: number[] = [];
    deadline(30, () => (fired.push('a'), times.push(performance.now() - t0)));
    const b = deadline(30, () => fired.push('b'));
    deadline(10, () => (fired.push('c'), times.push(performance.now() - t0)));
    deadline(30, () => fired.push('d'));
    b.cancel();
    b.cancel();
    await new Promise((r) => setTimeout(r, 60));
    expect(fired).toEqual(['c', 'a', 'd']);
    expect(times[0]).toBeGreaterThanOrEqual(9);
    expect(times[1]).toBeGreaterThanOrEqual(29);
  });

  it('keeps working after its list emptied, and a cancelled head does not delay the next', async () => {
    const fired: number[] = [];
    deadline(20, () => fired.push(1)).cancel();
    await new Promise((r) => setTimeout(r, 5));
    deadline(20, () => fired.push(2));
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toEqual([2]);
    deadline(20, () => fired.push(3));
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toEqual([2, 3]);
  });
});
