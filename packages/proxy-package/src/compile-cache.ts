import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { backoffDelay, sleep } from '@octo-mesh/runtime/backoff.js';
import type { TarEntry } from './tar.js';

/**
 * Node's module compile cache (`NODE_COMPILE_CACHE`, V8 code cache on disk), built once where a
 * package or an image is built and shipped beside the modules, so that a proxy's first start in a
 * new pod, or the first start of a newly unpacked version, does not parse and compile its 3.7 MB
 * bundle (docs/footprint.md, round 7).
 *
 * What Node does (v24.12+, checked on 24.21): with `NODE_COMPILE_CACHE_PORTABLE=1` a module's cache
 * is keyed by its path relative to the cache directory, so a directory holding `proxy.mjs` and
 * `compile-cache/` can be moved or unpacked anywhere. The cache files sit in
 * `compile-cache/v<node>-<arch>-<V8 tag>-<uid>/`: the V8 tag covers V8's version, its code-relevant
 * flags and the CPU's features; the uid is the running user's. Any mismatch (another Node, another
 * CPU, a changed module, a corrupt file) is a miss: Node compiles as without a cache, and writes a
 * fresh entry when the directory is writable.
 */

/** The cache directory beside the modules, in a package and in the sidecar image's /app. */
export const COMPILE_CACHE_DIR = 'compile-cache';

/**
 * Where caches are built. V8 writes the module's URL into its code cache (the cache still serves
 * the module at any other path), so the same bytes need the same absolute path; the directory is
 * taken by one build at a time (created exclusively, removed after).
 */
export const COMPILE_CACHE_BUILD_DIR = '/tmp/octo-compile-cache-build';

/** Node's name for a cache subdirectory: `v24.21.0-x64-964aae3f-0` (version, arch, V8 tag, uid). */
const TAG_DIR = /^(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?-[a-z0-9]+-[0-9a-f]{8})(?:-(\d+))?$/;

/**
 * The compile cache directory for a proxy child (what the LEGO agent sets as `NODE_COMPILE_CACHE`,
 * with `NODE_COMPILE_CACHE_PORTABLE=1`): an installed package's own `compile-cache/` (shipped in
 * it, or written there by its first start; pruned with the package); for an entry outside the
 * package store (the image's bootstrap `/app/proxy.mjs`), the `compile-cache/` beside it when it
 * holds a cache for this Node and this user (the image's is read-only: one for another user
 * would leave every start cold), else `fallback` (the agent's state directory).
 */
