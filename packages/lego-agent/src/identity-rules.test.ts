/**
 * The agent's identity decisions as tables: the CA settings (all or nothing, fields named), when
 * the agent counts as ready, what the status says, the trust bundle file, the proxy's argv.
 */
import { describe, expect, it } from '@jest/globals';
import { createRoot } from '@octo-mesh/identity';
import { AgentConfigSchema, caSettings } from './config.js';
import { proxyChildArgs } from './agent.js';
import { identityNotReady, identityStatus, parseTrustBundle, type IdentityState } from './identity.js';

const ca = { caUrl: 'https://octo-ca.octo-system.svc:15016', caTrustBundleFile: '/etc/octo/ca.pem', caTokenFile: '/var/run/secrets/tokens/octo-ca' };

describe('CA settings', () => {
  it.each([
    ['no CA at all', {}, null],
    ['a complete CA', ca, null],
    ['caUrl without token and bundle', { caUrl: ca.caUrl }, ['caTrustBundleFile: required with caUrl', 'caTokenFile: required with caUrl']],
    ['caUrl without token', { caUrl: ca.caUrl, caTrustBundleFile: ca.caTrustBundleFile }, ['caTokenFile: required with caUrl']],
    ['the roots inline instead of a file (the injector\'s way)', { caUrl: ca.caUrl, caTokenFile: ca.caTokenFile, caTrustBundle: '-----BEGIN CERTIFICATE-----…' }, null],
    ['the roots both inline and as a file', { ...ca, caTrustBundle: '-----BEGIN CERTIFICATE-----…' }, ['caTrustBundle: give caTrustBundleFile or caTrustBundle, not both']],
    ['inline roots without caUrl', { caTrustBundle: '-----BEGIN CERTIFICATE-----…' }, ['caUrl: required with caTrustBundle']],
    ['a token without caUrl', { caTokenFile: ca.caTokenFile }, ['caUrl: required with caTokenFile']],
    ['certTtlSeconds without caUrl', { certTtlSeconds: 60 }, ['caUrl: required with certTtlSeconds']],
    ['proxyTlsDir without caUrl: nothing to pass, not an error', { proxyTlsDir: 'true' }, null],
    ['a plain http CA', { ...ca, caUrl: 'http://octo-ca:15016' }, ['caUrl: must be an https:// URL']],
    ['a CA that is no URL', { ...ca, caUrl: 'octo-ca:15016' }, ['caUrl: must be an https:// URL']],
    ['a zero lifetime', { ...ca, certTtlSeconds: '0' }, ['certTtlSeconds:']],
    ['a retry cap below the first retry', { ...ca, caRetryMaxMs: 100 }, ['caRetryMaxMs:']],
  ])('%s', (_name, input, problems) => {
    const r = AgentConfigSchema.safeParse(input);
    if (!problems) return expect(r.error?.issues).toBeUndefined();
    expect(r.success).toBe(false);
    const got = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    for (const p of problems) expect(got.some((g) => g.startsWith(p))).toBe(true);
  });

  it('puts certDir under stateDir unless given, and reads numbers and switches from strings (env, flags)', () => {
    const c = AgentConfigSchema.parse({ ...ca, stateDir: '/var/lib/octo', certTtlSeconds: '20' });
    expect(caSettings(c)).toEqual({ ...ca, certDir: '/var/lib/octo/certs', certTtlSeconds: 20, certWaitMs: 30_000, caRetryMaxMs: 30_000 });
    expect(c.proxyTlsDir).toBe(true);
    expect(AgentConfigSchema.parse({ ...ca, proxyTlsDir: 'false' }).proxyTlsDir).toBe(false);
    expect(caSettings(AgentConfigSchema.parse({ ...ca, certDir: '/run/certs' }))?.certDir).toBe('/run/certs');
    expect(caSettings(AgentConfigSchema.parse({}))).toBeUndefined();
  });
});

