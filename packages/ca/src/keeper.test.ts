/**
 * keepMeshCertificate (@octo-mesh/identity) against a real octo-ca on 127.0.0.1: a control-plane
 * component's own certificate published into its tlsDir before it serves, readiness from it, a
 * CA that is not up yet waited for (not an error), an unusable trust bundle refused by field.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { MESH_TLS_FILES } from '@octo-mesh/contracts/access.js';
import { keepMeshCertificate, tokenHash, type MeshCertificateKeeper } from '@octo-mesh/identity';
import { createLogger, createMetricsRegistry, freePort } from '@octo-mesh/runtime';
import { startCa } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'octo-keeper-'));
const quiet = createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
  rmSync(dir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'credentials.json'), JSON.stringify({ tokens: [{ sha256: tokenHash('token-pilot'), namespace: 'mesh-system', serviceAccount: 'mesh-pilot' }] }));
writeFileSync(join(dir, 'token'), 'token-pilot\n');

const startTestCa = async (port: number) => {
  const c = await startCa({ host: '127.0.0.1', port, adminHost: '127.0.0.1', adminPort: 0, stateDir: join(dir, 'state'), credentials: join(dir, 'credentials.json'), maxTtlSeconds: 3600, defaultTtlSeconds: 600 }, { logger: quiet });
  stops.push(() => c.stop());
  return c;
};

describe('keepMeshCertificate', () => {
  it('waits for a CA that is not up yet, then publishes the component\'s certificate into tlsDir and is ready', async () => {
    // The root exists before the CA serves (as the chart's root Secret does): start once, stop.
    const port = await freePort();
    const first = await startTestCa(port);
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, first.trustBundle().join(''));
    await first.stop();
    stops.pop();

    const tlsDir = join(dir, 'tls');
    let onStarted!: (k: MeshCertificateKeeper) => void;
    const started = new Promise<MeshCertificateKeeper>((r) => (onStarted = r));
    const keeping = keepMeshCertificate({ caUrl: `https://127.0.0.1:${port}`, caTrustBundleFile: bundle, caTokenFile: join(dir, 'token'), tlsDir }, { logger: quiet, registry: createMetricsRegistry('test'), onStarted });
    const early = await started;
    stops.push(() => early.stop());
    expect(early.readiness()).toBe(`no certificate yet from https://127.0.0.1:${port}`);
    const refused = await Promise.race([keeping.then(() => 'resolved'), new Promise((r) => setTimeout(() => r('waiting'), 1500))]);
    expect(refused).toBe('waiting'); // no CA: still waiting (retrying), not failed

    await startTestCa(port);
    const keeper = await keeping;
    expect(keeper.readiness()).toBe(true);
    const leaf = new X509Certificate(readFileSync(join(tlsDir, MESH_TLS_FILES.chain)));
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/mesh-system/sa/mesh-pilot');
    expect(leaf.verify(new X509Certificate(readFileSync(join(tlsDir, MESH_TLS_FILES.roots))).publicKey)).toBe(true);
    expect(readFileSync(join(tlsDir, MESH_TLS_FILES.key), 'utf8')).toContain('PRIVATE KEY');
  }, 60_000);

  it('refuses a trust bundle file without a certificate, naming the field and the file', async () => {
    const bad = join(dir, 'not-a-bundle.pem');
    writeFileSync(bad, 'hello\n');
    await expect(keepMeshCertificate({ caUrl: 'https://127.0.0.1:1', caTrustBundleFile: bad, caTokenFile: join(dir, 'token'), tlsDir: join(dir, 'tls2') }, { logger: quiet, registry: createMetricsRegistry('test') })).rejects.toThrow(`caTrustBundleFile: ${bad}: no PEM certificate`);
  });
});
