/** Certificates written in DER: checked by openssl itself and by Node's X509Certificate. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRoot } from './ca.js';
import { certificateFields, distinguishedName, issueCa, issueServing, keyIdentifier, signCertificate, signerOf, spkiOf } from './x509.js';

const dir = mkdtempSync(join(tmpdir(), 'identity-x509-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `openssl <args>` → stdout; throws with stderr on a non-zero exit. */
const openssl = (args: string[]) => execFileSync('/usr/bin/openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('signCertificate', () => {
  const now = new Date();
  const root = createRoot({ trustDomain: 'cluster.local', now });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const leafPem = signCertificate(
    {
      subject: distinguishedName({ organization: 'cluster.local' }),
      spki: spkiOf(privateKey),
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3_600_000),
      extKeyUsage: ['serverAuth', 'clientAuth'],
      uris: ['spiffe://cluster.local/ns/shop/sa/cart'],
      dnsNames: ['cart.shop.svc'],
      ipAddresses: ['127.0.0.1', '::1', 'fd00::1:2'],
    },
    signerOf(root.certPem, root.keyPem),
  );
  writeFileSync(join(dir, 'root.pem'), root.certPem);
  writeFileSync(join(dir, 'leaf.pem'), leafPem);

  it('writes a root and a leaf that `openssl verify` accepts (x509_strict)', () => {
    expect(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'root.pem', 'leaf.pem'])).toContain('leaf.pem: OK');
    expect(openssl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', 'root.pem', 'leaf.pem'])).toContain('leaf.pem: OK');
  });

  it('the root is CA:true with pathLen 0 and certificate-signing key usage', () => {
    const text = openssl(['x509', '-in', 'root.pem', '-noout', '-text']);
    expect(text).toMatch(/CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Certificate Sign, CRL Sign/);
    expect(new X509Certificate(root.certPem).ca).toBe(true);
  });

  it('the leaf carries the SANs, both EKUs, CA:false, digitalSignature + keyEncipherment, and key ids that link it to the root', () => {
    const c = new X509Certificate(leafPem);
    expect(c.subjectAltName).toBe('URI:spiffe://cluster.local/ns/shop/sa/cart, DNS:cart.shop.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:1:2');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(c.ca).toBe(false);
    const text = openssl(['x509', '-in', 'leaf.pem', '-noout', '-text']);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/Digital Signature, Key Encipherment/);
    const rootSki = certificateFields(root.certPem).subjectKeyId!.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
    expect(text).toMatch(new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${rootSki}`));
    expect(certificateFields(leafPem).subjectKeyId).toEqual(keyIdentifier(spkiOf(privateKey)));
  });

  it('gives every certificate a random positive serial of 128 bits', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const s = new X509Certificate(createRoot({ trustDomain: 'td', now }).certPem).serialNumber;
      expect(BigInt(`0x${s}`) > 0n).toBe(true);
      expect(s.replace(/^00/, '').length).toBeLessThanOrEqual(32);
      serials.add(s);
    }
    expect(serials.size).toBe(50);
  });

  it('copies the issuer name and key id from the root certificate as written, even a foreign (openssl-made) one', () => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'o.key', '-out', 'o.pem', '-days', '2', '-subj', '/C=DE/O=Other Org/CN=other root', '-addext', 'basicConstraints=critical,CA:true']);
    const o = { cert: openssl(['x509', '-in', 'o.pem']), key: openssl(['pkey', '-in', 'o.key']) };
    const leaf = signCertificate({ subject: distinguishedName({ organization: 'x' }), spki: spkiOf(privateKey), notBefore: now, notAfter: new Date(now.getTime() + 60_000), uris: ['spiffe://x/ns/a/sa/b'] }, signerOf(o.cert, o.key));
    writeFileSync(join(dir, 'o-leaf.pem'), leaf);
    expect(openssl(['verify', '-CAfile', 'o.pem', 'o-leaf.pem'])).toContain('OK');
    expect(new X509Certificate(leaf).issuer).toBe(new X509Certificate(o.cert).subject);
  });

  it('writes GeneralizedTime for dates from 2050 (RFC 5280 4.1.2.5)', () => {
    const far = signCertificate({ subject: distinguishedName({ commonName: 'far' }), spki: spkiOf(privateKey), notBefore: now, notAfter: new Date('2051-03-04T05:06:07Z'), ca: {} }, { subject: distinguishedName({ commonName: 'far' }), privateKey, keyId: keyIdentifier(spkiOf(privateKey)) });
    expect(new Date(new X509Certificate(far).validTo).toISOString()).toBe('2051-03-04T05:06:07.000Z');
  });
});

describe('issueCa / issueServing (the injector\'s webhook TLS)', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const ca = issueCa('octo-injector-ca', now, 24 * 365);
  const names = ['octo-injector.octo-system.svc', 'octo-injector.octo-system.svc.cluster.local'];
  const leaf = issueServing(ca, names, now, 720);

  it('issues a CA that verifies itself and a serving certificate signed by it for the Service names', () => {
    const c = new X509Certificate(ca.certPem);
    expect(c.ca).toBe(true);
    expect(c.verify(c.publicKey)).toBe(true);
    expect(c.subject).toContain('CN=octo-injector-ca');
    const l = new X509Certificate(leaf.certPem);
    expect(l.checkIssued(c)).toBe(true);
    expect(l.verify(c.publicKey)).toBe(true);
    for (const n of names) expect(l.checkHost(n)).toBe(n);
    expect(l.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(createPrivateKey(leaf.keyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('is accepted by a real TLS client that trusts only the CA', async () => {
    const fresh = issueCa('ca', new Date(), 1);
    const cert = issueServing(fresh, ['localhost'], new Date(), 1);
    const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, servername: 'localhost', ca: fresh.certPem, path: '/', agent: false }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c));
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('ok');
    } finally {
      server.close();
    }
  });
});
