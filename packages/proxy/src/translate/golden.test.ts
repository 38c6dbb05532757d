import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { goldenCases, goldenPath, renderGolden } from '../test-support/golden.js';

// Golden files (see test-support/golden.ts): this test only compares. A missing golden file is a
// failure, never written here: `npm run golden:proxy` writes them, and the diff is reviewed.
const cases = goldenCases();

describe('xDS → internal model (golden files)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(5));

  it.each(cases)('%s', (name) => {
    const { text, error, expectError } = renderGolden(name);
    if (expectError) expect(error ?? '(no error)').toContain(expectError);
    else expect(error).toBeUndefined();
    const golden = goldenPath(name);
    if (!existsSync(golden)) throw new Error(`${golden} is missing; write it with npm run golden:proxy and review it`);
    expect(text).toBe(readFileSync(golden, 'utf8'));
  });
});
