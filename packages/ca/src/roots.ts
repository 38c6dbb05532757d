/**
 * The CA's roots from files: the configured ones, or one generated into the state directory on
 * first start (embedded mode) and read back on every later start. Key files are written 0600.
 */
import { access, constants, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRoot, writeAtomically, type RootMaterial } from '@octo-mesh/identity';
import type { Logger } from '@octo-mesh/runtime';
import type { CaConfig } from './config.js';

export const GENERATED_ROOT = 'generated';

export interface LoadedRoots {
  roots: RootMaterial[];
  signing: string;
  /** Key file of the signing root (readiness re-checks it can be read). */
  signingKeyPath: string;
}

async function read(path: string, field: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export async function loadRoots(config: Pick<CaConfig, 'roots' | 'signing' | 'stateDir' | 'trustDomain' | 'generatedRootLifetimeSeconds'>, logger: Logger, now = new Date()): Promise<LoadedRoots> {
  if (config.roots.length) {
    const roots = await Promise.all(
      config.roots.map(async (r, i) => ({
        name: r.name,
        certPem: await read(r.cert, `roots[${i}].cert`),
        ...(r.key ? { keyPem: await read(r.key, `roots[${i}].key`) } : {}),
      })),
    );
    const signing = config.signing ?? config.roots[0]!.name;
    const entry = config.roots.find((r) => r.name === signing)!;
    if (!entry.key) throw new Error(`signing: root ${JSON.stringify(signing)} has no key file`);
    return { roots, signing, signingKeyPath: entry.key };
  }
  const dir = join(config.stateDir!, 'roots', GENERATED_ROOT);
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const exists = await access(certPath, constants.R_OK).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const root = createRoot({ trustDomain: config.trustDomain, now, lifetimeSeconds: config.generatedRootLifetimeSeconds });
    // Key first: a cert without its key would read as a broken state on the next start.
    await writeAtomically(keyPath, root.keyPem, 0o600);
    await writeAtomically(certPath, root.certPem, 0o644);
    logger.info('root generated', { root: GENERATED_ROOT, cert: certPath });
  }
  return {
    roots: [{ name: GENERATED_ROOT, certPem: await read(certPath, 'stateDir (generated root cert)'), keyPem: await read(keyPath, 'stateDir (generated root key)') }],
    signing: GENERATED_ROOT,
    signingKeyPath: keyPath,
  };
}
