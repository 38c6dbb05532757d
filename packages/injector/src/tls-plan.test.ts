import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { caBundle, planTls, type TlsBundle } from './tls-plan.js';

const policy = { dnsNames: ['inj.ns.svc', 'inj.ns.svc.cluster.local'], servingHours: 30 };
const t0 = new Date('2026-06-01T00:00:00Z');
const h = (hours: number) => new Date(t0.getTime() + hours * 3_600_000);
const first = () => {
  const p = planTls(undefined, t0, policy);
  if (p.action !== 'write') throw new Error('expected a write');
  return p.bundle;
};

describe('planTls', () => {
  const b = first();
  it('issues a CA and a serving certificate when there is none', () => {
    expect(new X509Certificate(b['tls.crt']).checkIssued(new X509Certificate(b['ca.crt']))).toBe(true);
    expect(b['ca-previous.crt']).toBeUndefined();
  });
  it.each([
    // hours after issue, expected action
    [1, 'keep'],
    [19, 'keep'],
    [21, 'write'], // less than a third of 30 h left
  ])('at +%i h: %s', (hours, action) => {
    expect(planTls(b, h(hours), policy).action).toBe(action);
  });
  it('renews the serving certificate with the same CA', () => {
    const p = planTls(b, h(21), policy);
    if (p.action !== 'write') throw new Error('expected a write');
    expect(p.bundle['ca.crt']).toBe(b['ca.crt']);
    expect(p.bundle['tls.crt']).not.toBe(b['tls.crt']);
    expect(p.reason).toMatch(/serving certificate expires/);
  });
  it('renews when the Service names change', () => {
    const p = planTls(b, h(1), { ...policy, dnsNames: ['other.ns.svc'] });
    expect(p.action === 'write' && p.reason).toBe('serving certificate names changed');
  });
  it('rotates the CA before it would not outlive a serving certificate, keeping the old one trusted', () => {
    // CA lives 12 × 30 = 360 h; rotation below 1.5 × 30 = 45 h left.
    const p = planTls(b, h(320), policy);
    if (p.action !== 'write') throw new Error('expected a write');
    expect(p.bundle['ca.crt']).not.toBe(b['ca.crt']);
    expect(p.bundle['ca-previous.crt']).toBe(b['ca.crt']);
    expect(caBundle(p.bundle, h(320))).toBe(`${p.bundle['ca.crt']}${b['ca.crt']}`);
    // Once the old CA has expired it leaves the bundle.
    expect(caBundle(p.bundle, h(400))).toBe(p.bundle['ca.crt']);
  });
  it('leaves a previous CA that is not a certificate out of the bundle', () => {
    expect(caBundle({ ...b, 'ca-previous.crt': 'junk' }, t0)).toBe(b['ca.crt']);
  });
  it.each([
    ['garbage', { ...first(), 'tls.crt': 'not a pem' } as TlsBundle],
    ['a serving certificate of another CA', { ...first(), 'ca.crt': first()['ca.crt'] }],
  ])('starts over from %s', (_case, bundle) => {
    expect(planTls(bundle, t0, policy).action).toBe('write');
  });
});
