import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@octo-mesh/runtime';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { TestPki, certificateSds, inboundListener, rootSds, sdsTlsContext, upstreamTransport, writeAtomic, type KeyPair } from '../test-support/pki.js';
import type { Proxy } from '../proxy.js';

// The RBAC filter on identities proven by mTLS, over real sockets and real TLS handshakes:
// certificates made with the openssl CLI carry a SPIFFE ID as their URI SAN; the callee's inbound
// listener (tls_inspector, a TLS chain requiring a client certificate and, PERMISSIVE, a plaintext
// chain) carries RBAC filters as pilot generates them from AuthorizationPolicies
// (packages/pilot/src/translate/authz.ts). Callers: a direct HTTPS client and a caller-side proxy
// (UpstreamTlsContext), as sidecar to sidecar.
const TD = 'spiffe://cluster.local';
const FRONTEND = `${TD}/ns/shop/sa/frontend`;
const BATCH = `${TD}/ns/jobs/sa/batch`;
const CATALOG = `${TD}/ns/shop/sa/catalog`;
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const regexId = (re: string) => ({ authenticated: { principal_name: { safe_regex: { regex: re } } } });

async function counter(p: Proxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await p.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as { labels: Record<string, string>; value: number }[] | undefined)?.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

/** One HTTPS request presenting `client`; resolves status and the RBAC headers. */
function mtlsCall(port: number, ca: string, client: KeyPair, method: string, path: string): Promise<{ status: number; body: string; reason?: string; policy?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path, ca, cert: client.cert, key: client.key, agent: false, checkServerIdentity: () => undefined }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          ...(res.headers['x-octo-reason'] ? { reason: String(res.headers['x-octo-reason']) } : {}),
          ...(res.headers['x-octo-rbac-policy'] ? { policy: String(res.headers['x-octo-rbac-policy']) } : {}),
        }),
      );
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('RBAC on mTLS identities', () => {
  const pki = new TestPki();
  let root: KeyPair;
  const certs: Record<string, KeyPair> = {};
  let app: Upstream;
  let callee: Proxy & { port: number };
  let caller: Proxy & { port: number };
  let inboundPort = 0;

  beforeAll(async () => {
    root = pki.root('mesh-root');
    for (const [name, id] of Object.entries({ frontend: FRONTEND, batch: BATCH, catalog: CATALOG })) certs[name] = pki.leaf(root, id);
    const calleeDir = mkdtempSync(join(tmpdir(), 'octo-rbac-callee-'));
    const callerDir = mkdtempSync(join(tmpdir(), 'octo-rbac-caller-'));
    writeAtomic(join(calleeDir, 'default.json'), certificateSds(certs['catalog']!));
    writeAtomic(join(calleeDir, 'ROOTCA.json'), rootSds([root]));
    writeAtomic(join(callerDir, 'default.json'), certificateSds(certs['batch']!));
    writeAtomic(join(callerDir, 'ROOTCA.json'), rootSds([root]));
    app = await httpUpstream('catalog');
    // What pilot makes of: ALLOW shop/frontend (GET, POST /orders) and any identity in ns jobs on
    // GET /metrics; DENY anyone not in namespace shop on /admin*.
    const filters = [
      {
        name: 'envoy.filters.http.rbac',
        typed_config: {
          '@type': RBAC,
          rules: {
            action: 'DENY',
            policies: {
              'shop/lockdown[rule 0]': {
                permissions: [{ url_path: { path: { prefix: '/admin' } } }],
                principals: [{ and_ids: { ids: [{ authenticated: {} }, { not_id: regexId('spiffe://[^/]+/ns/shop/sa/[^/]+') }] } }],
              },
            },
          },
        },
      },
      {
        name: 'envoy.filters.http.rbac',
        typed_config: {
          '@type': RBAC,
          rules: {
            action: 'ALLOW',
            policies: {
              'shop/catalog-readers[rule 0]': {
                permissions: [{ or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'POST' } } }, { url_path: { path: { exact: '/orders' } } }] } }] } }],
                principals: [regexId('spiffe://[^/]+/ns/shop/sa/frontend')],
              },
              'shop/catalog-readers[rule 1]': {
                permissions: [{ and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { exact: '/metrics' } } }] } }],
                principals: [regexId('spiffe://[^/]+/ns/jobs/sa/[^/]+')],
              },
            },
          },
        },
      },
    ];
    const plain = httpListener('inbound', { route_config: routeConfig('inbound-routes', [{ name: 'app', match: { prefix: '/' }, route: { cluster: 'app' } }]) }, { filters });
    callee = await startProxy(
      { listeners: [inboundListener('inbound', plain, sdsTlsContext(calleeDir), 'PERMISSIVE')], clusters: [staticCluster('app', [app.port])] },
      { sockets: [{ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }], registry: new Registry() },
    );
    const a = callee.addresses.get('inbound');
    inboundPort = a?.kind === 'tcp' ? a.port : 0;
    // The batch job's sidecar: its outbound cluster to catalog speaks mTLS with batch's certificate.
    caller = await startProxy(
      {
        listeners: [httpListener('outbound', { route_config: routeConfig('out', [{ name: 'catalog', match: { prefix: '/' }, route: { cluster: 'catalog' } }]) })],
        clusters: [staticCluster('catalog', [inboundPort], upstreamTransport(sdsTlsContext(callerDir, ['http/1.1'], { exact: CATALOG })))],
      },
      { registry: new Registry() },
    );
    const end = Date.now() + 20_000;
    while (callee.ready() !== true || caller.ready() !== true) {
      if (Date.now() > end) throw new Error('proxies not ready');
      await new Promise((r) => setTimeout(r, 20));
    }
  }, 60_000);

  afterAll(async () => {
    await caller?.stop(100);
    await callee?.stop(100);
    await app?.close();
  });

  // client certificate, method, path, status, x-octo-rbac-policy
  it.each<[string, string, string, number, string | undefined]>([
    ['frontend', 'GET', '/products', 200, undefined],
    ['frontend', 'POST', '/orders', 200, undefined],
    ['frontend', 'DELETE', '/orders', 403, undefined],
    ['batch', 'GET', '/metrics', 200, undefined],
    ['batch', 'GET', '/products', 403, undefined],
    ['batch', 'GET', '/admin/x', 403, 'shop/lockdown[rule 0]'],
    ['catalog', 'GET', '/products', 403, undefined],
    ['frontend', 'GET', '/admin/x', 200, undefined],
  ])('%s: %s %s → %d', async (who, method, path, status, policy) => {
    const hits = app.hits;
    const r = await mtlsCall(inboundPort, root.cert, certs[who]!, method, path);
    expect(r.status).toBe(status);
    if (status === 403) {
      expect(r).toEqual({ status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied', ...(policy ? { policy } : {}) });
      expect(app.hits).toBe(hits);
    } else expect(app.hits).toBe(hits + 1);
  });

  it('denies a plaintext caller on the PERMISSIVE chain: it has no identity', async () => {
    const r = await request(inboundPort, { path: '/products' });
    expect(r.status).toBe(403);
    expect(r.headers['x-octo-reason']).toBe('rbac-denied');
  });

  it('judges a caller sidecar by the certificate its cluster presents (sidecar to sidecar)', async () => {
    const denied = await counter(callee, 'octo_proxy_rbac_denied_total', { listener: 'inbound', policy: '' });
    const allowed = await counter(callee, 'octo_proxy_rbac_allowed_total', { listener: 'inbound', policy: 'shop/catalog-readers[rule 1]' });
    expect((await request(caller.port, { path: '/metrics' })).status).toBe(200);
    const r = await request(caller.port, { path: '/products' });
    expect(r.status).toBe(403);
    expect(r.body).toBe('RBAC: access denied\n');
    expect(await counter(callee, 'octo_proxy_rbac_allowed_total', { listener: 'inbound', policy: 'shop/catalog-readers[rule 1]' })).toBe(allowed + 1);
    expect(await counter(callee, 'octo_proxy_rbac_denied_total', { listener: 'inbound', policy: '' })).toBe(denied + 1);
  });
});
