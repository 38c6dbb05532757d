import { describe, expect, it } from '@jest/globals';
import { SpiffeIdError, parseSpiffeId, spiffeId } from './spiffe.js';

describe('parseSpiffeId', () => {
  it.each([
    // columns: URI, trust domain, namespace, service account
    ['spiffe://cluster.local/ns/default/sa/cart', 'cluster.local', 'default', 'cart'],
    ['spiffe://example.org/ns/octo-system/sa/octo-pilot', 'example.org', 'octo-system', 'octo-pilot'],
    ['spiffe://td/ns/a1/sa/build.bot', 'td', 'a1', 'build.bot'],
  ])('%s', (uri, trustDomain, namespace, serviceAccount) => {
    expect(parseSpiffeId(uri)).toEqual({ trustDomain, namespace, serviceAccount });
    expect(spiffeId({ trustDomain, namespace, serviceAccount })).toBe(uri);
  });

  it.each([
    // columns: URI, part named, message part
    ['https://cluster.local/ns/a/sa/b', 'scheme', 'does not start with "spiffe://"'],
    ['spiffe://Cluster.Local/ns/a/sa/b', 'trustDomain', '"Cluster.Local" is not valid'],
    ['spiffe:///ns/a/sa/b', 'trustDomain', '"" is not valid'],
    ['spiffe://td', 'path', 'is not "/ns/<namespace>/sa/<service-account>"'],
    ['spiffe://td/ns/a/sa/b/c', 'path', '"/ns/a/sa/b/c"'],
    ['spiffe://td/sa/b/ns/a', 'path', 'is not'],
    ['spiffe://td/ns/A/sa/b', 'namespace', 'DNS-1123 label'],
    ['spiffe://td/ns/a.b/sa/b', 'namespace', 'DNS-1123 label'],
    [`spiffe://td/ns/${'a'.repeat(64)}/sa/b`, 'namespace', 'at most 63'],
    ['spiffe://td/ns/a/sa/', 'serviceAccount', 'DNS-1123 subdomain'],
    ['spiffe://td/ns/a/sa/-b', 'serviceAccount', 'DNS-1123 subdomain'],
    ['spiffe://td/ns/a/sa/b%2F', 'serviceAccount', 'DNS-1123 subdomain'],
  ])('refuses %s naming %s', (uri, part, message) => {
    let caught: unknown;
    try {
      parseSpiffeId(uri);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SpiffeIdError);
    expect((caught as SpiffeIdError).part).toBe(part);
    expect((caught as Error).message).toContain(message);
  });

  it('spiffeId refuses an invalid part, naming it', () => {
    expect(() => spiffeId({ trustDomain: 'td', namespace: 'ok', serviceAccount: 'Bad_Name' })).toThrow(/^serviceAccount: "Bad_Name" is not valid/);
  });
});
