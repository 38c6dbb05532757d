/**
 * TokenReviewVerifier and octo-ca in kubernetes mode against the real kube-apiserver of the k8s
 * project: projected-style ServiceAccount tokens from the TokenRequest API, audience `octo-ca`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { CaRefusal, createCsr, newKeyPair, requestCertificate } from '@octo-mesh/identity';
import { createLogger } from '@octo-mesh/runtime';
import { adminKubeConfig, createTestNamespace } from '@octo-mesh/testing';
import { startCa, type RunningCa } from './server.js';
import { TokenReviewVerifier } from './token-review.js';

const quiet = createLogger('ca', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const dir = mkdtempSync(join(tmpdir(), 'octo-ca-k8s-'));
let ns = '';
let core: CoreV1Api;
async function token(sa: string, audiences: string[]): Promise<string> {
  const t = (await core.createNamespacedServiceAccountToken({ name: sa, namespace: ns, body: { spec: { audiences, expirationSeconds: 600 } } })).status?.token;
  if (!t) throw new Error(`TokenRequest for ${ns}/${sa} returned no token`);
  return t;
}

beforeAll(async () => {
  ns = await createTestNamespace('ca-tokenreview');
  core = adminKubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'cart' } } });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TokenReviewVerifier', () => {
  const verifier = () => new TokenReviewVerifier(adminKubeConfig(), 'octo-ca');

  it('maps a ServiceAccount token for audience octo-ca to its namespace and name', async () => {
    await expect(verifier().verify(await token('cart', ['octo-ca']))).resolves.toEqual({ namespace: ns, serviceAccount: 'cart' });
  });

  it.each([
    // columns: case, token maker, message part
    ['a token for another audience', () => token('cart', ['vault']), 'Authorization: token not authenticated'],
    ['a forged token', async () => 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln', 'Authorization: token not authenticated'],
  ])('refuses %s with 401', async (_case, make, message) => {
    const err = await verifier()
      .verify(await make())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaRefusal);
    expect((err as CaRefusal).status).toBe(401);
    expect((err as Error).message).toContain(message);
  });
});

describe('octo-ca in kubernetes mode', () => {
  let ca: RunningCa;
  beforeAll(async () => {
    ca = await startCa(
      { host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, stateDir: join(dir, 'state'), credentials: 'kubernetes', allowedNamespaces: [ns] },
      { logger: quiet, verifier: new TokenReviewVerifier(adminKubeConfig(), 'octo-ca') },
    );
  });
  afterAll(() => ca.stop());

  it('issues the ServiceAccount\'s SPIFFE ID for its token', async () => {
    const r = await requestCertificate({ url: ca.url, trustBundle: ca.trustBundle() }, { csrPem: createCsr(newKeyPair().privateKey), token: await token('cart', ['octo-ca']) });
    expect(r.spiffeId).toBe(`spiffe://cluster.local/ns/${ns}/sa/cart`);
  });

  it('answers 503 (retry) when the API server cannot be asked', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'gone', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'gone', user: 'u' }],
      currentContext: 'c',
    });
    const down = await startCa({ host: '127.0.0.1', port: 0, adminHost: '127.0.0.1', adminPort: 0, stateDir: join(dir, 'state'), credentials: 'kubernetes' }, { logger: quiet, verifier: new TokenReviewVerifier(kc) });
    try {
      const err = await requestCertificate({ url: down.url, trustBundle: down.trustBundle() }, { csrPem: createCsr(newKeyPair().privateKey), token: 'any' }).catch((e: unknown) => e);
      expect((err as { status: number }).status).toBe(503);
      expect((err as Error).message).toContain('credential check (kubernetes-token) failed');
    } finally {
      await down.stop();
    }
  });
});