describe('identity readiness', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const held = { spiffeId: 'spiffe://cluster.local/ns/shop/sa/cart', serialNumber: '0a1b', expiresAt: new Date(now + 60_000) };
  const err = { message: 'POST https://ca/v1/certificates: 401 Authorization: bearer token is not a known bootstrap token', at: new Date(now - 1000) };
  it.each<[string, IdentityState, RegExp | null]>([
    ['nothing yet, first request under way', { held: undefined, lastError: null }, /^no certificate yet from https:\/\/ca \(first request under way\)$/],
    ['nothing yet, refused', { held: undefined, lastError: err }, /^no certificate yet from https:\/\/ca; last attempt \(2026-12-06T11:59:59.000Z\) failed: .*401 .*not a known bootstrap token$/],
    ['a valid certificate', { held, lastError: null }, null],
    ['a valid certificate whose renewal failed: still ready', { held, lastError: err }, null],
    ['expired this very moment', { held: { ...held, expiresAt: new Date(now) }, lastError: null }, /^certificate 0a1b of spiffe:\/\/cluster.local\/ns\/shop\/sa\/cart expired at 2026-12-06T12:00:00.000Z$/],
    ['expired, CA unreachable', { held: { ...held, expiresAt: new Date(now - 5000) }, lastError: { message: 'connect ECONNREFUSED', at: new Date(now) } }, /expired at 2026-12-06T11:59:55.000Z; last attempt .* failed: connect ECONNREFUSED$/],
  ])('%s', (_name, state, reason) => {
    const got = identityNotReady(state, now, 'https://ca');
    if (reason) expect(got).toMatch(reason);
    else expect(got).toBeNull();
    const status = identityStatus({ ...state, renewAt: undefined }, now);
    expect(status.ready).toBe(reason === null);
    expect(status.spiffeId).toBe(state.held?.spiffeId ?? null);
    expect(status.lastError).toEqual(state.lastError ? { message: state.lastError.message, at: state.lastError.at.toISOString() } : null);
  });

  it('reports times as ISO', () => {
    expect(identityStatus({ held, lastError: null, renewAt: new Date(now + 30_000) }, now)).toEqual({
      spiffeId: held.spiffeId,
      serialNumber: '0a1b',
      expiresAt: '2026-12-06T12:01:00.000Z',
      renewAt: '2026-12-06T12:00:30.000Z',
      ready: true,
      lastError: null,
    });
  });
});

describe('trust bundle file', () => {
  const a = createRoot({ trustDomain: 'cluster.local', now: new Date() }).certPem;
  const b = createRoot({ trustDomain: 'cluster.local', now: new Date() }).certPem;
  it.each<[string, string, string[] | RegExp]>([
    ['one root', a, [a.trim()]],
    ['two roots with text around', `# old\n${a}\n# new\n${b}`, [a.trim(), b.trim()]],
    ['a key only', '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n', /no PEM certificate/],
    ['empty', '', /no PEM certificate/],
    ['a broken second certificate', `${a}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n`, /certificate 2 of 2 does not parse/],
  ])('%s', (_name, text, want) => {
    if (want instanceof RegExp) return expect(() => parseTrustBundle(text)).toThrow(want);
    expect(parseTrustBundle(text).map((p) => p.trim())).toEqual(want);
  });
});

describe('proxy child argv', () => {
  it.each([
    [undefined, []],
    ['/var/lib/octo/certs', ['--tls-dir', '/var/lib/octo/certs']],
  ])('tlsDir %s', (tlsDir, extra) => {
    expect(proxyChildArgs('/s/proxy-bootstrap.json', tlsDir)).toEqual([
      '--config',
      '/s/proxy-bootstrap.json',
      '--sockets-from',
      'parent',
      '--admin-host',
      '127.0.0.1',
      '--admin-port',
      '0',
      '--outbound-port',
      '0',
      '--inbound-port',
      '0',
      ...extra,
    ]);
  });
});
