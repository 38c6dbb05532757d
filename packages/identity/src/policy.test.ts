import { describe, expect, it } from '@jest/globals';
import { CaRefusal, checkNamespace, chooseTtl, leafValidity, renewalTime } from './policy.js';

const policy = { defaultTtlSeconds: 86_400, maxTtlSeconds: 172_800 };

describe('chooseTtl', () => {
  it.each([
    // columns: requested, expected lifetime
    [undefined, 86_400],
    [null, 86_400],
    [1, 1],
    [172_800, 172_800],
  ])('%p → %p', (requested, ttl) => expect(chooseTtl(requested, policy)).toBe(ttl));

  it('caps the default at the maximum', () => expect(chooseTtl(undefined, { defaultTtlSeconds: 100, maxTtlSeconds: 10 })).toBe(10));

  it.each([
    // columns: requested, message part
    [0, 'out of range [1, 172800]'],
    [172_801, 'out of range'],
    [1.5, 'must be an integer'],
    ['60', 'must be an integer'],
  ])('%p → 400 naming ttlSeconds (%s)', (requested, message) => {
    const err = (() => {
      try {
        chooseTtl(requested, policy);
      } catch (e) {
        return e as CaRefusal;
      }
    })();
    expect(err).toBeInstanceOf(CaRefusal);
    expect(err!.status).toBe(400);
    expect(err!.message).toMatch(/^ttlSeconds: /);
    expect(err!.message).toContain(message);
  });
});

describe('checkNamespace', () => {
  it.each([
    // columns: namespace, allowed, refused?
    ['shop', undefined, false],
    ['shop', [], false],
    ['shop', ['shop', 'pay'], false],
    ['other', ['shop', 'pay'], true],
  ])('%s in %p: refused %p', (ns, allowed, refused) => {
    if (refused) expect(() => checkNamespace(ns, allowed)).toThrow(expect.objectContaining({ status: 403, reason: 'namespace_not_allowed' }) as unknown as Error);
    else expect(() => checkNamespace(ns, allowed)).not.toThrow();
  });
});

describe('renewalTime', () => {
  it.each([
    // columns: receivedAt, notAfter, random, renew at (50 % + 20 % × random of what is left)
    [0, 1000, 0, 500],
    [0, 1000, 0.5, 600],
    [0, 1000, 0.999, 700],
    [10_000, 20_000, 0.25, 15_500],
    [5000, 4000, 0.5, 5000], // already expired: renew now
  ])('received %i, expires %i, random %p → %i', (receivedAt, notAfter, random, at) => expect(renewalTime(receivedAt, notAfter, random)).toBe(at));
});

describe('leafValidity', () => {
  it('back-dates notBefore 60 s and ends ttl after now', () => {
    const v = leafValidity(new Date(1_000_000), 30);
    expect(v.notBefore.getTime()).toBe(940_000);
    expect(v.notAfter.getTime()).toBe(1_030_000);
  });
});
