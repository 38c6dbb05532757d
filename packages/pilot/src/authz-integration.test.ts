import type { ChildProcess } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AuthorizationPolicy } from '@octo-mesh/api';
import type { PilotAuthorizationPolicyView } from '@octo-mesh/contracts';
import type { RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, quietPilot, startSidecar, stopChild, until } from './test-support/sidecar.js';

// AuthorizationPolicy from the mesh source through a real pilot to the real OCTO proxy (its
// built executable, as a child process) in front of an application: the callee's inbound
// listener gets the RBAC filters and answers 403 itself. Callers here are plaintext (no
// certificate, so no identity); the identity-based cases run with mTLS in the proxy's suites.

function call(port: number, method: string, path: string): Promise<{ status: number; body: string; reason?: string; policy?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: 'catalog' }, agent: false }, (res) => {
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
    req.end();
  });
}

const authz = (name: string, generation: number, spec: Record<string, unknown>): AuthorizationPolicy =>
  ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'demo', generation }, spec }) as AuthorizationPolicy;

describe('AuthorizationPolicy through pilot to the real proxy', () => {
  let app: Server;
  let appHits = 0;
  let pilot: RunningPilot;
  let proxy: ChildProcess;
  let inbound = 0;
  const source = new MemoryMeshSource();

  beforeAll(async () => {
    buildProxy();
    app = await new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        appHits++;
        req.resume();
        res.end('catalog');
      });
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
    source.upsertService({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } }, []);
    pilot = await quietPilot(source);
    // The catalog instance's sidecar: its workload is the service, its app behind --app-port.
    const sidecar = await startSidecar(pilot.xdsPort, { nodeId: 'catalog-0', workload: 'catalog', args: ['--app-port', String((app.address() as AddressInfo).port)] });
    proxy = sidecar.child;
    inbound = Number(sidecar.started.listeners.find((l) => l.name === 'inbound')!.address.split(':').pop());
  }, 60_000);

  afterAll(async () => {
    await stopChild(proxy);
    await pilot?.stop();
    app?.close();
  });

  it('lets every caller through before any policy', async () => {
    const r = await until('the inbound listener serving', async () => {
      const x = await call(inbound, 'GET', '/items');
      return x.status === 200 ? x : undefined;
    });
    expect(r.body).toBe('catalog');
    expect((await call(inbound, 'POST', '/items')).status).toBe(200);
  });

  it('enforces an ALLOW policy on methods (any source) and a DENY policy on a path', async () => {
    source.applyAuthorizationPolicy(authz('readers', 1, { service: 'catalog', rules: [{ to: [{ methods: ['GET', 'HEAD'] }] }] }));
    source.applyAuthorizationPolicy(authz('no-admin', 1, { service: 'catalog', action: 'DENY', rules: [{ to: [{ paths: ['/admin*'] }] }] }));
    await until('POST denied', async () => ((await call(inbound, 'POST', '/items')).status === 403 ? true : undefined));
    const hits = appHits;
    expect(await call(inbound, 'POST', '/items')).toEqual({ status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied' });
    expect(await call(inbound, 'GET', '/admin/users')).toEqual({ status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied', policy: 'demo/no-admin[rule 0]' });
    expect(appHits).toBe(hits);
    expect(await call(inbound, 'GET', '/items')).toMatchObject({ status: 200, body: 'catalog' });
  });

  it('denies a plaintext caller once the ALLOW policy names identities', async () => {
    source.applyAuthorizationPolicy(authz('readers', 2, { service: 'catalog', rules: [{ from: [{ namespaces: ['demo'] }], to: [{ methods: ['GET'] }] }] }));
    await until('GET denied', async () => ((await call(inbound, 'GET', '/items')).status === 403 ? true : undefined));
    expect(await call(inbound, 'GET', '/items')).toEqual({ status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied' });
  });

  it('reports each policy accepted and ACKed by the catalog sidecar, and an invalid one rejected', async () => {
    source.applyAuthorizationPolicy(authz('broken', 3, { service: 'catalog', rules: [{ from: [{ serviceAccounts: ['no-namespace'] }] }] }));
    const admin = `http://127.0.0.1:${pilot.admin.port}`;
    const views = await until('statuses with the ACKs', async () => {
      const v = (await (await fetch(`${admin}/debug/authorizationpolicyz`)).json()) as PilotAuthorizationPolicyView[];
      const readers = v.find((x) => x.policy === 'demo/readers');
      return v.length === 3 && readers?.status.sidecars?.acked === 1 && readers.status.observedGeneration === 2 ? v : undefined;
    });
    const by = Object.fromEntries(views.map((v) => [v.policy, v]));
    expect(by['demo/readers']).toMatchObject({ target: 'demo/catalog', status: { accepted: true, sidecars: { total: 1, acked: 1, nacked: 0 } } });
    expect(by['demo/no-admin']).toMatchObject({ status: { accepted: true, observedGeneration: 1, sidecars: { total: 1, acked: 1 } } });
    expect(by['demo/broken']!.status).toMatchObject({ accepted: false, observedGeneration: 3, sidecars: { total: 1, acked: 0 } });
    expect(by['demo/broken']!.status.conditions?.[0]?.message).toContain('spec.rules[0].from[0].serviceAccounts[0]: must be <namespace>/<service account>');
  });

  it('lets everyone through again once the policies are deleted', async () => {
    for (const n of ['readers', 'no-admin', 'broken']) source.deleteAuthorizationPolicy('demo', n);
    await until('POST allowed', async () => ((await call(inbound, 'POST', '/admin')).status === 200 ? true : undefined));
    expect((await call(inbound, 'DELETE', '/items')).status).toBe(200);
  });
});
