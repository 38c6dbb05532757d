import { gunzipSync, gzipSync } from 'node:zlib';
import { PackageError } from './errors.js';
import { checkManifest, MANIFEST_PATH, type Manifest } from './manifest.js';
import { readTar, writeTar, type TarEntry, type TarFile } from './tar.js';

/** Limits applied when a package is opened. */
export interface OpenLimits {
  /** Unpacked contents, bytes (default 256 MiB). */
  maxUnpackedBytes?: number;
}

/**
 * A proxy package's bytes: the gzipped tar of `manifest.json` and the files it names. The same
 * entries always give the same bytes (sorted entries, fixed metadata, gzip header without a
 * timestamp, fixed level), so the same source and version give the same sha256.
 */
export function packArchive(entries: readonly TarEntry[]): Buffer {
  return gzipSync(writeTar(entries), { level: 9 });
}

export function manifestEntry(m: Manifest): TarEntry {
  return { path: MANIFEST_PATH, data: Buffer.from(`${JSON.stringify(m, null, 2)}\n`) };
}

export interface OpenedPackage {
  manifest: Manifest;
  files: TarFile[];
}

/**
 * Opens package bytes that were already verified (digest, signature): gunzip with an output cap,
 * read the tar refusing unsafe entries, check the manifest against the target's version.
 */
export function openPackage(gz: Buffer, expect: { version: string; nodeVersion?: string }, limits: OpenLimits = {}): OpenedPackage {
  const max = limits.maxUnpackedBytes ?? 256 * 1024 * 1024;
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: max + 64 * 1024 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|too large/i.test(e.message)) throw new PackageError('TooLarge', `unpacked package over ${max} bytes`);
    throw new PackageError('UnsafeArchive', `not a gzip archive: ${e.message}`);
  }
  const files = readTar(tar, { maxTotalBytes: max });
  const manifest = checkManifest(
    files.find((f) => f.path === MANIFEST_PATH)?.data,
    new Set(files.map((f) => f.path)),
    expect,
  );
  return { manifest, files };
}
