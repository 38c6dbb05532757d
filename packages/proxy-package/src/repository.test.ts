import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@octo-mesh/runtime';
import { manifestEntry, packArchive } from './archive.js';
import { download } from './download.js';
import { PackageError } from './errors.js';
import { PackageRepository, pushPackage } from './repository.js';
import { publicKeys, sha256Hex, signPackage } from './signing.js';
import { PackageStore } from './store.js';

// The repository, the downloader and the store against real HTTP servers and a real directory.
const dir = mkdtempSync(join(tmpdir(), 'octo-pkg-'));
const quiet = createLogger('test', 'error');
const pkg = (version: string, body = `export const v = '${version}';`) =>
  packArchive([manifestEntry({ name: 'octo-proxy', version, entry: 'proxy.mjs', node: '>=24' }), { path: 'proxy.mjs', data: Buffer.from(body) }]);

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PackageError) return `${err.reason}: ${err.message}`;
    throw err;
  }
  return 'ok';
}

/** An HTTP server misbehaving on purpose; `handler` gets the request count. */
async function rogue(handler: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void): Promise<{ url: string; close: () => Promise<void>; hits: () => number }> {
  let n = 0;
  const s = http.createServer((req, res) => handler(req, res, n++));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/pkg`,
    hits: () => n,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

describe('PackageRepository', () => {
  const repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, maxBytes: 64 * 1024, logger: quiet });
  const v1 = pkg('1.0.0');
  const v1file = join(dir, 'v1.tgz');

  beforeAll(async () => {
    await repo.start();
    writeFileSync(v1file, v1);
  });
  afterAll(() => repo.stop());

  it('stores a package under its digest (octoctl package push) and lists it', async () => {
    const r = await pushPackage(repo.url, v1file);
    expect(r).toEqual({ sha256: sha256Hex(v1), url: `${repo.url}/packages/${sha256Hex(v1)}` });
    const again = await fetch(r.url, { method: 'PUT', body: v1 });
    expect(again.status).toBe(200);
    const list = (await (await fetch(`${repo.url}/packages`)).json()) as { packages: { sha256: string; version: string; size: number }[] };
    expect(list.packages).toEqual([expect.objectContaining({ sha256: r.sha256, version: '1.0.0', size: v1.length })]);
    expect(Buffer.from(await (await fetch(r.url)).arrayBuffer()).equals(v1)).toBe(true);
  });

  it('refuses a body whose digest is not its name (400) and one over the cap (413)', async () => {
    const wrong = await fetch(`${repo.url}/packages/${'0'.repeat(64)}`, { method: 'PUT', body: v1 });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ reason: 'DigestMismatch', actual: sha256Hex(v1) });
    const big = Buffer.alloc(100 * 1024, 1);
    const over = await fetch(`${repo.url}/packages/${sha256Hex(big)}`, { method: 'PUT', body: big });
    expect(over.status).toBe(413);
    expect(readdirSync(join(dir, 'repo')).filter((n) => n.startsWith('.upload-'))).toEqual([]);
    expect(existsSync(join(dir, 'repo', `${'0'.repeat(64)}.tgz`))).toBe(false);
  });

  it('serves ranges, health and metrics', async () => {
    const url = `${repo.url}/packages/${sha256Hex(v1)}`;
    const part = await fetch(url, { headers: { range: 'bytes=10-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-${v1.length - 1}/${v1.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(v1.subarray(10))).toBe(true);
    expect((await fetch(url, { headers: { range: `bytes=${v1.length}-` } })).status).toBe(416);
    expect((await fetch(`${repo.url}/packages/${'a'.repeat(64)}`)).status).toBe(404);
    expect((await fetch(`${repo.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${repo.url}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${repo.url}/metrics`)).text()).toMatch(/octo_package_repository_uploads_rejected_total\{reason="DigestMismatch"\} 1/);
  });

  it('downloads from it, resuming a partial file with Range', async () => {
    const url = `${repo.url}/packages/${sha256Hex(v1)}`;
    const dest = join(dir, 'resumed.tgz');
    writeFileSync(`${dest}.partial`, v1.subarray(0, 100));
    const r = await download(url, dest);
    expect(r.bytes).toBe(v1.length);
    expect(readFileSync(dest).equals(v1)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });
});

describe('download', () => {
  const body = pkg('2.0.0', randomBytes(6000).toString('base64'));

  it('retries a truncated body, resumes from what it got, and gets the whole file', async () => {
    const ranges: string[] = [];
    const s = await rogue((req, res, n) => {
      ranges.push(String(req.headers.range ?? ''));
      const start = Number(/bytes=(\d+)-/.exec(String(req.headers.range ?? ''))?.[1] ?? 0);
      const rest = body.subarray(start);
      res.writeHead(start ? 206 : 200, { 'content-length': rest.length, ...(start ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
      // The first answer breaks off half-way.
      if (n === 0) {
        res.write(rest.subarray(0, 1000));
        setTimeout(() => res.destroy(), 20);
      } else res.end(rest);
    });
    const dest = join(dir, 'retried.tgz');
    const r = await download(s.url, dest, { backoff: { initialMs: 10, maxMs: 50 } });
    await s.close();
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(r.attempts).toBe(2);
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
  });

  it('gives up on a body that is always truncated: DownloadFailed', async () => {
    const s = await rogue((_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 100));
      setTimeout(() => res.destroy(), 10);
    });
    const out = await reasonOf(download(s.url, join(dir, 'trunc.tgz'), { retries: 2, backoff: { initialMs: 10, maxMs: 20 } }));
    await s.close();
    expect(out).toMatch(/^DownloadFailed: .*after 3 attempt/);
    expect(s.hits()).toBe(3);
  });

  it('refuses a package over the size limit, announced or not, without retrying', async () => {
    const announced = await rogue((_req, res) => res.writeHead(200, { 'content-length': 10_000_000 }).end());
    expect(await reasonOf(download(announced.url, join(dir, 'big1.tgz'), { maxBytes: 1_000_000 }))).toContain('TooLarge');
    expect(announced.hits()).toBe(1);
    await announced.close();
    const chunked = await rogue((_req, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(2_000_000));
    });
    expect(await reasonOf(download(chunked.url, join(dir, 'big2.tgz'), { maxBytes: 1_000_000 }))).toContain('TooLarge');
    expect(existsSync(join(dir, 'big2.tgz.partial'))).toBe(false);
    await chunked.close();
  });

  it('does not retry a 404, and reads file: URLs', async () => {
    const s = await rogue((_req, res) => res.writeHead(404).end());
    expect(await reasonOf(download(s.url, join(dir, 'nf.tgz')))).toMatch(/^DownloadFailed: .*HTTP 404/);
    expect(s.hits()).toBe(1);
    await s.close();
    const src = join(dir, 'local.tgz');
    writeFileSync(src, body);
    await download(`file://${src}`, join(dir, 'copied.tgz'));
    expect(readFileSync(join(dir, 'copied.tgz')).equals(body)).toBe(true);
  });
});

