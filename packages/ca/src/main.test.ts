/** The executable: a bad setting stops it naming the field; it serves /healthz /readyz /metrics and issues; SIGTERM exits 0. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCsr, newKeyPair, requestCertificate, fetchTrustBundle, tokenHash } from '@octo-mesh/identity';
import { startProcess, stopAll } from '@octo-mesh/testing';

const dir = mkdtempSync(join(tmpdir(), 'octo-ca-main-'));
afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'credentials.json'), JSON.stringify({ tokens: [{ sha256: tokenHash('t0'), namespace: 'default', serviceAccount: 'web' }] }));
const creds = join(dir, 'credentials.json');

describe('octo-ca', () => {
  it.each([
    // columns: flags, what the message must name
    [[], 'credentials'],
    [['--credentials', creds], 'roots'],
    [['--credentials', creds, '--state-dir', dir, '--max-ttl-seconds', '0'], 'maxTtlSeconds'],
    [['--credentials', creds, '--state-dir', dir, '--trust-domain', 'Not A Domain'], 'trustDomain'],
    [['--credentials', creds, '--roots', '[{"name":"a","cert":"/nonexistent.pem","key":"/nonexistent.key"}]'], 'roots[0].cert: cannot read /nonexistent.pem'],
    [['--credentials', join(dir, 'missing.json'), '--state-dir', dir], 'credentials: cannot read'],
    [['--credentials', 'kubernetes', '--state-dir', dir, '--kubeconfig', join(dir, 'no-kubeconfig')], 'kubeconfig: '],
  ])('%j exits 2 naming %s', async (args, field) => {
    const p = startProcess('packages/ca/dist/main.js', [...args, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--admin-host', '127.0.0.1']);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain(field);
  });

  it('serves the API, /healthz, /readyz and /metrics, and exits 0 on SIGTERM', async () => {
    const p = startProcess('packages/ca/dist/main.js', ['--credentials', creds, '--state-dir', join(dir, 'state'), '--host', '127.0.0.1', '--port', '0', '--admin-host', '127.0.0.1', '--admin-port', '0']);
    const { port, adminPort } = await p.line<{ port: number; adminPort: number }>('listening', { timeoutMs: 20_000 });
    const admin = `http://127.0.0.1:${adminPort}`;
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    // The first client trusts the CA's root out of band (the generated root file).
    const { readFileSync } = await import('node:fs');
    const ep = { url: `https://127.0.0.1:${port}`, trustBundle: [readFileSync(join(dir, 'state/roots/generated/cert.pem'), 'utf8')] };
    expect(await fetchTrustBundle(ep)).toHaveLength(1);
    const r = await requestCertificate(ep, { csrPem: createCsr(newKeyPair().privateKey), token: 't0' });
    expect(r.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/web');
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/octo_ca_certificate_requests_total\{result="issued",reason="bootstrap-token"\} 1/);
    expect(metrics).toContain('octo_ca_root_expiry_timestamp_seconds{root="generated",signing="true"}');
    expect(await p.stop(10_000)).toBe(0);
  }, 40_000);
});
