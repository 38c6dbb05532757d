import { z } from 'zod';
import { PackageError } from './errors.js';
import { safePath } from './tar.js';

export const PACKAGE_NAME = 'octo-proxy';
export const MANIFEST_PATH = 'manifest.json';

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * **contract** `manifest.json` at the root of a proxy package: which program it is, its version
 * (must equal the UpgradeTarget's version: no substitution), the entry point (a path inside the
 * package that the LEGO agent forks) and the Node range it needs (`>=24.0.0 <25` style).
 */
export const ManifestSchema = z
  .object({
    name: z.literal(PACKAGE_NAME),
    version: z.string().regex(SEMVER, 'must be a semantic version'),
    entry: z.string().min(1),
    node: z.string().min(1),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;

/** Parses and checks a manifest against what the package holds and what the target asked for. */
export function checkManifest(raw: Buffer | undefined, files: ReadonlySet<string>, expect: { version: string; nodeVersion?: string }): Manifest {
  if (!raw) throw new PackageError('ManifestMismatch', `no ${MANIFEST_PATH} in the package`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new PackageError('ManifestMismatch', `${MANIFEST_PATH}: ${(err as Error).message}`);
  }
  const r = ManifestSchema.safeParse(json);
  if (!r.success) throw new PackageError('ManifestMismatch', `${MANIFEST_PATH}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const m = r.data;
  if (m.version !== expect.version) throw new PackageError('ManifestMismatch', `package is version ${m.version}, the target is ${expect.version}`);
  let entry: string;
  try {
    entry = safePath(m.entry);
  } catch (err) {
    throw new PackageError('ManifestMismatch', `${MANIFEST_PATH}: entry: ${(err as Error).message}`);
  }
  if (!files.has(entry)) throw new PackageError('ManifestMismatch', `${MANIFEST_PATH}: entry ${JSON.stringify(m.entry)} is not in the package`);
  const node = expect.nodeVersion ?? process.versions.node;
  if (!satisfies(node, m.node)) throw new PackageError('ManifestMismatch', `package needs node ${m.node}, this is ${node}`);
  return { ...m, entry };
}

function parts(v: string): [number, number, number] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

function cmp(a: [number, number, number], b: [number, number, number]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * Whether `version` satisfies `range`: comparators (`>=`, `>`, `<=`, `<`, `=`, or a bare
 * version) joined by spaces (all must hold) and `||` (any group). Enough for the engines-style
 * ranges a manifest names; anything unparsable does not satisfy.
 */
export function satisfies(version: string, range: string): boolean {
  const v = parts(version);
  if (!v) return false;
  return range.split('||').some((group) => {
    const cs = group.trim().split(/\s+/).filter(Boolean);
    if (cs.length === 0) return false;
    return cs.every((c) => {
      const m = /^(>=|<=|>|<|=)?(.+)$/.exec(c);
      const w = m && parts(m[2]!);
      if (!w) return false;
      const d = cmp(v, w);
      switch (m![1]) {
        case '>=':
          return d >= 0;
        case '>':
          return d > 0;
        case '<=':
          return d <= 0;
        case '<':
          return d < 0;
        default:
          return d === 0;
      }
    });
  });
}
