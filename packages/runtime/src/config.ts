import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type FieldIssue } from './errors.js';

/** Turns zod issues into field issues with paths such as `spec.rules[1].weight`. */
export function zodIssues(error: z.ZodError, prefix = ''): FieldIssue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path, prefix), message: i.message }));
}

/** Formats a path: `['spec', 'rules', 1, 'weight']` → `spec.rules[1].weight`. */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/**
 * Turns `--xds-port=15010`, `--xds-port 15010` and `--log-level debug` into
 * `{ xdsPort: '15010', logLevel: 'debug' }`; a bare `--flag` is `'true'`.
 */
export function parseFlags(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const name = camel(a.slice(2, eq < 0 ? undefined : eq));
    if (eq >= 0) out[name] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) out[name] = argv[++i]!;
    else out[name] = 'true';
  }
  return out;
}

/** `OCTO_PILOT_XDS_PORT=1` with prefix `OCTO_PILOT_` → `{ xdsPort: '1' }`. */
export function envValues(env: NodeJS.ProcessEnv, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && k.startsWith(prefix) && k.length > prefix.length) out[camel(k.slice(prefix.length).toLowerCase().replaceAll('_', '-'))] = v;
  }
  return out;
}

function camel(s: string): string {
  return s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export interface LoadConfigOptions {
  /** Environment variable prefix, e.g. `OCTO_PILOT_`. */
  envPrefix: string;
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** A YAML/JSON file; also taken from `--config`. */
  file?: string;
}

/**
 * Loads a component's configuration: schema defaults < file < environment < flags, validated by
 * the zod schema (use `z.coerce` for numbers and booleans that arrive as strings). A bad value
 * throws ConfigError naming the field and where it came from.
 */
export function loadConfig<S extends z.ZodType>(schema: S, opts: LoadConfigOptions): z.infer<S> {
  const flags = parseFlags(opts.argv ?? process.argv.slice(2));
  const file = flags['config'] ?? opts.file;
  delete flags['config'];
  let fromFile: Record<string, unknown> = {};
  if (file) {
    try {
      fromFile = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>) ?? {};
    } catch (err) {
      throw new ConfigError('invalid configuration', [{ path: file, message: (err as Error).message }]);
    }
  }
  const fromEnv = envValues(opts.env ?? process.env, opts.envPrefix);
  const merged = { ...fromFile, ...fromEnv, ...flags };
  const result = schema.safeParse(merged);
  if (result.success) return result.data;
  const source = (key: string) =>
    key in flags ? `flag --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : key in fromEnv ? `env ${opts.envPrefix}${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}` : key in fromFile ? `file ${file}` : 'default';
  throw new ConfigError(
    'invalid configuration',
    result.error.issues.map((i) => ({
      path: formatPath(i.path),
      message: `${i.message} (from ${source(String(i.path[0] ?? ''))})`,
    })),
  );
}
