// Every manifest under examples/valid must pass; every one under examples/invalid must fail with
// the field path and message its first line announces (`# expect: <path>: <message>`). The same
// files are applied to a real API server by the cluster tests, so zod and the CRD's schema/CEL
// are held to the same expectations.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { parseManifests } from './manifest.js';

const examples = resolve(fileURLToPath(import.meta.url), '../../../../examples');
const yamlIn = (dir: string) => readdirSync(join(examples, dir)).filter((f) => f.endsWith('.yaml')).sort();

/** Reads `# expect: spec.rules[0].route: weights …` → {path, message}. */
export function expectation(text: string): { path: string; message: string } {
  const m = /^# expect: (\S+): (.+)$/m.exec(text);
  if (!m) throw new Error('invalid example lacks a "# expect: <path>: <message>" line');
  return { path: m[1]!, message: m[2]! };
}

describe('valid examples', () => {
  it.each(yamlIn('valid'))('%s is valid', (file) => {
    const { objects, issues } = parseManifests(readFileSync(join(examples, 'valid', file), 'utf8'), file);
    expect(issues).toEqual([]);
    expect(objects.length).toBeGreaterThan(0);
  });
});

describe('invalid examples', () => {
  const files = yamlIn('invalid');
  it('cover at least 30 cases across both kinds', () => {
    expect(files.filter((f) => f.startsWith('rp-')).length).toBeGreaterThanOrEqual(15);
    expect(files.filter((f) => f.startsWith('pv-')).length).toBeGreaterThanOrEqual(10);
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(files)('%s is rejected at the announced path with the announced message', (file) => {
    const text = readFileSync(join(examples, 'invalid', file), 'utf8');
    const want = expectation(text);
    const { objects, issues } = parseManifests(text, file);
    expect(objects).toEqual([]);
    expect(issues).toContainEqual(expect.objectContaining({ path: want.path, message: expect.stringContaining(want.message) }));
    // One mistake, one message: cross-field rules do not pile on top of a field error.
    expect(issues).toHaveLength(1);
  });
});
