import { describe, expect, it } from '@jest/globals';
import { satisfies } from './manifest.js';

describe('satisfies', () => {
  // columns: version, range, expected
  it.each<[string, string, boolean]>([
    ['24.21.0', '>=24.0.0 <25', true],
    ['25.0.0', '>=24.0.0 <25', false],
    ['v24.1.0', '>=24', true],
    ['20.1.0', '>=24 || 20.1.0', true],
    ['22.0.0', '<=22.0.0', true],
    ['22.0.1', '>22.0.0 <22.0.2', true],
    ['24.0.0', 'banana', false],
    ['24.0.0', '', false],
  ])('%s in %s → %s', (v, r, want) => expect(satisfies(v, r)).toBe(want));
});
