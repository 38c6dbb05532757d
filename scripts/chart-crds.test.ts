// The chart renders the CRDs from its own copies (charts/octo-mesh/files/crds, so that helm
// upgrade updates them); those copies must be exactly the generated crds/. Fix a failure with
// charts/octo-mesh/sync-crds.sh.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const ROOT = join(import.meta.dirname, '..');
const generated = join(ROOT, 'crds');
const copies = join(ROOT, 'charts/octo-mesh/files/crds');

describe('charts/octo-mesh CRDs', () => {
  it('has a copy of every generated CRD and no other', () => {
    expect(readdirSync(copies).sort()).toEqual(readdirSync(generated).filter((f) => f.endsWith('.yaml')).sort());
  });
  it.each(readdirSync(generated).filter((f) => f.endsWith('.yaml')))('%s is current (run charts/octo-mesh/sync-crds.sh)', (f) => {
    expect(readFileSync(join(copies, f), 'utf8')).toBe(readFileSync(join(generated, f), 'utf8'));
  });
});
