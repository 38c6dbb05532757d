import { describe, expect, it } from '@jest/globals';
import { DEFAULT_OVERLOAD, OverloadMonitor, overloadLevel, processPressure } from './overload.js';

describe('overload rule', () => {
  // pressure, level (0 normal, 1 stop accepting, 2 no keep-alive, 3 answer 503)
  it.each([
    [0, 0],
    [0.5, 0],
    [0.8999, 0],
    [0.9, 1],
    [0.94, 1],
    [0.95, 2],
    [0.97, 2],
    [0.98, 3],
    [1.5, 3],
  ])('pressure %d is level %d', (pressure, level) => {
    expect(overloadLevel(pressure, DEFAULT_OVERLOAD)).toBe(level);
  });

  it('samples a real pressure between 0 and 1 for this process', () => {
    const p = processPressure();
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(1);
  });

  it('a probe that throws counts as no pressure, never as a crash', () => {
    const m = new OverloadMonitor(DEFAULT_OVERLOAD, () => {
      throw new Error('no /proc');
    });
    m.check();
    expect(m.level).toBe(0);
  });
});
