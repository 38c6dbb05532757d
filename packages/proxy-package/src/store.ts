import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { openPackage, type OpenLimits } from './archive.js';
import { adoptCompileCache } from './compile-cache.js';
import { PackageError } from './errors.js';
import { MANIFEST_PATH, ManifestSchema, type Manifest } from './manifest.js';
import { checkSignature, sha256Hex } from './signing.js';

/** What a package must be: the UpgradeTarget's fields that concern the bytes. */
export interface PackageExpectation {
  version: string;
  /** Lower-case hex sha256 of the package file. */
  sha256: string;
  /** Base64 ed25519 signature of the digest (see signing.ts). */
  signature?: string;
}

/** An unpacked, verified package on disk. */
export interface InstalledPackage {
  dir: string;
  /** Absolute path of the manifest's entry point. */
  entry: string;
  manifest: Manifest;
  sha256: string;
}

export interface PackageStoreOptions {
  /** `<root>/<version>-<sha256[0:12]>/` per package. */
  root: string;
  /** Trusted ed25519 public keys; when any, every package must carry a signature one of them verifies. */
  trustedKeys?: readonly KeyObject[];
  /** Package directories kept (most recently used first); older ones are pruned. Default 3. */
  keep?: number;
  limits?: OpenLimits;
}

const SHA = /^[0-9a-f]{64}$/;

export function packageDirName(version: string, sha256: string): string {
  return `${version}-${sha256.slice(0, 12)}`;
}

/**
 * The agent's package cache. `install` verifies first — sha256 of the whole file, then the
 * signature when keys are trusted — and only then parses (unsafe entries refused, manifest
 * version must equal the target's) and unpacks into a temporary directory that is renamed into
 * place, so a directory under `root` with a version name is always complete.
 */
export class PackageStore {
  constructor(private readonly opts: PackageStoreOptions) {}

  get root(): string {
    return this.opts.root;
  }

  /**
   * Checks bytes against the target without touching the disk: DigestMismatch,
   * SignatureMissing, SignatureInvalid. Exported for the "verify" phase.
   */
  verify(bytes: Buffer, want: PackageExpectation): void {
    if (!SHA.test(want.sha256)) throw new PackageError('DigestMismatch', `target sha256 ${JSON.stringify(want.sha256)} is not 64 lower-case hex digits`);
    const got = sha256Hex(bytes);
    if (got !== want.sha256) throw new PackageError('DigestMismatch', `package sha256 is ${got}, the target names ${want.sha256}`);
    checkSignature(want.sha256, want.signature, this.opts.trustedKeys ?? []);
  }

  /** Checks only the signature (for a package kept unpacked from before, under a new target). */
  verifySignature(want: PackageExpectation): void {
    checkSignature(want.sha256, want.signature, this.opts.trustedKeys ?? []);
  }

  /** Verifies, unpacks and prunes; returns the installed package. `protect` dirs are never pruned. */
  async install(file: string, want: PackageExpectation, protect: readonly string[] = []): Promise<InstalledPackage> {
    const bytes = await readFile(file);
    this.verify(bytes, want);
    const opened = openPackage(bytes, { version: want.version }, this.opts.limits);
    const dir = join(this.opts.root, packageDirName(want.version, want.sha256));
    await mkdir(this.opts.root, { recursive: true });
    const existing = await this.installed(dir, want.sha256);
    if (!existing) {
      const tmp = join(this.opts.root, `.tmp-${randomBytes(6).toString('hex')}`);
      try {
        for (const f of opened.files) {
          const path = join(tmp, f.path);
          await mkdir(dirname(path), { recursive: true });
          await writeFile(path, f.data, { mode: f.executable ? 0o755 : 0o644, flag: 'wx' });
        }
        // A shipped compile cache is named for no user; Node looks for this process's uid (the
        // agent forks the proxy as itself).
        await adoptCompileCache(tmp, process.getuid?.());
        await writeFile(join(tmp, '.sha256'), `${want.sha256}\n`, { flag: 'wx' });
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
    } else {
      const now = new Date();
      await utimes(dir, now, now);
    }
    await this.prune([dir, ...protect]);
    return { dir, entry: join(dir, opened.manifest.entry), manifest: opened.manifest, sha256: want.sha256 };
  }

  /** A complete directory for this digest, if one is there already. */
  private async installed(dir: string, sha256: string): Promise<boolean> {
    try {
      return (await readFile(join(dir, '.sha256'), 'utf8')).trim() === sha256;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Reads an installed package back (e.g. after an agent restart). */
  async load(dir: string): Promise<InstalledPackage> {
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(dir, MANIFEST_PATH), 'utf8')));
    const sha256 = (await readFile(join(dir, '.sha256'), 'utf8')).trim();
    return { dir, entry: join(dir, manifest.entry), manifest, sha256 };
  }

  /** Keeps the `keep` most recently used package directories (and `protect`), removes the rest and stale temporaries. */
  async prune(protect: readonly string[] = []): Promise<string[]> {
    const keep = this.opts.keep ?? 3;
    const names = await readdir(this.opts.root);
    const dirs: { path: string; mtime: number }[] = [];
    const removed: string[] = [];
    for (const n of names) {
      const path = join(this.opts.root, n);
      if (n.startsWith('.tmp-')) {
        const st = await stat(path);
        if (Date.now() - st.mtimeMs > 60_000) {
          await rm(path, { recursive: true, force: true });
          removed.push(path);
        }
        continue;
      }
      if (n.startsWith('.') || n.endsWith('.tgz') || n.endsWith('.partial')) continue;
      dirs.push({ path, mtime: (await stat(path)).mtimeMs });
    }
    dirs.sort((a, b) => b.mtime - a.mtime);
    let kept = 0;
    for (const d of dirs) {
      if (protect.includes(d.path)) continue;
      if (kept < keep - protect.length) {
        kept++;
        continue;
      }
      await rm(d.path, { recursive: true, force: true });
      removed.push(d.path);
    }
    return removed;
  }
}
