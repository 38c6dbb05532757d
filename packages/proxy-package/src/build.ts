import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { manifestEntry, packArchive } from './archive.js';
import { buildCompileCache } from './compile-cache.js';
import { PACKAGE_NAME, type Manifest } from './manifest.js';
import { sha256Hex } from './signing.js';
import type { TarEntry } from './tar.js';

/** The repository root (this file is packages/proxy-package/{src,dist}/build.*). */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The Node range a bundle built here needs (the workspace's engines). */
export const NODE_RANGE = '>=24.0.0 <25';
export const BUNDLE_PATH = 'proxy.mjs';
/** Packages the bundle leaves out (see `bundleProxy`): a call that would reach them throws. */
export const LEFT_OUT = ['@grpc/proto-loader'] as const;

/**
 * Bundles the built proxy (`packages/proxy/dist/main.js` and everything it imports: build it
 * first, `tsc -b packages/proxy`) into one ESM file for Node, with `PROXY_VERSION` stamped as
 * `version`. The output depends only on the build and the version (paths in it are relative to
 * the repository root). From the compiled JavaScript rather than the TypeScript sources on
 * purpose: resolving workspace imports to sources took a resolver plugin, and with it esbuild's
 * CommonJS interop flag (`__toESM(…, 1)`) for one module changed now and then between processes,
 * so the same source did not always give the same sha256.
 */
export async function bundleProxy(version: string, root = REPO_ROOT): Promise<Buffer> {
  const r = await build({
    entryPoints: [join(root, 'packages/proxy/dist/main.js')],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    write: false,
    define: { __OCTO_PROXY_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies (grpc-js, winston, ...) call require() for Node built-ins.
    banner: { js: "import { createRequire as __octoCreateRequire } from 'node:module';\nconst require = __octoCreateRequire(import.meta.url);" },
    legalComments: 'none',
    logLevel: 'error',
    // grpc-js requires @grpc/proto-loader (and with it protobufjs, long, …: ~300 KiB) only inside
    // the functions that load channelz.proto and orca.proto from files beside its own source,
    // which a bundle does not have: those paths cannot work here, and the proxy uses neither.
    // Left out, the require would fail the same way when called; meanwhile every proxy stops
    // holding ~300 KiB of source it never runs (docs/footprint.md, round 4).
    external: [...LEFT_OUT],
  });
  return Buffer.from(asciiOnly(r.outputFiles[0]!.text), 'latin1');
}

/**
 * Escapes every non-ASCII character as `\uXXXX`. esbuild already writes code ASCII-only, but it
 * keeps comments as they are, and one `—` in a comment makes V8 hold the whole module source as
 * a two-byte string: twice the bundle's size (~9 MB instead of ~4.5 MB) for the process's life.
 * The escape means the same inside strings, regexes, identifiers and comments.
 */
export function asciiOnly(source: string): string {
  return source.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export interface PackageSpec {
  version: string;
  /** The bundle (default: `bundleProxy(version)`). */
  bundle?: Buffer;
  /** Extra files, e.g. a wrapper entry for tests. */
  files?: TarEntry[];
  /** Entry point inside the package (default `proxy.mjs`). */
  entry?: string;
  node?: string;
  /**
   * Ship the bundle's compile cache (`compile-cache/…`, built with this Node; see
   * compile-cache.ts), so that the version's first start in a pod is warm. Default true.
   */
  compileCache?: boolean;
}

/** Builds a package's bytes: manifest + bundle (+ compile cache) (+ files). Same spec and Node → same bytes. */
export async function makePackage(spec: PackageSpec): Promise<{ bytes: Buffer; sha256: string; manifest: Manifest }> {
  const manifest: Manifest = { name: PACKAGE_NAME, version: spec.version, entry: spec.entry ?? BUNDLE_PATH, node: spec.node ?? NODE_RANGE };
  const bundle = spec.bundle ?? (await bundleProxy(spec.version));
  const files = [{ path: BUNDLE_PATH, data: bundle }];
  const cache = spec.compileCache === false ? [] : await buildCompileCache({ files, modules: [BUNDLE_PATH] });
  const bytes = packArchive([manifestEntry(manifest), ...files, ...cache, ...(spec.files ?? [])]);
  return { bytes, sha256: sha256Hex(bytes), manifest };
}

/** Writes `<outDir>/octo-proxy-<version>.tgz`; returns its path and sha256. */
export async function writePackage(spec: PackageSpec, outDir: string): Promise<{ path: string; sha256: string; size: number }> {
  const { bytes, sha256 } = await makePackage(spec);
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, `${PACKAGE_NAME}-${spec.version}.tgz`);
  await writeFile(path, bytes);
  return { path, sha256, size: bytes.length };
}
