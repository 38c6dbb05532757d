/** The CA's core: issuing, checking a renewal certificate, and the root rotation procedure of the README, each leaf checked by `openssl verify`. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, createRoot } from './ca.js';
import { createCsr } from './csr.js';
import { CaRefusal } from './policy.js';

const dir = mkdtempSync(join(tmpdir(), 'identity-ca-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `openssl verify` of `leafPem` against the PEM roots in `bundle`: true when it prints OK. */
function opensslVerifies(bundle: string[], leafPem: string, atUnix?: number): boolean {
  writeFileSync(join(dir, 'bundle.pem'), bundle.join(''));
  writeFileSync(join(dir, 'leaf.pem'), leafPem);
  try {
    const out = execFileSync('/usr/bin/openssl', ['verify', ...(atUnix ? ['-attime', String(atUnix)] : []), '-CAfile', 'bundle.pem', 'leaf.pem'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.includes('leaf.pem: OK');
  } catch {
    return false;
  }
}

const T0 = new Date();
const key = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const csr = () => createCsr(key(), { uri: 'spiffe://evil/ns/kube-system/sa/admin' });
const ttl = { defaultTtlSeconds: 3600, maxTtlSeconds: 7200 };
const root1 = createRoot({ trustDomain: 'cluster.local', now: T0, commonName: 'root-1' });

describe('CertificateAuthority.issue', () => {
  const ca = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', ...root1 }], signing: 'r1', ...ttl });

  it('issues a leaf for the authenticated identity only, ignoring the names in the CSR', () => {
    const out = ca.issue(csr(), { namespace: 'shop', serviceAccount: 'cart' }, 600, T0);
    expect(out.spiffeId).toBe('spiffe://cluster.local/ns/shop/sa/cart');
    const c = new X509Certificate(out.certificateChain[0]!);
    expect(c.subjectAltName).toBe('URI:spiffe://cluster.local/ns/shop/sa/cart');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(new Date(c.validFrom).getTime()).toBe(Math.floor(T0.getTime() / 1000) * 1000 - 60_000);
    expect(out.expiresAt.getTime()).toBe(Math.floor(T0.getTime() / 1000) * 1000 + 600_000);
    expect(out.trustBundle).toEqual([new X509Certificate(root1.certPem).toString()]);
    expect(opensslVerifies(out.trustBundle, out.certificateChain[0]!)).toBe(true);
  });

  it('uses the default lifetime when none is asked, and never outlives the signing root', () => {
    expect(ca.issue(csr(), { namespace: 'a', serviceAccount: 'b' }, undefined, T0).expiresAt.getTime()).toBe(Math.floor(T0.getTime() / 1000) * 1000 + 3_600_000);
    const shortRoot = createRoot({ trustDomain: 'cluster.local', now: T0, lifetimeSeconds: 100 });
    const short = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 's', ...shortRoot }], signing: 's', ...ttl });
    expect(short.issue(csr(), { namespace: 'a', serviceAccount: 'b' }, 7200, T0).expiresAt.getTime()).toBe(new Date(new X509Certificate(shortRoot.certPem).validTo).getTime());
  });

  it.each([
    // columns: case, csr, ttl, reason, message start
    ['a CSR that is no PEM', 'junk', 60, 'bad_csr', 'csr: '],
    ['a CSR that is not a string', 42, 60, 'bad_csr', 'csr: must be a PEM string'],
    ['a ttl above the maximum', undefined, 7201, 'bad_ttl', 'ttlSeconds: '],
  ])('refuses %s with 400 (%s)', (_case, c, t, reason, message) => {
    let err: unknown;
    try {
      ca.issue(c ?? csr(), { namespace: 'a', serviceAccount: 'b' }, t, T0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaRefusal);
    expect(err).toEqual(expect.objectContaining({ status: 400, reason }));
    expect((err as Error).message.startsWith(message)).toBe(true);
  });

  it('refuses to sign once the signing root has expired', () => {
    const later = new Date(T0.getTime() + 11 * 365 * 86_400_000);
    expect(ca.canSign(later)).toMatch(/signing root r1 expired/);
    expect(() => ca.issue(csr(), { namespace: 'a', serviceAccount: 'b' }, 60, later)).toThrow('expired');
  });

  it.each([
    // columns: case, configuration change, message
    ['no signing root', { signing: 'nope' }, 'signing: no root named "nope"'],
    ['a signing root without key', { roots: [{ name: 'r1', certPem: root1.certPem }] }, 'signing: root "r1" has no key'],
    ['a key of another root', { roots: [{ name: 'r1', certPem: root1.certPem, keyPem: createRoot({ trustDomain: 'x', now: T0 }).keyPem }] }, 'roots[0] (r1).key: does not match its certificate'],
    ['a root twice', { roots: [{ name: 'r1', ...root1 }, { name: 'r1', ...root1 }] }, 'roots[1].name: "r1" appears twice'],
    ['a certificate that is no PEM', { roots: [{ name: 'r1', certPem: 'x', keyPem: root1.keyPem }] }, 'roots[0] (r1).cert: not a PEM certificate'],
    ['a bad trust domain', { trustDomain: 'Bad Domain' }, 'trustDomain: "Bad Domain" is not valid'],
  ])('construction refuses %s', (_case, change, message) => {
    expect(() => new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', ...root1 }], signing: 'r1', ...ttl, ...change })).toThrow(message);
  });
});

