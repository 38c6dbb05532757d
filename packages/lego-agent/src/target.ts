import { readFile } from 'node:fs/promises';
import { z } from 'zod';

/**
 * An UpgradeTarget as the agent acts on it: from the pilot (the proxy forwards the accepted
 * `octo.mesh.v1.UpgradeTarget`, camelCase as ts-proto decodes it) or from a local file (camelCase
 * or the proto's snake_case names).
 */
export interface UpgradeTarget {
  version: string;
  packageUrl: string;
  sha256: string;
  signature: string;
  rollout: string;
  generation: number;
}

const TargetSchema = z.object({
  version: z.string().min(1),
  packageUrl: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits'),
  signature: z.string().default(''),
  rollout: z.string().default(''),
  generation: z.coerce.number().int().min(0).default(0),
});

/** Reads a target; null for "no target" (empty object, empty version); throws naming the bad field. */
export function parseTarget(raw: unknown): UpgradeTarget | null {
  if (raw === null || raw === undefined) return null;
  const o = { ...(raw as Record<string, unknown>) };
  if (o['package_url'] !== undefined && o['packageUrl'] === undefined) o['packageUrl'] = o['package_url'];
  delete o['package_url'];
  if (!o['version']) return null;
  const r = TargetSchema.safeParse(o);
  if (!r.success) throw new Error(`invalid upgrade target: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export async function readTargetFile(path: string): Promise<UpgradeTarget | null> {
  const text = await readFile(path, 'utf8');
  if (!text.trim()) return parseTarget(null);
  // Loaded on first use: only a target file (tests, single-host runs) is YAML; a sidecar's targets
  // come from its pilot as JSON, and this package's own copy of yaml would cost ~8 MB RSS.
  const { parse } = await import('yaml');
  return parseTarget(parse(text));
}

export const sameTarget = (a: UpgradeTarget | null, b: UpgradeTarget | null): boolean =>
  a === b || (!!a && !!b && a.version === b.version && a.sha256 === b.sha256 && a.packageUrl === b.packageUrl && a.signature === b.signature && a.rollout === b.rollout && a.generation === b.generation);