describe('PackageStore', () => {
  const keys = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const pem = (k: typeof keys) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const trusted = publicKeys([keys.publicKey.export({ type: 'spki', format: 'pem' }).toString()]);

  it('verifies, unpacks atomically into <version>-<sha prefix>/ and keeps the last N', async () => {
    const store = new PackageStore({ root: join(dir, 'store'), keep: 2 });
    const dirs: string[] = [];
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) {
      const f = join(dir, `s-${v}.tgz`);
      const bytes = pkg(v);
      writeFileSync(f, bytes);
      const p = await store.install(f, { version: v, sha256: sha256Hex(bytes) });
      expect(p.dir).toBe(join(dir, 'store', `${v}-${sha256Hex(bytes).slice(0, 12)}`));
      expect(readFileSync(p.entry, 'utf8')).toContain(v);
      dirs.push(p.dir);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(readdirSync(join(dir, 'store')).sort()).toEqual(dirs.slice(1).map((d) => d.split('/').pop()).sort());
  });

  // columns: case, signer (or none), trusted keys, expected
  it.each<[string, 'mine' | 'other' | 'none' | 'garbage', boolean, string]>([
    ['signed by a trusted key', 'mine', true, 'ok'],
    ['unsigned, keys configured', 'none', true, 'SignatureMissing'],
    ['signed by another key', 'other', true, 'SignatureInvalid'],
    ['garbage signature', 'garbage', true, 'SignatureInvalid'],
    ['unsigned, no keys configured', 'none', false, 'ok'],
  ])('signature: %s', async (_name, signer, withKeys, expected) => {
    const f = join(dir, `sig-${signer}-${withKeys}.tgz`);
    const bytes = pkg('3.0.0');
    writeFileSync(f, bytes);
    const signature = signer === 'none' ? undefined : signer === 'garbage' ? 'AAAA' : await signPackage(f, pem(signer === 'mine' ? keys : other));
    const store = new PackageStore({ root: join(dir, `sig-store-${signer}-${withKeys}`), trustedKeys: withKeys ? trusted : [] });
    const out = await reasonOf(store.install(f, { version: '3.0.0', sha256: sha256Hex(bytes), ...(signature ? { signature } : {}) }));
    expect(out.split(':')[0]).toBe(expected);
    if (expected !== 'ok') expect(existsSync(join(dir, `sig-store-${signer}-${withKeys}`))).toBe(false);
  });

  it('refuses a digest mismatch before reading the archive', async () => {
    const f = join(dir, 'mismatch.tgz');
    writeFileSync(f, Buffer.from('not even gzip'));
    const store = new PackageStore({ root: join(dir, 'mm-store') });
    expect(await reasonOf(store.install(f, { version: '1.0.0', sha256: 'a'.repeat(64) }))).toMatch(/^DigestMismatch: package sha256 is [0-9a-f]{64}, the target names a{64}$/);
  });
});
