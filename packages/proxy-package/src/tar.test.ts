import { describe, expect, it } from '@jest/globals';
import { gzipSync } from 'node:zlib';
import { openPackage, packArchive, manifestEntry } from './archive.js';
import { PackageError } from './errors.js';
import { readTar, safePath, writeTar, type TarEntry } from './tar.js';

const file = (path: string, text = 'x'): TarEntry => ({ path, data: Buffer.from(text) });
const manifest = (over: Record<string, unknown> = {}): TarEntry => ({
  path: 'manifest.json',
  data: Buffer.from(JSON.stringify({ name: 'octo-proxy', version: '1.2.3', entry: 'proxy.mjs', node: '>=24.0.0 <25', ...over })),
});
const limits = { maxTotalBytes: 1024 * 1024 };

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof PackageError) return `${err.reason}: ${err.message}`;
    throw err;
  }
  return 'ok';
}

describe('tar codec', () => {
  it('round-trips files, long paths (pax) and executables, and is deterministic', () => {
    const long = `${'d/'.repeat(60)}file.js`;
    const entries = [file('b.txt', 'bee'), file('a.txt', 'ay'), file(long, 'deep'), { path: 'run.sh', data: Buffer.from('#!'), mode: 0o755 }];
    const tar = writeTar(entries);
    expect(writeTar([...entries].reverse()).equals(tar)).toBe(true);
    const out = readTar(tar, limits);
    expect(out.map((f) => [f.path, f.data.toString(), f.executable])).toEqual([
      ['a.txt', 'ay', false],
      ['b.txt', 'bee', false],
      [long, 'deep', false],
      ['run.sh', '#!', true],
    ]);
  });

  // columns: case, entries (or raw bytes), expected "Reason: message" fragment
  it.each<[string, () => Buffer, string]>([
    ['../ entry', () => writeTar([file('../evil.js')]), 'UnsafeArchive: entry "../evil.js": ".." in path'],
    ['nested ..', () => writeTar([file('a/../../evil.js')]), 'UnsafeArchive'],
    ['absolute path', () => writeTar([file('/etc/passwd')]), 'UnsafeArchive: entry "/etc/passwd": absolute path'],
    ['symlink escaping', () => writeTar([{ path: 'lib', type: '2', linkname: '../../../etc' }]), 'UnsafeArchive: entry "lib": symbolic link to "../../../etc"'],
    ['symlink inside', () => writeTar([{ path: 'lib', type: '2', linkname: 'x' }]), 'UnsafeArchive'],
    ['hard link', () => writeTar([file('a'), { path: 'b', type: '1', linkname: 'a' }]), 'UnsafeArchive: entry "b": hard link'],
    ['char device', () => writeTar([{ path: 'null', type: '3' }]), 'UnsafeArchive: entry "null": type "3"'],
    ['fifo', () => writeTar([{ path: 'p', type: '6' }]), 'UnsafeArchive'],
    ['duplicate', () => Buffer.concat([writeTar([file('a')]).subarray(0, 1024), writeTar([file('a')])]), 'UnsafeArchive: entry "a": duplicate path'],
    ['too large', () => writeTar([file('big', 'x'.repeat(2 * 1024 * 1024))]), 'TooLarge'],
    ['truncated', () => writeTar([file('a', 'x'.repeat(2000))]).subarray(0, 1024), 'UnsafeArchive'],
    [
      'bad checksum',
      () => {
        const t = writeTar([file('a')]);
        t[0] = 'b'.charCodeAt(0);
        return t;
      },
      'UnsafeArchive: entry at byte 0: bad header checksum',
    ],
    ['pax path escaping', () => writeTar([file(`${'x'.repeat(120)}/../../evil`)]), 'UnsafeArchive'],
  ])('refuses %s', (_name, make, expected) => {
    expect(reasonOf(() => readTar(make(), limits))).toContain(expected);
  });

  it.each([
    ['./a/b', 'a/b'],
    ['a//b/', 'a/b'],
    ['a/./b', 'a/b'],
  ])('normalises %s', (p, want) => expect(safePath(p)).toBe(want));
});

describe('openPackage (manifest checks)', () => {
  const pkg = (entries: TarEntry[]) => packArchive(entries);
  // columns: case, entries, target version, expected outcome
  it.each<[string, TarEntry[], string, string]>([
    ['good', [manifest(), file('proxy.mjs')], '1.2.3', 'ok'],
    ['version differs from the target', [manifest(), file('proxy.mjs')], '1.2.4', 'ManifestMismatch: package is version 1.2.3, the target is 1.2.4'],
    ['no manifest', [file('proxy.mjs')], '1.2.3', 'ManifestMismatch: no manifest.json'],
    ['wrong name', [manifest({ name: 'other' }), file('proxy.mjs')], '1.2.3', 'ManifestMismatch'],
    ['entry missing', [manifest({ entry: 'main.mjs' }), file('proxy.mjs')], '1.2.3', 'ManifestMismatch: manifest.json: entry "main.mjs" is not in the package'],
    ['entry escaping', [manifest({ entry: '../x.mjs' }), file('proxy.mjs')], '1.2.3', 'ManifestMismatch'],
    ['node range not met', [manifest({ node: '>=99' }), file('proxy.mjs')], '1.2.3', 'ManifestMismatch: package needs node >=99'],
    ['not semver', [manifest({ version: 'latest' }), file('proxy.mjs')], 'latest', 'ManifestMismatch'],
    ['extra field', [manifest({ run: 'rm -rf /' }), file('proxy.mjs')], '1.2.3', 'ManifestMismatch'],
  ])('%s', (_name, entries, version, expected) => {
    expect(reasonOf(() => openPackage(pkg(entries), { version }))).toContain(expected);
  });

  it('refuses a gzip bomb before it is inflated in full', () => {
    const bomb = gzipSync(writeTar([manifestEntry({ name: 'octo-proxy', version: '1.0.0', entry: 'a', node: '>=1' }), file('a', '\0'.repeat(4 * 1024 * 1024))]));
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(reasonOf(() => openPackage(bomb, { version: '1.0.0' }, { maxUnpackedBytes: 1024 * 1024 }))).toContain('TooLarge');
  });

  it('refuses bytes that are not gzip', () => {
    expect(reasonOf(() => openPackage(Buffer.from('hello'), { version: '1.0.0' }))).toContain('UnsafeArchive: not a gzip archive');
  });
});
