/**
 * The CA's root and trust bundle in Kubernetes, against the real kube-apiserver of the k8s
 * project: the first replica creates the root Secret, the next reuses it (same root), a Secret
 * without a usable root is refused by name and left alone, and the trust bundle ConfigMap is
 * written once and rewritten only when the roots change.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CoreV1Api } from '@kubernetes/client-node';
import { createRoot } from '@octo-mesh/identity';
import { createLogger } from '@octo-mesh/runtime';
import { adminKubeConfig, createTestNamespace } from '@octo-mesh/testing';
import { ROOT_SECRET_KEYS, TRUST_BUNDLE_KEY, publishTrustBundle, syncRootSecret } from './kube-root.js';

const quiet = createLogger('ca', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const dir = mkdtempSync(join(tmpdir(), 'octo-ca-root-k8s-'));
let ns = '';
let core: CoreV1Api;
beforeAll(async () => {
  ns = await createTestNamespace('ca-root');
  core = adminKubeConfig().makeApiClient(CoreV1Api);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sync = (name: string, stateDir: string) => syncRootSecret({ kubeConfig: adminKubeConfig(), namespace: ns, name, stateDir: join(dir, stateDir), trustDomain: 'cluster.local', lifetimeSeconds: 86_400, logger: quiet });
const rootCert = (stateDir: string) => readFileSync(join(dir, stateDir, 'roots/generated/cert.pem'), 'utf8');

describe('the root Secret', () => {
  it('is created with a new root by the first replica and reused by the next, concurrent or later', async () => {
    await Promise.all([sync('octo-ca-root', 'a'), sync('octo-ca-root', 'b')]);
    await sync('octo-ca-root', 'c');
    expect(rootCert('b')).toBe(rootCert('a'));
    expect(rootCert('c')).toBe(rootCert('a'));
    const secret = await core.readNamespacedSecret({ name: 'octo-ca-root', namespace: ns });
    expect(Buffer.from(secret.data![ROOT_SECRET_KEYS.cert]!, 'base64').toString()).toBe(rootCert('a'));
    const cert = new X509Certificate(rootCert('a'));
    expect(cert.ca).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'a', 'roots/generated/key.pem'))))).toBe(true);
  });

  it('refuses a Secret without a usable root, naming it and the key, and leaves it as it was', async () => {
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'broken' }, stringData: { [ROOT_SECRET_KEYS.cert]: 'not a certificate' } } });
    await expect(sync('broken', 'd')).rejects.toThrow(`Secret ${ns}/broken: data["cert.pem"] is not a PEM certificate`);
    const after = await core.readNamespacedSecret({ name: 'broken', namespace: ns });
    expect(Buffer.from(after.data![ROOT_SECRET_KEYS.cert]!, 'base64').toString()).toBe('not a certificate');
  });
});

describe('the trust bundle ConfigMap', () => {
  it('is written, left alone while the roots are the same, and rewritten when they change', async () => {
    const one = createRoot({ trustDomain: 'cluster.local', now: new Date() }).certPem;
    const two = createRoot({ trustDomain: 'cluster.local', now: new Date() }).certPem;
    const publish = (trustBundle: string[]) => publishTrustBundle({ kubeConfig: adminKubeConfig(), namespace: ns, name: 'octo-ca-root-cert', trustBundle, logger: quiet });
    const read = () => core.readNamespacedConfigMap({ name: 'octo-ca-root-cert', namespace: ns });
    await publish([one]);
    const first = await read();
    expect(first.data?.[TRUST_BUNDLE_KEY]).toBe(one);
    await publish([one]);
    expect((await read()).metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    await publish([one, two]);
    expect((await read()).data?.[TRUST_BUNDLE_KEY]).toBe(one + two);
  });
});
