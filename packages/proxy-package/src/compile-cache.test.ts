import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleProxy, makePackage, REPO_ROOT } from './build.js';
import { buildCompileCache, COMPILE_CACHE_DIR, compileCacheDirFor } from './compile-cache.js';
import { PackageStore, type InstalledPackage } from './store.js';

const out = mkdtempSync(join(tmpdir(), 'octo-compile-cache-'));
const uid = process.getuid!();
/** A one-route proxy on ports the kernel picks. */
const BOOTSTRAP = JSON.stringify({
  adminPort: 0,
  outboundPort: 0,
  inboundHost: '127.0.0.1',
  inboundPort: 0,
  accessLog: 'off',
  logLevel: 'warn',
  staticResources: {
    listeners: [
      {
        name: 'outbound',
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                  stat_prefix: 'outbound',
                  route_config: { name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }] }] },
                  http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                },
              },
            ],
          },
        ],
      },
    ],
    clusters: [{ name: 'app', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'app', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] } }],
  },
});
writeFileSync(join(out, 'bootstrap.json'), BOOTSTRAP);

/**
 * Starts the proxy as the LEGO agent would (its compile cache env), with Node's compile-cache
 * debug output; resolves with that output once the proxy answered /ready, then stops it.
 */
async function startAsAgentChild(pkg: InstalledPackage): Promise<string> {
  const env = { ...process.env, NODE_COMPILE_CACHE: compileCacheDirFor(pkg.entry, pkg.dir, join(out, 'fallback-cache')), NODE_COMPILE_CACHE_PORTABLE: '1', NODE_DEBUG_NATIVE: 'COMPILE_CACHE' };
  const child = spawn(process.execPath, [pkg.entry, '--config', join(out, 'bootstrap.json')], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const adminPort = await new Promise<number>((resolve, reject) => {
      child.on('message', (m: { type?: string; adminPort?: number }) => m.type === 'octo.proxy.started' && resolve(m.adminPort!));
      child.once('exit', (code) => reject(new Error(`proxy exited ${code}: ${err.slice(-2000)}`)));
    });
    expect((await fetch(`http://127.0.0.1:${adminPort}/ready`)).status).toBe(200);
    return err;
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** The one cache file an installed package holds for this Node and user. */
function cacheFileOf(pkg: InstalledPackage): string {
  const root = join(pkg.dir, COMPILE_CACHE_DIR);
  const sub = readdirSync(root).find((n) => n.startsWith(`v${process.versions.node}-${process.arch}-`) && n.endsWith(`-${uid}`));
  expect(sub).toBeDefined();
  const files = readdirSync(join(root, sub!));
  expect(files).toHaveLength(1);
  return join(root, sub!, files[0]!);
}

const ACCEPTED = /V8 code cache for ESM file:\/\/\S+\/proxy\.mjs was accepted/;

// A package carries its bundle's compile cache (built where the package is built); the agent's
// package store unpacks it anywhere, and the proxy's first start there is warm (docs/footprint.md round 7).
describe('a package\'s compile cache', () => {
  let bundles: Buffer[];
  beforeAll(async () => {
    execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: REPO_ROOT });
    bundles = await Promise.all([bundleProxy('3.0.0'), bundleProxy('3.0.1')]);
  }, 120_000);

  async function install(version: string, bundle: Buffer, root: string): Promise<InstalledPackage> {
    const p = await makePackage({ version, bundle });
    const file = join(out, `${version}-${Math.random().toString(36).slice(2)}.tgz`);
    writeFileSync(file, p.bytes);
    return new PackageStore({ root }).install(file, { version, sha256: p.sha256 });
  }

  it('is used by the first start of the package unpacked in a new directory', async () => {
    const pkg = await install('3.0.0', bundles[0]!, join(out, 'store-a'));
    expect(cacheFileOf(pkg)).toContain(join(pkg.dir, COMPILE_CACHE_DIR));
    const debug = await startAsAgentChild(pkg);
    expect(debug).toMatch(ACCEPTED);
    // Without the shipped cache the same start compiles: nothing to read.
    const bare = await makePackage({ version: '3.0.0', bundle: bundles[0]!, compileCache: false });
    const file = join(out, 'bare.tgz');
    writeFileSync(file, bare.bytes);
    const cold = await new PackageStore({ root: join(out, 'store-bare') }).install(file, { version: '3.0.0', sha256: bare.sha256 });
    expect(await startAsAgentChild(cold)).not.toMatch(ACCEPTED);
  }, 120_000);

  // case | what is done to the cache file | what Node says
  it.each([
    ['corrupt', (file: string) => {
      const b = readFileSync(file);
      for (let i = b.length >> 1; i < (b.length >> 1) + 64; i++) b[i] = b[i]! ^ 0xff;
      writeFileSync(file, b);
    }, /cache hash mismatch/],
    ['truncated', (file: string) => writeFileSync(file, readFileSync(file).subarray(0, 1000)), /mismatch/],
    ['stale (another version\'s)', (file: string, other: string) => writeFileSync(file, readFileSync(other)), /code (size|hash) mismatch/],
  ])('a %s cache is a miss, and the proxy starts and serves', async (_case, spoil, says) => {
    const pkg = await install('3.0.1', bundles[1]!, join(out, `store-${Math.random().toString(36).slice(2)}`));
    const other = await install('3.0.0', bundles[0]!, join(out, `store-${Math.random().toString(36).slice(2)}`));
    spoil(cacheFileOf(pkg), cacheFileOf(other));
    const debug = await startAsAgentChild(pkg);
    expect(debug).toMatch(says);
    expect(debug).not.toMatch(ACCEPTED);
  }, 120_000);
});

