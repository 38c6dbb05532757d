import { describe, expect, it } from '@jest/globals';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  // text, milliseconds (undefined: not a duration)
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['0s', 0],
    ['2', undefined],
    ['2 s', undefined],
    ['-1s', undefined],
    ['1d', undefined],
    ['', undefined],
  ])('%j → %j', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    [250, '250ms'],
    [1500, '1.5s'],
    [60_000, '1m'],
    [7_200_000, '2h'],
  ])('formats %i ms as %s and back', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});
