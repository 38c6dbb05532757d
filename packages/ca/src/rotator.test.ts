/**
 * CertificateRotator (@octo-mesh/identity) against a real octo-ca on 127.0.0.1: first issuance by
 * token, files published atomically in the SDS layout, renewal by certificate inside 50–70 % of
 * the lifetime, the old certificate kept through a CA outage until it expires, recovery.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CertificateRotator, credentialFromFile, tokenHash, type WorkloadCredential } from '@octo-mesh/identity';
import { Registry, createLogger, freePort, waitFor } from '@octo-mesh/runtime';
import { startCa, type RunningCa } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'octo-rotator-'));
const quiet = createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
  rmSync(dir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'credentials.json'), JSON.stringify({ tokens: [{ sha256: tokenHash('token-cart'), namespace: 'shop', serviceAccount: 'cart' }] }));

async function ca(port = 0): Promise<RunningCa> {
  const c = await startCa({ host: '127.0.0.1', port, adminHost: '127.0.0.1', adminPort: 0, stateDir: join(dir, 'state'), credentials: join(dir, 'credentials.json'), maxTtlSeconds: 3600, defaultTtlSeconds: 600 }, { logger: quiet });
  stops.push(() => c.stop());
  return c;
}

/** Resolves with the next `rotated` event of `r` for which `ok` holds. */
const nextRotation = (r: CertificateRotator, ok: (c: WorkloadCredential) => boolean = () => true) =>
  new Promise<WorkloadCredential>((resolve) => {
    const on = (c: WorkloadCredential) => {
      if (!ok(c)) return;
      r.off('rotated', on);
      resolve(c);
    };
    r.on('rotated', on);
  });

const metricValue = async (registry: Registry, labels: Record<string, string>) =>
  (await registry.getSingleMetric('octo_identity_rotations_total')!.get()).values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);

