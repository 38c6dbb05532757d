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

/**
 * The top-level keys a config schema defines, or undefined when they cannot be known (not an
 * object schema under its wrappers). zod 4 keeps refinements on the object itself; defaults,
 * optionals and pipes are unwrapped.
 */
export function schemaKeys(schema: z.ZodType, depth = 0): Set<string> | undefined {
  const def = (schema as { _zod?: { def?: { type?: string; shape?: Record<string, unknown>; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType } } })._zod?.def;
  if (!def || depth > 10) return undefined;
  if (def.type === 'object' && def.shape) return new Set(Object.keys(def.shape));
  // A pipe: `.transform()` puts the object in `in`, `z.preprocess()` in `out`.
  for (const inner of [def.innerType, def.in, def.out]) {
    const keys = inner && schemaKeys(inner, depth + 1);
    if (keys) return keys;
  }
  return undefined;
}

/**
 * Kubernetes service links: for every Service in a pod's namespace (unless the pod sets
 * `enableServiceLinks: false`) the kubelet adds `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]`,
 * `<NAME>_PORT=tcp://<ip>:<port>` and `<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`, NAME being the
 * Service name upper-cased with `-` → `_`. A Service called `octo-proxy-admin` thus sets
 * `OCTO_PROXY_ADMIN_PORT=tcp://10.0.0.9:80` in every container of its namespace.
 */
const SERVICE_LINK_VALUE = /^(tcp|udp|sctp):\/\/[0-9a-fA-F.:[\]]+:\d+$/;

/** The Service whose link `name=value` would be, if it has that shape (for an error's hint). */
export function serviceLinkOf(name: string, value: string): string | undefined {
  const m = /^(.+)_PORT$/.exec(name);
  return m && SERVICE_LINK_VALUE.test(value) ? m[1]!.toLowerCase().replaceAll('_', '-') : undefined;
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
 * A configuration file's content: JSON by `JSON.parse` when it looks like JSON, YAML otherwise
 * (or when it does not parse as JSON: a YAML flow mapping also starts with `{`). JSON is YAML,
 * but the YAML parser is far slower and leaves far more garbage: ~0.3 s of CPU for a proxy's
 * 1,000-route static config, about half of its start (docs/footprint.md, round 4). One
 * difference: a key given twice in a JSON object takes its last value, as JSON.parse does,
 * where the YAML parser refuses it.
 */
export function parseFile(text: string): unknown {
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch {
      // not JSON after all: YAML reads it, or says where it is wrong
    }
  }
  return parseYaml(text);
}

/**
 * Loads a component's configuration: schema defaults < file < environment < flags, validated by
 * the zod schema (use `z.coerce` for numbers and booleans that arrive as strings). A bad value
 * throws ConfigError naming the field and where it came from.
 *
 * The environment is shared with others (Kubernetes service links for Services named like
 * `octo-proxy`, tools, users): a prefixed variable that names no field of the schema is ignored,
 * not an error. One that names a field is validated like a flag; flags and files are addressed to
 * the component alone and stay strict.
 */
export function loadConfig<S extends z.ZodType>(schema: S, opts: LoadConfigOptions): z.infer<S> {
  const flags = parseFlags(opts.argv ?? process.argv.slice(2));
  const file = flags['config'] ?? opts.file;
  delete flags['config'];
  let fromFile: Record<string, unknown> = {};
  if (file) {
    try {
      fromFile = (parseFile(readFileSync(file, 'utf8')) as Record<string, unknown>) ?? {};
    } catch (err) {
      throw new ConfigError('invalid configuration', [{ path: file, message: (err as Error).message }]);
    }
  }
  const keys = schemaKeys(schema);
  const fromEnv = Object.fromEntries(Object.entries(envValues(opts.env ?? process.env, opts.envPrefix)).filter(([k]) => keys === undefined || keys.has(k)));
  const envName = (key: string) => `${opts.envPrefix}${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
  const merged = { ...fromFile, ...fromEnv, ...flags };
  const result = schema.safeParse(merged);
  if (result.success) return result.data;
  const source = (key: string) =>
    key in flags ? `flag --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : key in fromEnv ? `env ${envName(key)}${linkHint(key)}` : key in fromFile ? `file ${file}` : 'default';
  const linkHint = (key: string) => {
    const service = serviceLinkOf(envName(key), String(fromEnv[key]));
    return service ? `, which looks like the Kubernetes service link of a Service named "${service}": rename the Service, set this field by flag, or set enableServiceLinks: false on the pod` : '';
  };
  throw new ConfigError(
    'invalid configuration',
    result.error.issues.map((i) => ({
      path: formatPath(i.path),
      message: `${i.message} (from ${source(String(i.path[0] ?? ''))})`,
    })),
  );
}
