import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPackage } from './archive.js';

// `npm run package:proxy` as a real process, three times: reproducible across processes (esbuild's
// plugin callbacks run in whatever order its workers ask; V8's code cache with a fixed seed), and
// the version stamped in the bundle.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = join(ROOT, 'packages/proxy-package/dist/package-proxy.js');
const out = mkdtempSync(join(tmpdir(), 'octo-pkg-build-'));

function packageProxy(version: string, dir: string): { path: string; sha256: string } {
  const text = execFileSync(process.execPath, [CLI, '--version', version, '--out', join(out, dir)], { cwd: ROOT, encoding: 'utf8' });
  return { path: /^path (.+)$/m.exec(text)![1]!, sha256: /^sha256 ([0-9a-f]{64})$/m.exec(text)![1]! };
}

describe('package:proxy', () => {
  beforeAll(() => {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy-package', 'packages/proxy'], { cwd: ROOT });
  }, 120_000);

  it('gives the same sha256 for the same source and version, in separate processes', () => {
    const runs = [packageProxy('1.2.3', 'a'), packageProxy('1.2.3', 'b'), packageProxy('1.2.3', 'c')];
    expect(new Set(runs.map((r) => r.sha256)).size).toBe(1);
    const other = packageProxy('1.2.4', 'd');
    expect(other.sha256).not.toBe(runs[0]!.sha256);
    const opened = openPackage(readFileSync(other.path), { version: '1.2.4' });
    expect(opened.manifest).toEqual({ name: 'octo-proxy', version: '1.2.4', entry: 'proxy.mjs', node: '>=24.0.0 <25' });
    expect(opened.files.find((f) => f.path === 'proxy.mjs')!.data.toString()).toContain('"1.2.4"');
    // The bundle's compile cache, named for no user (the agent names it for its own at unpack):
    // the same sha256 three times above means it is reproducible too.
    const cache = opened.files.filter((f) => f.path.startsWith('compile-cache/')).map((f) => f.path);
    expect(cache).toHaveLength(1);
    expect(cache[0]).toMatch(new RegExp(`^compile-cache/v${process.versions.node}-${process.arch}-[0-9a-f]{8}/[0-9a-f]{8}$`));
  }, 120_000);

  it('leaves out @grpc/proto-loader and what it loads (protobufjs, long): grpc-js needs them only for channelz and ORCA', () => {
    const { path } = packageProxy('1.2.5', 'e');
    const bundle = openPackage(readFileSync(path), { version: '1.2.5' }).files.find((f) => f.path === 'proxy.mjs')!.data.toString('latin1');
    // esbuild starts each bundled module with a `// <path>` line.
    const modules = [...bundle.matchAll(/^\/\/ (\S+\.[cm]?js)$/gm)].map((m) => m[1]!);
    expect(modules.some((m) => m.includes('node_modules/@grpc/grpc-js/'))).toBe(true);
    expect(modules.filter((m) => /node_modules\/(@grpc\/proto-loader|protobufjs|@protobufjs|long)\//.test(m))).toEqual([]);
    expect(bundle).toContain('__require("@grpc/proto-loader")');
  }, 120_000);

  it('refuses a version that is not semver (exit 2)', () => {
    expect(() => execFileSync(process.execPath, [CLI, '--version', 'latest'], { cwd: ROOT, stdio: 'pipe' })).toThrow(/--version must be a semantic version/);
  });
});
