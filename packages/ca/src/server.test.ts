/**
 * octo-ca over real HTTPS on 127.0.0.1: issuance by bootstrap token, refusals by reason,
 * renewal by client certificate, readiness, metrics, and the root rotation procedure through
 * configuration changes and restarts. Every issued leaf is checked with `openssl verify`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, createCsr, createRoot, fetchTrustBundle, requestCertificate, tokenHash, CaRequestError, type CaEndpoint } from '@octo-mesh/identity';
import { createLogger } from '@octo-mesh/runtime';
import { Writable } from 'node:stream';
import { startCa, type RunningCa } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'octo-ca-'));
const quiet = createLogger('ca', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, 'credentials.json'),
  JSON.stringify({
    tokens: [
      { sha256: tokenHash('token-cart'), namespace: 'shop', serviceAccount: 'cart' },
      { sha256: tokenHash('token-intruder'), namespace: 'kube-system', serviceAccount: 'intruder' },
    ],
  }),
);

const base = {
  host: '127.0.0.1',
  port: 0,
  adminHost: '127.0.0.1',
  adminPort: 0,
  credentials: join(dir, 'credentials.json'),
  allowedNamespaces: ['shop', 'octo-system'],
  maxTtlSeconds: 7200,
  defaultTtlSeconds: 3600,
};

/** openssl verify of a leaf against PEM roots: true on OK. */
function opensslVerifies(roots: string[], leaf: string): boolean {
  writeFileSync(join(dir, 'v-roots.pem'), roots.join(''));
  writeFileSync(join(dir, 'v-leaf.pem'), leaf);
  try {
    return execFileSync('/usr/bin/openssl', ['verify', '-CAfile', 'v-roots.pem', 'v-leaf.pem'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('v-leaf.pem: OK');
  } catch {
    return false;
  }
}

const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const pkcs8 = (k: ReturnType<typeof newKey>) => k.export({ type: 'pkcs8', format: 'pem' }) as string;

/** A raw POST /v1/certificates: status and parsed body (for refusals the client helper turns into errors). */
function post(ca: RunningCa, body: string, headers: Record<string, string> = {}, clientCert?: { cert: string; key: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  const u = new URL(ca.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { method: 'POST', host: u.hostname, port: u.port, path: '/v1/certificates', ca: ca.trustBundle(), agent: false, headers: { 'content-type': 'application/json', ...headers }, ...(clientCert ?? {}) },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('octo-ca API', () => {
  let ca: RunningCa;
  let ep: CaEndpoint;
  beforeAll(async () => {
    ca = await startCa({ ...base, stateDir: join(dir, 'state') }, { logger: quiet });
    ep = { url: ca.url, trustBundle: ca.trustBundle() };
  });
  afterAll(() => ca.stop());

  it('generated its root into the state directory, key 0600', () => {
    expect(statSync(join(dir, 'state/roots/generated/key.pem')).mode & 0o777).toBe(0o600);
    expect(ca.trustBundle()).toHaveLength(1);
  });

  it('issues a certificate for the token\'s identity that openssl verifies against the root', async () => {
    const before = Date.now();
    const r = await requestCertificate(ep, { csrPem: createCsr(newKey(), { uri: 'spiffe://cluster.local/ns/kube-system/sa/admin' }), ttlSeconds: 600, token: 'token-cart' });
    expect(r.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/cart');
    const c = new X509Certificate(r.certificateChain[0]!);
    expect(c.subjectAltName).toBe('URI:spiffe://cluster.local/ns/shop/sa/cart');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(c.ca).toBe(false);
    const after = Date.now();
    // notAfter = the CA's now + 600 s, truncated to whole seconds by the encoding.
    expect(new Date(c.validTo).getTime()).toBeGreaterThanOrEqual(Math.floor((before + 600_000) / 1000) * 1000);
    expect(new Date(c.validTo).getTime()).toBeLessThanOrEqual(after + 600_000);
    expect(new Date(c.validFrom).getTime()).toBeLessThanOrEqual(before - 59_000);
    expect(new Date(r.expiresAt).getTime()).toBe(new Date(c.validTo).getTime());
    expect(r.trustBundle).toEqual(ca.trustBundle());
    writeFileSync(join(dir, 'root.pem'), r.trustBundle.join(''));
    writeFileSync(join(dir, 'leaf.pem'), r.certificateChain[0]!);
    expect(execFileSync('/usr/bin/openssl', ['verify', '-CAfile', 'root.pem', 'leaf.pem'], { cwd: dir, encoding: 'utf8' })).toBe('leaf.pem: OK\n');
  });

  it('serves the trust bundle without authentication', async () => {
    expect(await fetchTrustBundle(ep)).toEqual(ca.trustBundle());
  });

  it.each([
    // columns: case, body, headers, status, reason, message start
    ['no credential at all', () => JSON.stringify({ csr: createCsr(newKey()) }), {}, 401, 'no_credential', 'no client certificate and no Authorization header'],
    ['an unknown token', () => JSON.stringify({ csr: createCsr(newKey()) }), { authorization: 'Bearer nope' }, 401, 'invalid_credential', 'Authorization: '],
    ['a Basic header', () => JSON.stringify({ csr: createCsr(newKey()) }), { authorization: 'Basic dG9rZW4tY2FydA==' }, 401, 'invalid_credential', 'Authorization: expected "Bearer <token>"'],
    ['a namespace outside allowedNamespaces', () => JSON.stringify({ csr: createCsr(newKey()) }), { authorization: 'Bearer token-intruder' }, 403, 'namespace_not_allowed', 'namespace "kube-system" is not in allowedNamespaces'],
    ['a CSR that is no PEM', () => JSON.stringify({ csr: 'hello' }), { authorization: 'Bearer token-cart' }, 400, 'bad_csr', 'csr: '],
    ['no CSR', () => JSON.stringify({ ttlSeconds: 60 }), { authorization: 'Bearer token-cart' }, 400, 'bad_csr', 'csr: missing'],
    ['a CSR with a broken signature', () => JSON.stringify({ csr: brokenCsr() }), { authorization: 'Bearer token-cart' }, 400, 'bad_csr', 'csr.signature: '],
    ['a ttl above maxTtlSeconds', () => JSON.stringify({ csr: createCsr(newKey()), ttlSeconds: 7201 }), { authorization: 'Bearer token-cart' }, 400, 'bad_ttl', 'ttlSeconds: 7201 is out of range'],
    ['a body that is not JSON', () => '{csr', { authorization: 'Bearer token-cart' }, 400, 'bad_request', 'body: not JSON'],
    ['a body above maxBodyBytes', () => JSON.stringify({ csr: 'x'.repeat(70_000) }), { authorization: 'Bearer token-cart' }, 413, 'body_too_large', 'body: larger than 65536 bytes'],
  ])('refuses %s: %i', async (_case, body, headers, status, reason, message) => {
    const r = await post(ca, body(), headers);
    expect(r.status).toBe(status);
    expect(r.body['reason']).toBe(reason);
    expect(String(r.body['error'])).toContain(message);
  });

  it('renews with the certificate it issued, no token needed', async () => {
    const key = newKey();
    const first = await requestCertificate(ep, { csrPem: createCsr(key), ttlSeconds: 600, token: 'token-cart' });
    const renewed = await requestCertificate(ep, { csrPem: createCsr(newKey()), clientCert: { certPem: first.certificateChain[0]!, keyPem: pkcs8(key) } });
    expect(renewed.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/cart');
    expect(new X509Certificate(renewed.certificateChain[0]!).serialNumber).not.toBe(new X509Certificate(first.certificateChain[0]!).serialNumber);
    expect(opensslVerifies(ca.trustBundle(), renewed.certificateChain[0]!)).toBe(true);
  });

  it.each([
    // columns: case, the certificate the client presents, reason
    ['an expired certificate of this CA', () => ca.authority.issue(createCsr(clientKey), { namespace: 'shop', serviceAccount: 'cart' }, 60, new Date(Date.now() - 3_600_000)).certificateChain[0]!, 'expired_client_cert'],
    ['a certificate of a foreign root', () => foreignCa().issue(createCsr(clientKey), { namespace: 'shop', serviceAccount: 'cart' }, 600, new Date()).certificateChain[0]!, 'untrusted_client_cert'],
  ])('refuses renewal with %s (401)', async (_case, cert, reason) => {
    const r = await post(ca, JSON.stringify({ csr: createCsr(newKey()) }), {}, { cert: cert(), key: pkcs8(clientKey) });
    expect(r.status).toBe(401);
    expect(r.body['reason']).toBe(reason);
  });

  it('counts every answer by result and reason, exposes root expiry, and is ready', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${ca.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/octo_ca_certificate_requests_total\{result="issued",reason="bootstrap-token"\} [1-9]/);
    expect(metrics).toMatch(/octo_ca_certificate_requests_total\{result="issued",reason="renewal"\} [1-9]/);
    expect(metrics).toMatch(/octo_ca_certificate_requests_total\{result="refused",reason="namespace_not_allowed"\} 1/);
    expect(metrics).toMatch(/octo_ca_certificate_requests_total\{result="refused",reason="untrusted_client_cert"\} 1/);
    expect(metrics).toMatch(/octo_ca_issuance_duration_seconds_count\{result="issued"\} [1-9]/);
    const rootExpiry = Math.floor(new Date(new X509Certificate(ca.trustBundle()[0]!).validTo).getTime() / 1000);
    expect(metrics).toContain(`octo_ca_root_expiry_timestamp_seconds{root="generated",signing="true"} ${rootExpiry}`);
    expect((await fetch(`http://127.0.0.1:${ca.adminPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${ca.adminPort}/readyz`)).status).toBe(200);
  });

  it('is not ready while the signing key cannot be read, and ready again when it can', async () => {
    const key = join(dir, 'state/roots/generated/key.pem');
    renameSync(key, `${key}.away`);
    try {
      const r = await fetch(`http://127.0.0.1:${ca.adminPort}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.text()).toContain('signing key: cannot read');
    } finally {
      renameSync(`${key}.away`, key);
    }
    expect((await fetch(`http://127.0.0.1:${ca.adminPort}/readyz`)).status).toBe(200);
  });
});

const clientKey = newKey();
const foreignCa = () => {
  const r = createRoot({ trustDomain: 'cluster.local', now: new Date() });
  return new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'f', ...r }], signing: 'f', defaultTtlSeconds: 600, maxTtlSeconds: 600 });
};
function brokenCsr(): string {
  const pem = createCsr(newKey());
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 3]! ^= 0x01;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe('root rotation through configuration (README: add, switch, remove), the CA restarted at each step', () => {
  const r1 = createRoot({ trustDomain: 'cluster.local', now: new Date(), commonName: 'root-1' });
  const r2 = createRoot({ trustDomain: 'cluster.local', now: new Date(), commonName: 'root-2' });
  for (const [n, r] of [['r1', r1], ['r2', r2]] as const) {
    writeFileSync(join(dir, `${n}.pem`), r.certPem);
    writeFileSync(join(dir, `${n}.key`), r.keyPem, { mode: 0o600 });
  }
  const root = (n: 'r1' | 'r2', withKey = true) => ({ name: n, cert: join(dir, `${n}.pem`), ...(withKey ? { key: join(dir, `${n}.key`) } : {}) });
  const subjectOf = (pem: string) => new X509Certificate(pem).subject.split('\n').find((l) => l.startsWith('CN='));
  const issuerOf = (pem: string) => new X509Certificate(pem).issuer.split('\n').find((l) => l.startsWith('CN='));
  const key = newKey();
  let oldLeaf = '';

  const withCa = async <T>(cfg: Record<string, unknown>, fn: (ca: RunningCa, ep: CaEndpoint) => Promise<T>): Promise<T> => {
    const ca = await startCa({ ...base, ...cfg }, { logger: quiet });
    try {
      return await fn(ca, { url: ca.url, trustBundle: ca.trustBundle() });
    } finally {
      await ca.stop();
    }
  };

  it('before: r1 alone signs', async () => {
    await withCa({ roots: [root('r1')] }, async (_ca, ep) => {
      const r = await requestCertificate(ep, { csrPem: createCsr(key), ttlSeconds: 3600, token: 'token-cart' });
      oldLeaf = r.certificateChain[0]!;
      expect(issuerOf(oldLeaf)).toBe('CN=root-1');
    });
  });

  it('step 1, r2 added: the bundle holds both; a renewal with the r1 leaf hands the two-root bundle out', async () => {
    await withCa({ roots: [root('r1'), root('r2')], signing: 'r1' }, async (ca, ep) => {
      expect(ca.trustBundle().map(subjectOf)).toEqual(['CN=root-1', 'CN=root-2']);
      const r = await requestCertificate(ep, { csrPem: createCsr(newKey()), clientCert: { certPem: oldLeaf, keyPem: pkcs8(key) } });
      expect(r.trustBundle.map(subjectOf)).toEqual(['CN=root-1', 'CN=root-2']);
      expect(issuerOf(r.certificateChain[0]!)).toBe('CN=root-1');
    });
  });

  it('step 2, r2 signs: new leaves chain to r2, old and new leaves verify against the bundle, the r1 leaf still renews', async () => {
    await withCa({ roots: [root('r1', false), root('r2')], signing: 'r2' }, async (ca, ep) => {
      const r = await requestCertificate(ep, { csrPem: createCsr(newKey()), clientCert: { certPem: oldLeaf, keyPem: pkcs8(key) } });
      const newLeaf = r.certificateChain[0]!;
      expect(issuerOf(newLeaf)).toBe('CN=root-2');
      expect(opensslVerifies(r.trustBundle, newLeaf)).toBe(true);
      expect(opensslVerifies(r.trustBundle, oldLeaf)).toBe(true);
      expect(opensslVerifies([r1.certPem], newLeaf)).toBe(false);
      // The CA's own serving certificate now chains to r2 as well: a client trusting only r1 is refused.
      await expect(fetchTrustBundle({ url: ca.url, trustBundle: [r1.certPem] })).rejects.toThrow(CaRequestError);
      await expect(fetchTrustBundle({ url: ca.url, trustBundle: [r2.certPem] })).resolves.toHaveLength(2);
    });
  });

  it('step 3, r1 removed: the bundle holds r2 only, and the r1 leaf no longer renews', async () => {
    await withCa({ roots: [root('r2')] }, async (ca, ep) => {
      expect(ca.trustBundle().map(subjectOf)).toEqual(['CN=root-2']);
      const r = await post(ca, JSON.stringify({ csr: createCsr(newKey()) }), {}, { cert: oldLeaf, key: pkcs8(key) });
      expect(r.status).toBe(401);
      expect(r.body['reason']).toBe('untrusted_client_cert');
      const fresh = await requestCertificate(ep, { csrPem: createCsr(newKey()), token: 'token-cart' });
      expect(opensslVerifies(ca.trustBundle(), fresh.certificateChain[0]!)).toBe(true);
      expect(opensslVerifies(ca.trustBundle(), oldLeaf)).toBe(false);
    });
  });
});

describe('startCa refuses a bad configuration naming the field', () => {
  it.each([
    // columns: configuration change, message part
    [{ roots: [] }, 'roots'],
    [{ stateDir: join(dir, 's2'), maxTtlSeconds: 10, defaultTtlSeconds: 20 }, 'defaultTtlSeconds'],
    [{ roots: [{ name: 'a', cert: join(dir, 'nope.pem'), key: join(dir, 'nope.key') }] }, 'roots[0].cert: cannot read'],
    [{ stateDir: join(dir, 's3'), credentials: join(dir, 'nope.json') }, 'credentials: cannot read'],
    [{ stateDir: join(dir, 's4'), allowedNamespaces: ['Bad'] }, 'allowedNamespaces'],
  ])('%j → %s', async (change, message) => {
    await expect(startCa({ ...base, ...change } as never, { logger: quiet })).rejects.toThrow(message);
  });
});