// What the sidecar image ships in /app: several modules, compiled (not run), named for one user.
describe('buildCompileCache', () => {
  it('compiles each module without running it; a copy of the directory elsewhere starts with every cache accepted', async () => {
    const mark = (name: string) => join(out, `ran-${name}`);
    const source = (name: string) => Buffer.from(`import { writeFileSync } from 'node:fs';\nexport const name = ${JSON.stringify(name)};\nwriteFileSync(${JSON.stringify(mark(name))}, name);\n`);
    const files = [{ path: 'agent.mjs', data: source('agent') }, { path: 'sub/proxy.mjs', data: source('proxy') }];
    const cache = await buildCompileCache({ files, modules: files.map((f) => f.path), uid });
    expect(existsSync(mark('agent')) || existsSync(mark('proxy'))).toBe(false);
    expect(cache.map((e) => e.path.replace(/[0-9a-f]{8}$/, 'KEY'))).toEqual([0, 1].map(() => `${COMPILE_CACHE_DIR}/v${process.versions.node}-${process.arch}-${/-([0-9a-f]{8})-/.exec(cache[0]!.path)![1]}-${uid}/KEY`));
    const app = mkdtempSync(join(out, 'image-app-'));
    for (const f of [...files, ...cache]) {
      mkdirSync(join(app, f.path, '..'), { recursive: true });
      writeFileSync(join(app, f.path), f.data!);
    }
    for (const f of files) {
      const r = spawnSync(process.execPath, [join(app, f.path)], { env: { ...process.env, NODE_COMPILE_CACHE: join(app, COMPILE_CACHE_DIR), NODE_COMPILE_CACHE_PORTABLE: '1', NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }, encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`V8 code cache for ESM file://\\S+/${f.path.replace('.', '\\.')} was accepted`));
    }
    expect(existsSync(mark('agent')) && existsSync(mark('proxy'))).toBe(true);
  }, 60_000);

  it('fails on a module that does not compile', async () => {
    await expect(buildCompileCache({ files: [{ path: 'bad.mjs', data: Buffer.from('export const = 1;') }], modules: ['bad.mjs'] })).rejects.toThrow(/compiling \S+bad\.mjs ended with 1/);
  }, 60_000);
});

describe('compileCacheDirFor', () => {
  const node = `v${process.versions.node}-${process.arch}-964aae3f`;
  // case | cache subdirectories beside the bootstrap entry | package dir | expected
  it.each([
    ['a package: its own', [], '/state/packages/1.0.0-abc', '/state/packages/1.0.0-abc/compile-cache'],
    ['the bootstrap, the image ships one for this user', [`${node}-${uid}`], undefined, 'beside'],
    ['the bootstrap, the image ships one for another user', [`${node}-${uid + 1}`], undefined, 'fallback'],
    ['the bootstrap, another Node', [`v1.2.3-${process.arch}-964aae3f-${uid}`], undefined, 'fallback'],
    ['the bootstrap, nothing shipped', undefined, undefined, 'fallback'],
  ])('%s', (_case, shipped, packageDir, want) => {
    const app = mkdtempSync(join(out, 'app-'));
    if (shipped) for (const s of shipped) mkdirSync(join(app, COMPILE_CACHE_DIR, s), { recursive: true });
    const got = compileCacheDirFor(join(app, 'proxy.mjs'), packageDir, '/state/compile-cache');
    expect(got).toBe(want === 'beside' ? join(app, COMPILE_CACHE_DIR) : want === 'fallback' ? '/state/compile-cache' : want);
  });
});
