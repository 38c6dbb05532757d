import { describe, expect, it } from '@jest/globals';
import { ago, table } from './format.js';

describe('table', () => {
  it('aligns columns and marks empty cells', () => {
    expect(table(['name', 'pilot'], [['frontend-0', 'pilot-a'], ['c', undefined]])).toBe('NAME        PILOT\nfrontend-0  pilot-a\nc           -\n');
  });
});

describe('ago', () => {
  // columns: iso, now, expected
  it.each([
    ['2026-01-01T00:00:00.000Z', Date.parse('2026-01-01T00:00:01.500Z'), '1.5s ago'],
    ['2026-01-01T00:00:00.000Z', Date.parse('2026-01-01T00:03:00.000Z'), '3m ago'],
    [undefined, 0, '-'],
    ['garbage', 0, '-'],
  ])('%s at %d → %s', (iso, now, want) => expect(ago(iso, now)).toBe(want));
});
