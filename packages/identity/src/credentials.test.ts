import { describe, expect, it } from '@jest/globals';
import { BootstrapTokens, tokenHash } from './credentials.js';
import { CaRefusal } from './policy.js';

describe('BootstrapTokens', () => {
  const tokens = new BootstrapTokens({
    tokens: [
      { sha256: tokenHash('s3cret-cart'), namespace: 'shop', serviceAccount: 'cart' },
      { sha256: tokenHash('s3cret-pay'), namespace: 'shop', serviceAccount: 'pay' },
    ],
  });

  it.each([
    // columns: token, namespace, service account
    ['s3cret-cart', 'shop', 'cart'],
    ['s3cret-pay', 'shop', 'pay'],
  ])('%s proves %s/%s', async (token, namespace, serviceAccount) => {
    await expect(tokens.verify(token)).resolves.toEqual({ namespace, serviceAccount });
  });

  it.each([[''], ['s3cret-car'], ['S3CRET-CART'], [tokenHash('s3cret-cart')]])('refuses %p with 401', async (token) => {
    await expect(tokens.verify(token)).rejects.toEqual(expect.objectContaining({ status: 401, reason: 'invalid_credential' }));
    await expect(tokens.verify(token)).rejects.toBeInstanceOf(CaRefusal);
  });

  it.each([
    // columns: file, message part
    [{}, 'tokens: '],
    [{ tokens: [{ sha256: 'abc', namespace: 'a', serviceAccount: 'b' }] }, 'tokens[0].sha256: must be 64 lower-case hex digits'],
    [{ tokens: [{ sha256: tokenHash('x'), namespace: 'A', serviceAccount: 'b' }] }, 'tokens[0].namespace: "A" is not valid'],
    [{ tokens: [{ sha256: tokenHash('x'), namespace: 'a', serviceAccount: 'b', token: 'x' }] }, 'tokens[0]: '],
    [{ tokens: [], extra: 1 }, ''],
  ])('a bad credentials file %j is refused naming %s', (file, message) => {
    expect(() => new BootstrapTokens(file)).toThrow(`credentials file: ${message}`);
  });
});
