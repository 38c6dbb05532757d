import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleProxy } from '@octo-mesh/proxy-package/build.js';
import { PackageRepository, manifestEntry, packArchive, sha256Hex, signDigest, type TarEntry } from '@octo-mesh/proxy-package';
import { createLogger } from '@octo-mesh/runtime';
import type { AgentReason } from './status.js';
import { buildAgent, get1, proxySection, startAgent, upstreams, type RunningAgent, type Upstreams } from './test-support/harness.js';

// Packages that must be refused before anything of them runs or is unpacked, by an agent that
// trusts one ed25519 key: each refusal shows in /status with its reason; the proxy that serves
// (same pid) never stops serving.
const dir = mkdtempSync(join(tmpdir(), 'octo-lego-refuse-'));
const signer = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
let up: Upstreams;
let repo: PackageRepository;
let agent: RunningAgent;
let truncating: http.Server;
let bundle: Buffer;
const targetFile = join(dir, 'target.json');
const STATE = join(dir, 'refuse-state');

async function publish(bytes: Buffer): Promise<string> {
  const sha = sha256Hex(bytes);
  const r = await fetch(`${repo.url}/packages/${sha}`, { method: 'PUT', body: bytes });
  expect(r.ok).toBe(true);
  return `${repo.url}/packages/${sha}`;
}

const manifest = (version: string) => manifestEntry({ name: 'octo-proxy', version, entry: 'proxy.mjs', node: '>=24.0.0 <25' });

describe('LEGO agent refuses bad packages before they run', () => {
  beforeAll(async () => {
    buildAgent();
    up = await upstreams();
    bundle = await bundleProxy('1.0.0');
    mkdirSync(join(dir, 'boot'));
    writeFileSync(join(dir, 'boot', 'proxy.mjs'), bundle);
    writeFileSync(join(dir, 'trusted.pub.pem'), signer.publicKey.export({ type: 'spki', format: 'pem' }));
    repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, logger: createLogger('repo', 'error') });
    await repo.start();
    // Announces the whole package and always breaks off after 1 KiB.
    truncating = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': 700_000 });
      res.write(randomBytes(1024));
      setTimeout(() => res.destroy(), 20);
    });
    await new Promise<void>((r) => truncating.listen(0, '127.0.0.1', r));
    writeFileSync(targetFile, '{}');
    agent = await startAgent(dir, 'refuse', {
      proxyEntry: join(dir, 'boot', 'proxy.mjs'),
      stateDir: STATE,
      targetFile,
      trustedKeys: [join(dir, 'trusted.pub.pem')],
      maxPackageBytes: 3 * 1024 * 1024,
      downloadRetries: 1,
      minReadySeconds: 0.2,
      proxy: proxySection(up.h1Port, up.h2Port),
    });
    await agent.waitStatus('ready', (s) => s.ready);
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await repo?.stop();
    await up?.close();
    truncating?.close();
  });

  const sign = (bytes: Buffer, key = signer) => signDigest(sha256Hex(bytes), key.privateKey);
  const good = (version: string, extra: TarEntry[] = []) => packArchive([manifest(version), { path: 'proxy.mjs', data: bundle }, ...extra]);

  // columns: case, version, how the target is made, expected reason
  it.each<[string, string, () => Promise<{ packageUrl: string; sha256: string; signature?: string }>, AgentReason]>([
    [
      'sha256 mismatch',
      '9.0.1',
      async () => {
        const wanted = good('9.0.1');
        const served = good('9.0.1', [{ path: 'x', data: Buffer.from('other bytes') }]);
        return { packageUrl: await publish(served), sha256: sha256Hex(wanted), signature: sign(wanted) };
      },
      'DigestMismatch',
    ],
    ['unsigned', '9.0.2', async () => ({ packageUrl: await publish(good('9.0.2')), sha256: sha256Hex(good('9.0.2')) }), 'SignatureMissing'],
    ['signed by an untrusted key', '9.0.3', async () => ({ packageUrl: await publish(good('9.0.3')), sha256: sha256Hex(good('9.0.3')), signature: sign(good('9.0.3'), stranger) }), 'SignatureInvalid'],
    [
      'manifest names another version',
      '9.0.4',
      async () => {
        const b = good('9.0.40');
        return { packageUrl: await publish(b), sha256: sha256Hex(b), signature: sign(b) };
      },
      'ManifestMismatch',
    ],
    ['truncated download', '9.0.5', async () => ({ packageUrl: `http://127.0.0.1:${(truncating.address() as AddressInfo).port}/p`, sha256: 'a'.repeat(64), signature: 'AAAA' }), 'DownloadFailed'],
    [
      'oversized',
      '9.0.6',
      async () => {
        const b = good('9.0.6', [{ path: 'padding', data: randomBytes(4 * 1024 * 1024) }]);
        return { packageUrl: await publish(b), sha256: sha256Hex(b), signature: sign(b) };
      },
      'TooLarge',
    ],
    [
      '../ entry',
      '9.0.7',
      async () => {
        const b = good('9.0.7', [{ path: '../../evil.mjs', data: Buffer.from('process.exit(9)') }]);
        return { packageUrl: await publish(b), sha256: sha256Hex(b), signature: sign(b) };
      },
      'UnsafeArchive',
    ],
    [
      'symlink escaping the directory',
      '9.0.8',
      async () => {
        const b = good('9.0.8', [{ path: 'lib', type: '2', linkname: '../../../../etc' }]);
        return { packageUrl: await publish(b), sha256: sha256Hex(b), signature: sign(b) };
      },
      'UnsafeArchive',
    ],
  ])('%s (%s): refused with its reason; the running proxy is untouched', async (_name, version, make, reason) => {
    const before = await agent.proxy();
    writeFileSync(targetFile, JSON.stringify({ version, ...(await make()) }));
    const s = await agent.waitStatus(`refusal of ${version}`, (st) => st.lastError?.version === version && st.phase === 'Failed');
    expect(s.lastError!.reason).toBe(reason);
    expect(s.badVersions).toContainEqual(expect.objectContaining({ version, reason }));
    expect(s).toMatchObject({ runningVersion: '1.0.0', ready: true, target: expect.objectContaining({ version }) });
    expect((await agent.proxy()).pid).toBe(before.pid);
    expect((await get1(agent.outboundPort, `/still-${version}`)).body).toBe(`ok /still-${version}`);
    const pkgDir = join(STATE, 'packages');
    expect(existsSync(pkgDir) ? readdirSync(pkgDir).filter((n) => n.startsWith(version)) : []).toEqual([]);
    expect(existsSync(join(STATE, 'evil.mjs')) || existsSync(join(dir, 'evil.mjs'))).toBe(false);
  }, 60_000);

  it('takes a package signed by the trusted key', async () => {
    const b = good('9.1.0');
    writeFileSync(targetFile, JSON.stringify({ version: '9.1.0', packageUrl: await publish(b), sha256: sha256Hex(b), signature: sign(b) }));
    const s = await agent.waitStatus('running 9.1.0', (st) => st.runningVersion === '9.1.0' && st.phase === 'Idle');
    expect(s.ready).toBe(true);
    expect((await get1(agent.outboundPort, '/signed')).body).toBe('ok /signed');
    expect((await agent.get('/metrics')).body).toMatch(/octo_lego_packages_refused_total\{reason="UnsafeArchive"\} 2/);
  }, 60_000);
});
