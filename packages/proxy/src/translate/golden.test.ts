import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { TYPE_URL } from '@octo-mesh/proto';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from './index.js';

// Golden files: testdata/NN.input.yaml holds Envoy resources (as Envoy's YAML writes them) under
// `listeners`, `routes`, `clusters`, `endpoints`, and optionally `expect_error` (a substring the
// translation error must contain). NN.golden.yaml is the internal model, or the error.
// UPDATE_GOLDEN=1 rewrites the golden files.
const DIR = fileURLToPath(new URL('../../testdata', import.meta.url));
const KINDS: [string, ResourceTypeUrl][] = [
  ['listeners', TYPE_URL.listener],
  ['routes', TYPE_URL.route],
  ['clusters', TYPE_URL.cluster],
  ['endpoints', TYPE_URL.endpoint],
];

function translateFile(input: Record<string, unknown>): { output: unknown; error?: string } {
  const output: Record<string, unknown[]> = {};
  for (const [key, typeUrl] of KINDS) {
    const list = (input[key] as unknown[] | undefined) ?? [];
    for (const [i, obj] of list.entries()) {
      const msg = fromEnvoyJson(typeUrl, obj, `${key}[${i}]`);
      if (!msg.ok) return { output: { error: msg.error }, error: msg.error };
      const r = translateResource(typeUrl, msg.value);
      if (!r.ok) return { output: { error: r.error }, error: r.error };
      (output[key] ??= []).push(r.value);
    }
  }
  return { output };
}

const plain = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (x instanceof RegExp ? `/${x.source}/${x.flags}` : x))) as unknown;

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.input.yaml'))
  .map((f) => f.replace('.input.yaml', ''))
  .sort();

describe('xDS → internal model (golden files)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(5));

  it.each(cases)('%s', (name) => {
    const input = parse(readFileSync(join(DIR, `${name}.input.yaml`), 'utf8')) as Record<string, unknown>;
    const { output, error } = translateFile(input);
    const expectError = input['expect_error'] as string | undefined;
    if (expectError) expect(error ?? '(no error)').toContain(expectError);
    else expect(error).toBeUndefined();
    const text = stringify(plain(output), { lineWidth: 0 });
    const golden = join(DIR, `${name}.golden.yaml`);
    if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(golden)) writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
  });
});