export function compileCacheDirFor(entry: string, packageDir: string | undefined, fallback: string): string {
  if (packageDir) return join(packageDir, COMPILE_CACHE_DIR);
  const beside = join(dirname(entry), COMPILE_CACHE_DIR);
  const prefix = `v${process.versions.node}-${process.arch}-`;
  const uid = process.getuid?.();
  try {
    if (readdirSync(beside).some((n) => n.startsWith(prefix) && (uid === undefined || n.endsWith(`-${uid}`)))) return beside;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return fallback;
}

export interface CompileCacheSpec {
  /** The files laid out as they will be at run time (paths relative to one directory). */
  files: readonly { path: string; data: Buffer }[];
  /** Which of them to compile (ES modules). */
  modules: readonly string[];
  /** The Node binary that will run them (default this one). */
  node?: string;
  /** The uid the cache directory is named for (the image's user); default none: the agent adds its own at unpack. */
  uid?: number;
  /** Extra Node flags (flags that change code generation change the V8 tag). */
  nodeFlags?: readonly string[];
}

/**
 * Builds the compile cache of `modules` and returns it as tar entries under `compile-cache/`.
 * Reproducible: V8 seeds its string hashes from `--random-seed` (excluded from the flags the
 * cache is checked against), so with a fixed seed, the same path and the same Node the cache is
 * the same bytes (checked by build.test.ts across processes).
 *
 * Each module is compiled, not run: a process imports a name the module does not export, so the
 * module graph is compiled (and its cache written at exit) and linking fails before any of its
 * code runs.
 */
export async function buildCompileCache(spec: CompileCacheSpec): Promise<TarEntry[]> {
  return withBuildDir(async (dir) => {
    for (const f of spec.files) {
      await mkdir(dirname(join(dir, f.path)), { recursive: true });
      await writeFile(join(dir, f.path), f.data);
    }
    const cacheDir = join(dir, COMPILE_CACHE_DIR);
    for (const m of spec.modules) await compileOnly(spec.node ?? process.execPath, spec.nodeFlags ?? [], join(dir, m), cacheDir);
    const sizes = new Set(spec.modules.map((m) => spec.files.find((f) => f.path === m)!.data.length));
    const out: TarEntry[] = [];
    for (const sub of await readdir(cacheDir)) {
      const m = TAG_DIR.exec(sub);
      if (!m) throw new Error(`compile cache: unexpected directory ${sub} (Node's cache layout changed?)`);
      const name = spec.uid === undefined ? m[1]! : `${m[1]}-${spec.uid}`;
      for (const file of (await readdir(join(cacheDir, sub))).sort()) {
        const data = await readFile(join(cacheDir, sub, file));
        // Node's header: magic, then the source's byte length. Only the modules' caches are
        // kept, not that of the one-line importer.
        if (data.length >= 8 && sizes.has(data.readUInt32LE(4))) out.push({ path: `${COMPILE_CACHE_DIR}/${name}/${file}`, data });
      }
    }
    if (out.length !== spec.modules.length) throw new Error(`compile cache: ${out.length} cache files for ${spec.modules.length} modules (Node's cache layout changed?)`);
    return out;
  });
}

/** Compiles one ES module into `cacheDir` without running it. */
function compileOnly(node: string, flags: readonly string[], file: string, cacheDir: string): Promise<void> {
  const importer = `import { __octoCompileOnly } from ${JSON.stringify(pathToFileURL(file).href)};`;
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], NODE_COMPILE_CACHE: cacheDir, NODE_COMPILE_CACHE_PORTABLE: '1' };
  return new Promise((resolve, reject) => {
    const c = spawn(node, ['--random-seed=1', ...flags, '--input-type=module', '-e', importer], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('error', reject);
    c.once('exit', (code) => {
      // The expected end: compiled, then the link error for the name imported on purpose.
      if (code === 1 && err.includes('__octoCompileOnly')) resolve();
      else reject(new Error(`compile cache: compiling ${file} ended with ${code}: ${err.trim().split('\n').slice(0, 5).join(' | ')}`));
    });
  });
}

/** Runs `fn` in `COMPILE_CACHE_BUILD_DIR`, waiting while another build holds it (one left by a killed build is taken after 2 min). */
async function withBuildDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = COMPILE_CACHE_BUILD_DIR;
  const deadline = Date.now() + 300_000;
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(dir).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > 120_000) await rm(dir, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`compile cache: ${dir} stayed taken by another build for 5 min`, { cause: err });
      else await sleep(backoffDelay(attempt, { initialMs: 50, maxMs: 1000, jitter: 0.5 }));
    }
  }
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Gives a package's shipped cache (`compile-cache/<node>-<arch>-<tag>/`, no uid) the name Node
 * looks for when run by `uid`. Run on the unpacked directory before it is renamed into place.
 */
export async function adoptCompileCache(packageDir: string, uid: number | undefined): Promise<string[]> {
  if (uid === undefined) return [];
  const root = join(packageDir, COMPILE_CACHE_DIR);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const adopted: string[] = [];
  for (const n of names) {
    const m = TAG_DIR.exec(n);
    if (!m || m[2] !== undefined) continue;
    await rename(join(root, n), join(root, `${n}-${uid}`));
    adopted.push(`${n}-${uid}`);
  }
  return adopted;
}