describe('CertificateAuthority.authenticatePeer (renewal)', () => {
  const ca = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', ...root1 }], signing: 'r1', ...ttl });
  const foreignRoot = createRoot({ trustDomain: 'cluster.local', now: T0 });
  const foreign = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'f', ...foreignRoot }], signing: 'f', ...ttl });
  const der = (pem: string) => new X509Certificate(pem).raw;
  const leaf = ca.issue(csr(), { namespace: 'shop', serviceAccount: 'cart' }, 600, T0).certificateChain[0]!;

  it('accepts a valid leaf it issued, giving its identity', () => {
    expect(ca.authenticatePeer(der(leaf), T0)).toEqual({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
  });

  it.each([
    // columns: case, certificate DER, time, reason
    ['none', () => undefined, T0, 'no_credential'],
    ['an expired leaf', () => der(leaf), new Date(T0.getTime() + 601_000), 'expired_client_cert'],
    ['a leaf of a foreign root', () => der(foreign.issue(csr(), { namespace: 'shop', serviceAccount: 'cart' }, 600, T0).certificateChain[0]!), T0, 'untrusted_client_cert'],
    ['a root certificate', () => der(root1.certPem), T0, 'invalid_client_cert'],
    ['a leaf of another trust domain signed by a trusted root', () => der(new CertificateAuthority({ trustDomain: 'other.td', roots: [{ name: 'r1', ...root1 }], signing: 'r1', ...ttl }).issue(csr(), { namespace: 'a', serviceAccount: 'b' }, 60, T0).certificateChain[0]!), T0, 'invalid_client_cert'],
    ['garbage', () => Buffer.from('nope'), T0, 'invalid_client_cert'],
  ])('refuses %s with 401', (_case, cert, at, reason) => {
    expect(() => ca.authenticatePeer(cert(), at)).toThrow(expect.objectContaining({ status: 401, reason }) as unknown as Error);
  });
});

describe('root rotation (README: add, switch, remove)', () => {
  const root2 = createRoot({ trustDomain: 'cluster.local', now: T0, commonName: 'root-2' });
  const id = { namespace: 'shop', serviceAccount: 'cart' };
  const before = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', ...root1 }], signing: 'r1', ...ttl });
  const oldLeaf = before.issue(csr(), id, 3600, T0).certificateChain[0]!;

  // Step 1: the new root is added; r1 still signs. The bundle holds both.
  const step1 = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', ...root1 }, { name: 'r2', ...root2 }], signing: 'r1', ...ttl });
  // Step 2: r2 signs; r1 is still trusted.
  const step2 = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r1', certPem: root1.certPem }, { name: 'r2', ...root2 }], signing: 'r2', ...ttl });
  // Step 3: r1 removed after the longest leaf lifetime.
  const step3 = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r2', ...root2 }], signing: 'r2', ...ttl });

  it('step 1: the bundle holds old and new roots, and a renewal hands it out', () => {
    const out = step1.issue(csr(), id, 3600, T0);
    expect(out.trustBundle.map((p) => new X509Certificate(p).subject)).toEqual([expect.stringContaining('CN=root-1'), expect.stringContaining('CN=root-2')]);
    expect(new X509Certificate(out.certificateChain[0]!).checkIssued(new X509Certificate(root1.certPem))).toBe(true);
    expect(opensslVerifies(out.trustBundle, oldLeaf)).toBe(true);
  });

  it('step 2: new leaves chain to the new root; old and new leaves both verify against the bundle; both renew', () => {
    const out = step2.issue(csr(), id, 3600, T0);
    const newLeaf = out.certificateChain[0]!;
    expect(new X509Certificate(newLeaf).checkIssued(new X509Certificate(root2.certPem))).toBe(true);
    expect(opensslVerifies(out.trustBundle, newLeaf)).toBe(true);
    expect(opensslVerifies(out.trustBundle, oldLeaf)).toBe(true);
    expect(opensslVerifies([root1.certPem], newLeaf)).toBe(false);
    expect(step2.authenticatePeer(new X509Certificate(oldLeaf).raw, T0).serviceAccount).toBe('cart');
    expect(step2.authenticatePeer(new X509Certificate(newLeaf).raw, T0).serviceAccount).toBe('cart');
  });

  it('step 3: the old root is gone from the bundle; its leaves no longer verify or renew, new ones do', () => {
    const out = step3.issue(csr(), id, 3600, T0);
    expect(out.trustBundle).toEqual([new X509Certificate(root2.certPem).toString()]);
    expect(opensslVerifies(out.trustBundle, oldLeaf)).toBe(false);
    expect(opensslVerifies(out.trustBundle, out.certificateChain[0]!)).toBe(true);
    expect(() => step3.authenticatePeer(new X509Certificate(oldLeaf).raw, T0)).toThrow(expect.objectContaining({ reason: 'untrusted_client_cert' }) as unknown as Error);
  });

  it('an expired root drops out of the bundle by itself', () => {
    const brief = createRoot({ trustDomain: 'cluster.local', now: T0, lifetimeSeconds: 10 });
    const ca = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'b', ...brief }, { name: 'r2', ...root2 }], signing: 'r2', ...ttl });
    expect(ca.trustBundle(T0)).toHaveLength(2);
    expect(ca.trustBundle(new Date(T0.getTime() + 20_000))).toHaveLength(1);
  });
});
