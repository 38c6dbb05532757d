import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

// The RBAC filter on a real proxy over real sockets: plaintext callers (no principal) against
// `any` and `authenticated` principals, DENY before ALLOW, 403 with Envoy's body, the reason and
// policy headers, and the counters. The mTLS-backed cases (a certificate's URI SAN allowed or
// denied) are in rbac-mtls.test.ts.
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const rbacFilter = (action: 'ALLOW' | 'DENY', policies: Record<string, unknown>) => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC, rules: { action, policies } } });
const method = (m: string) => ({ header: { name: ':method', string_match: { exact: m } } });

async function counter(p: Proxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await p.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as { labels: Record<string, string>; value: number }[] | undefined)?.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('RBAC filter on the data path (plaintext peers)', () => {
  let app: Upstream;
  let p: Proxy & { port: number };

  beforeAll(async () => {
    app = await httpUpstream('app');
    const filters = [
      // DENY: /admin* from anyone, DELETE from anyone who is not authenticated (plaintext is not).
      rbacFilter('DENY', {
        'demo/lockdown[rule 0]': { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ any: true }] },
        'demo/lockdown[rule 1]': { permissions: [method('DELETE')], principals: [{ not_id: { authenticated: {} } }] },
      }),
      // ALLOW: reads from anyone; writes to /orders only from an authenticated identity.
      rbacFilter('ALLOW', {
        'demo/readers[rule 0]': { permissions: [{ or_rules: { rules: [method('GET'), method('HEAD')] } }], principals: [{ any: true }] },
        'demo/writers[rule 0]': { permissions: [{ and_rules: { rules: [method('POST'), { url_path: { path: { exact: '/orders' } } }] } }], principals: [{ authenticated: { principal_name: { suffix: '/sa/frontend' } } }] },
      }),
    ];
    p = await startProxy({
      listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ name: 'app', match: { prefix: '/' }, route: { cluster: 'app' } }]) }, { filters })],
      clusters: [staticCluster('app', [app.port])],
    });
  });
  afterAll(async () => {
    await p.stop(100);
    await app.close();
  });

  // method, path, status, x-octo-rbac-policy
  it.each<[string, string, number, string | undefined]>([
    ['GET', '/products?page=2', 200, undefined],
    ['HEAD', '/products', 200, undefined],
    ['POST', '/orders', 403, undefined],
    ['GET', '/admin/users', 403, 'demo/lockdown[rule 0]'],
    ['DELETE', '/products/1', 403, 'demo/lockdown[rule 1]'],
  ])('%s %s → %d', async (m, path, status, policy) => {
    const before = app.hits;
    const r = await request(p.port, { method: m, path });
    expect(r.status).toBe(status);
    if (status === 403) {
      expect(m === 'HEAD' ? '' : r.body).toBe('RBAC: access denied\n');
      expect(r.headers['x-octo-reason']).toBe('rbac-denied');
      expect(r.headers['x-octo-rbac-policy']).toBe(policy);
      // A denied request never reaches the application.
      expect(app.hits).toBe(before);
    } else expect(app.hits).toBe(before + 1);
  });

  it('counts decisions by listener and policy', async () => {
    const denied = await counter(p, 'octo_proxy_rbac_denied_total', { listener: 'outbound', policy: 'demo/lockdown[rule 0]' });
    const deniedNoAllow = await counter(p, 'octo_proxy_rbac_denied_total', { listener: 'outbound', policy: '' });
    const allowed = await counter(p, 'octo_proxy_rbac_allowed_total', { listener: 'outbound', policy: 'demo/readers[rule 0]' });
    await request(p.port, { path: '/admin' });
    await request(p.port, { method: 'PUT', path: '/x' });
    await request(p.port, { path: '/x' });
    expect(await counter(p, 'octo_proxy_rbac_denied_total', { listener: 'outbound', policy: 'demo/lockdown[rule 0]' })).toBe(denied + 1);
    expect(await counter(p, 'octo_proxy_rbac_denied_total', { listener: 'outbound', policy: '' })).toBe(deniedNoAllow + 1);
    expect(await counter(p, 'octo_proxy_rbac_allowed_total', { listener: 'outbound', policy: 'demo/readers[rule 0]' })).toBe(allowed + 1);
  });

  it('answers a denied gRPC call with PERMISSION_DENIED over HTTP/2', async () => {
    const session = http2.connect(`http://127.0.0.1:${p.port}`);
    try {
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/shop.Orders/Create', ':authority': 'svc', 'content-type': 'application/grpc' });
        s.on('response', (h) => resolve(h));
        s.on('error', reject);
        s.end();
      });
      expect(headers['grpc-status']).toBe('7');
      expect(headers['x-octo-reason']).toBe('rbac-denied');
    } finally {
      session.close();
    }
  });
});

describe('RBAC filter configuration', () => {
  it('refuses a listener whose RBAC filter uses an unsupported field, naming it', async () => {
    const bad = rbacFilter('ALLOW', { p: { permissions: [{ destination_port: 8080 }], principals: [{ any: true }] } });
    await expect(startProxy({ listeners: [httpListener('outbound', { route_config: routeConfig('r', []) }, { filters: [bad] })], clusters: [] })).rejects.toThrow(
      /http_filters\[0\]\.typed_config\.rules\.policies\["p"\]\.permissions\[0\]\.destination_port: not implemented/,
    );
  });
});
