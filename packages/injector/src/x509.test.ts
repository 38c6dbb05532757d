import { describe, expect, it } from '@jest/globals';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { issueCa, issueServing } from './x509.js';

describe('issueCa / issueServing', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const ca = issueCa('octo-injector-ca', now, 24 * 365);
  const names = ['octo-injector.octo-system.svc', 'octo-injector.octo-system.svc.cluster.local'];
  const leaf = issueServing(ca, names, now, 720);

  it('issues a CA that verifies itself and says it is a CA', () => {
    const c = new X509Certificate(ca.certPem);
    expect(c.ca).toBe(true);
    expect(c.verify(c.publicKey)).toBe(true);
    expect(c.subject).toContain('CN=octo-injector-ca');
    expect(new Date(c.validTo).getTime()).toBe(Math.floor(ca.notAfter.getTime() / 1000) * 1000);
  });

  it('issues a serving certificate signed by the CA for the Service names', () => {
    const c = new X509Certificate(leaf.certPem);
    expect(c.ca).toBe(false);
    expect(c.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(c.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    for (const n of names) expect(c.checkHost(n)).toBe(n);
    expect(c.checkHost('other.example')).toBeUndefined();
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
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
        const req = request({ host: '127.0.0.1', port, servername: 'localhost', ca: fresh.certPem, path: '/' }, (res) => {
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
