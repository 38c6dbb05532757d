import { describe, expect, it } from '@jest/globals';
import { Debouncer } from './debounce.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Debouncer', () => {
  it('coalesces a burst into one flush after the quiet period', async () => {
    const flushed: number[][] = [];
    const d = new Debouncer<number>({ quietMs: 30, maxDelayMs: 1000 }, async (b) => void flushed.push(b));
    d.add(1);
    d.add(2);
    await sleep(10);
    d.add(3);
    await sleep(80);
    expect(flushed).toEqual([[1, 2, 3]]);
    d.close();
  });

  it('flushes at the maximum delay even when changes keep coming', async () => {
    const flushed: number[][] = [];
    const d = new Debouncer<number>({ quietMs: 40, maxDelayMs: 100 }, async (b) => void flushed.push(b));
    for (let i = 0; i < 10; i++) {
      d.add(i);
      await sleep(20);
    }
    expect(flushed.length).toBeGreaterThanOrEqual(1);
    expect(flushed[0]!.length).toBeLessThan(10);
    await d.idle();
    expect(flushed.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    d.close();
  });

  it('never runs two flushes at once', async () => {
    let running = 0;
    let maxRunning = 0;
    const d = new Debouncer<number>({ quietMs: 5, maxDelayMs: 10 }, async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(40);
      running--;
    });
    d.add(1);
    await sleep(15);
    d.add(2);
    await sleep(15);
    d.add(3);
    await sleep(10);
    await d.idle();
    expect(maxRunning).toBe(1);
    d.close();
  });
});