describe('CertificateRotator against octo-ca', () => {
  it('gets a first certificate with its token and publishes the SDS and PEM files', async () => {
    const server = await ca();
    const sds = join(dir, 'sds1');
    const r = new CertificateRotator({ ca: { url: server.url, trustBundle: server.trustBundle() }, credential: () => 'token-cart', dir: sds, ttlSeconds: 600, logger: quiet }).start();
    stops.push(() => r.stop());
    const first = await r.firstCertificate;
    expect(r.ready).toBe(true);
    expect(first.via).toBe('credential');
    expect(first.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/cart');
    const d = JSON.parse(readFileSync(join(sds, 'default.json'), 'utf8'));
    expect(d.resources[0]['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    expect(d.resources[0].name).toBe('default');
    expect(d.resources[0].tls_certificate.certificate_chain.inline_string).toBe(first.certificateChain[0]);
    expect(d.resources[0].tls_certificate.private_key.inline_string).toBe(first.keyPem);
    const root = JSON.parse(readFileSync(join(sds, 'ROOTCA.json'), 'utf8'));
    expect(root.resources[0].name).toBe('ROOTCA');
    expect(root.resources[0].validation_context.trusted_ca.inline_string).toBe(server.trustBundle().join(''));
    expect(statSync(join(sds, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(readFileSync(join(sds, 'cert-chain.pem'))).checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(sds, 'key.pem'))))).toBe(true);
    expect(execFileSync('/usr/bin/openssl', ['verify', '-CAfile', 'root-cert.pem', 'cert-chain.pem'], { cwd: sds, encoding: 'utf8' })).toBe('cert-chain.pem: OK\n');
  });

  it('renews by itself with its certificate, inside 50–70 % of the lifetime, with a new key', async () => {
    const server = await ca();
    const sds = join(dir, 'sds2');
    const r = new CertificateRotator({ ca: { url: server.url, trustBundle: server.trustBundle() }, credential: () => 'token-cart', dir: sds, ttlSeconds: 6, logger: quiet });
    const renewed = nextRotation(r, (c) => c.via === 'renewal');
    r.start();
    stops.push(() => r.stop());
    const first = await r.firstCertificate;
    const life = first.expiresAt.getTime() - first.receivedAt.getTime();
    expect(first.renewAt.getTime() - first.receivedAt.getTime()).toBeGreaterThanOrEqual(life * 0.5 - 1);
    expect(first.renewAt.getTime() - first.receivedAt.getTime()).toBeLessThanOrEqual(life * 0.7 + 1);
    const second = await renewed;
    expect(second.receivedAt.getTime()).toBeGreaterThanOrEqual(first.renewAt.getTime());
    expect(second.receivedAt.getTime()).toBeLessThan(first.expiresAt.getTime());
    expect(second.serialNumber).not.toBe(first.serialNumber);
    expect(second.keyPem).not.toBe(first.keyPem);
    expect(JSON.parse(readFileSync(join(sds, 'default.json'), 'utf8')).resources[0].tls_certificate.certificate_chain.inline_string).toBe(second.certificateChain[0]);
  }, 30_000);

  it('keeps its certificate through a CA outage (failures retried and counted), turns unready at expiry, and recovers with its token', async () => {
    const port = await freePort();
    let server = await ca(port);
    const registry = new Registry();
    const r = new CertificateRotator({
      ca: { url: server.url, trustBundle: server.trustBundle(), timeoutMs: 2000 },
      credential: () => 'token-cart',
      ttlSeconds: 12,
      logger: quiet,
      registry,
      backoff: { initialMs: 100, maxMs: 400, jitter: 0.5 },
    }).start();
    stops.push(() => r.stop());
    const first = await r.firstCertificate;
    await server.stop();
    await waitFor('two failed renewals', () => metricValue(registry, { result: 'failed' }), (n) => n >= 2, { timeoutMs: 20_000 });
    // Still within its lifetime (renewal starts at 6–8.4 s of 12, retries every 50–400 ms): still ready, same certificate.
    expect(Date.now()).toBeLessThan(first.expiresAt.getTime());
    expect(r.ready).toBe(true);
    expect(r.current!.serialNumber).toBe(first.serialNumber);
    await waitFor('not ready after expiry', () => r.ready, (v) => v === false, { timeoutMs: 20_000 });
    expect(Date.now()).toBeGreaterThanOrEqual(first.expiresAt.getTime());
    const recovered = nextRotation(r);
    server = await ca(port);
    const c = await recovered;
    expect(c.via).toBe('credential');
    expect(r.ready).toBe(true);
    expect(await metricValue(registry, { result: 'ok' })).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('with a credential the CA refuses: counted as refused, never ready', async () => {
    const server = await ca();
    const registry = new Registry();
    const r = new CertificateRotator({ ca: { url: server.url, trustBundle: server.trustBundle() }, credential: () => 'wrong', logger: quiet, registry, backoff: { initialMs: 50, maxMs: 100 } }).start();
    stops.push(() => r.stop());
    await waitFor('three refusals', () => metricValue(registry, { result: 'refused', via: 'credential' }), (n) => n >= 3, { timeoutMs: 20_000 });
    expect(r.ready).toBe(false);
    expect(r.current).toBeUndefined();
  }, 30_000);
});

describe('CertificateRotator when its root is removed', () => {
  it('falls back to its credential when the CA refuses its certificate, and gets one from the new root', async () => {
    const { createRoot } = await import('@octo-mesh/identity');
    const r1 = createRoot({ trustDomain: 'cluster.local', now: new Date(), commonName: 'root-1' });
    const r2 = createRoot({ trustDomain: 'cluster.local', now: new Date(), commonName: 'root-2' });
    for (const [n, r] of [['r1', r1], ['r2', r2]] as const) {
      writeFileSync(join(dir, `fb-${n}.pem`), r.certPem);
      writeFileSync(join(dir, `fb-${n}.key`), r.keyPem, { mode: 0o600 });
    }
    writeFileSync(join(dir, 'token'), 'token-cart\n');
    const start = (n: 'r1' | 'r2', port: number) =>
      startCa({ host: '127.0.0.1', port, adminHost: '127.0.0.1', adminPort: 0, roots: [{ name: n, cert: join(dir, `fb-${n}.pem`), key: join(dir, `fb-${n}.key`) }], credentials: join(dir, 'credentials.json'), defaultTtlSeconds: 600 }, { logger: quiet });
    const port = await freePort();
    const first = await start('r1', port);
    const registry = new Registry();
    // Trusts both roots out of band (as after step 1 of a root rotation), so it can reach the CA under either.
    const r = new CertificateRotator({ ca: { url: first.url, trustBundle: [r1.certPem, r2.certPem] }, credential: credentialFromFile(join(dir, 'token')), logger: quiet, registry });
    const a = await r.rotateOnce();
    expect(new X509Certificate(a.certificateChain[0]!).issuer).toContain('CN=root-1');
    await first.stop();
    const second = await start('r2', port);
    stops.push(() => second.stop());
    const b = await r.rotateOnce();
    expect(b.via).toBe('credential');
    expect(new X509Certificate(b.certificateChain[0]!).issuer).toContain('CN=root-2');
    expect(await metricValue(registry, { result: 'refused', via: 'renewal' })).toBe(1);
    const c = await r.rotateOnce();
    expect(c.via).toBe('renewal');
  }, 30_000);
});
