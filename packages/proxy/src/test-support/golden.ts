import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { TYPE_URL } from '@octo-mesh/proto';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from '../translate/index.js';

/**
 * The proxy's golden files: `testdata/NN.input.yaml` holds Envoy resources (as Envoy's YAML
 * writes them) under `listeners`, `routes`, `clusters`, `endpoints`, and optionally
 * `expect_error` (a substring the translation error must contain). `NN.golden.yaml` is the
 * internal model, or the error. `golden.test.ts` compares; only `npm run golden:proxy`
 * (`scripts/update-golden.mjs`) writes.
 */
export const GOLDEN_DIR = fileURLToPath(new URL('../../testdata', import.meta.url));

const KINDS: [string, ResourceTypeUrl][] = [
  ['listeners', TYPE_URL.listener],
  ['routes', TYPE_URL.route],
  ['clusters', TYPE_URL.cluster],
  ['endpoints', TYPE_URL.endpoint],
];

/** Case names (`NN-what`), sorted. */
export function goldenCases(): string[] {
  return readdirSync(GOLDEN_DIR)
    .filter((f) => f.endsWith('.input.yaml'))
    .map((f) => f.replace('.input.yaml', ''))
    .sort();
}

export const goldenPath = (name: string): string => join(GOLDEN_DIR, `${name}.golden.yaml`);

/** Translates one case's input; `text` is what its golden file must hold. */
export function renderGolden(name: string): { text: string; error?: string; expectError?: string } {
  const input = parse(readFileSync(join(GOLDEN_DIR, `${name}.input.yaml`), 'utf8')) as Record<string, unknown>;
  const { output, error } = translateInput(input);
  const expectError = input['expect_error'] as string | undefined;
  // SafeRegex prints itself (toJSON); the round trip drops undefined fields as YAML would.
  const text = stringify(JSON.parse(JSON.stringify(output)), { lineWidth: 0 });
  return { text, ...(error !== undefined ? { error } : {}), ...(expectError !== undefined ? { expectError } : {}) };
}

function translateInput(input: Record<string, unknown>): { output: unknown; error?: string } {
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
