import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AuthorizationPolicy, Endpoint, Service } from '@octo-mesh/api';
import { TYPE_URL } from '@octo-mesh/proto';
import { createLogger } from '@octo-mesh/runtime';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, startSidecar, stopChild, until } from './test-support/sidecar.js';

// Issue 21, the fail-open gap: a sidecar enforced the policies of `<namespace>/<workload>` only,
// so a Service named unlike its workload (catalog-api, whose endpoints are the pods of workload
// catalog) had no enforcement at all. Here one application, its sidecar (workload catalog) and
// two services it backs, catalog and catalog-api, with a real pilot over mTLS and real OCTO
// proxies (built executables, as child processes) with certificates from an openssl-made mesh PKI.
// Callers frontend and batch reach both services through their own sidecars, by Host.

const TD = 'spiffe://cluster.local';
const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** Adds the SDS files a rotator writes beside the PEM files (packages/identity/README.md). */
function withSdsFiles(dir: string): string {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  writeFileSync(
    join(dir, 'default.json'),
    JSON.stringify({ version_info: '1', resources: [{ '@type': SECRET, name: 'default', tls_certificate: { certificate_chain: { inline_string: read('cert-chain.pem') }, private_key: { inline_string: read('key.pem') } } }] }),
  );
  writeFileSync(join(dir, 'ROOTCA.json'), JSON.stringify({ version_info: '1', resources: [{ '@type': SECRET, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: read('root-cert.pem') } } }] }));
  return dir;
}

interface Reply {
  status: number;
  body: string;
  reason?: string;
  policy?: string;
}

function get(port: number, host: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
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

const authz = (name: string, spec: Record<string, unknown>): AuthorizationPolicy =>
  ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'demo', generation: 1 }, spec }) as AuthorizationPolicy;
const service = (name: string): Service => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
const DENIED = { status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied' };

describe('AuthorizationPolicy of every service a workload backs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-authz-backed-'));
  const pki = meshTestPki(join(dir, 'pki'));
  const source = new MemoryMeshSource();
  let app: Server;
  let appHits = 0;
  let pilot: RunningPilot;
  let endpoint: Endpoint;
  const children: ChildProcess[] = [];
  const outbound: Record<string, number> = {};
  const admins: Record<string, number> = {};
  const call = (from: 'frontend' | 'batch', host: string, path: string) => get(outbound[from]!, host, path);

  beforeAll(async () => {
    buildProxy();
    app = await new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        appHits++;
        req.resume();
        res.end(`catalog app: ${req.headers.host}`);
      });
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
    const logger = createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
    const tlsDir = pki.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`);
    const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', debounceQuietMs: 20, debounceMaxMs: 100, shutdownGraceSeconds: 0.2, tlsDir, xdsMtls: 'true', mtlsMode: 'strict' });
    pilot = await startPilot(config, logger, source);
    const sidecar = async (workload: string, args: string[]) => {
      const certDir = withSdsFiles(pki.issue(workload, `${TD}/ns/demo/sa/${workload}`));
      const s = await startSidecar(pilot.xdsPort, { nodeId: `${workload}-0`, workload, args: ['--tls-dir', certDir, ...args] });
      children.push(s.child);
      admins[workload] = s.started.adminPort;
      return s.started;
    };
    const catalog = await sidecar('catalog', ['--app-port', String((app.address() as AddressInfo).port)]);
    const inbound = Number(catalog.listeners.find((l) => l.name === 'inbound')!.address.split(':').pop());
    // The endpoints of both services are the catalog workload's one instance, as an EndpointSlice's pod gives them.
    endpoint = { address: '127.0.0.1', port: inbound, labels: { app: 'catalog' }, healthy: true, instance: 'catalog-0', workload: 'demo/catalog' };
    source.upsertService(service('catalog'), [endpoint]);
    source.upsertService(service('catalog-api'), [endpoint]);
    for (const w of ['frontend', 'batch']) {
      const s = await sidecar(w, ['--dependencies', 'catalog,catalog-api,catalog-v2']);
      outbound[w] = Number(s.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
    }
  }, 90_000);

  afterAll(async () => {
    for (const c of children) await stopChild(c);
    await pilot?.stop();
    app?.close();
  });

  it('carries both callers to both services of the workload before any policy', async () => {
    for (const [w, port] of Object.entries(admins))
      await until(`${w}'s sidecar connected to pilot`, async () => (((await (await fetch(`http://127.0.0.1:${port}/config_dump`)).json()) as { xds?: { connected?: boolean } }).xds?.connected ? true : undefined), 30_000);
    for (const w of ['frontend', 'batch'] as const)
      for (const host of ['catalog', 'catalog-api']) await until(`${w} reaching ${host}`, async () => ((await call(w, host, '/items')).status === 200 ? true : undefined), 30_000);
  }, 90_000);

  it('enforces a DENY policy of catalog-api on the sidecar of workload catalog: 403 with the reason and the policy', async () => {
    source.applyAuthorizationPolicy(authz('api-no-batch-admin', { service: 'catalog-api', action: 'DENY', rules: [{ from: [{ serviceAccounts: ['demo/batch'] }], to: [{ paths: ['/admin*'] }] }] }));
    await until('batch denied on catalog-api', async () => ((await call('batch', 'catalog-api', '/admin/users')).status === 403 ? true : undefined), 30_000);
    const hits = appHits;
    expect(await call('batch', 'catalog-api', '/admin/users')).toEqual({ ...DENIED, policy: 'demo/api-no-batch-admin[rule 0]' });
    // Workload-wide, as Istio's: naming the other service of the same pods does not get around it.
    expect(await call('batch', 'catalog', '/admin/users')).toEqual({ ...DENIED, policy: 'demo/api-no-batch-admin[rule 0]' });
    expect(appHits).toBe(hits);
    expect(await call('batch', 'catalog-api', '/items')).toEqual({ status: 200, body: 'catalog app: catalog-api' });
    expect(await call('frontend', 'catalog-api', '/admin/users')).toEqual({ status: 200, body: 'catalog app: catalog-api' });
  }, 60_000);

  it('applies each service\'s ALLOW policies to requests naming it: the other service is unaffected when its policy allows', async () => {
    source.applyAuthorizationPolicy(authz('api-frontend-only', { service: 'catalog-api', rules: [{ from: [{ serviceAccounts: ['demo/frontend'] }] }] }));
    source.applyAuthorizationPolicy(authz('catalog-demo', { service: 'catalog', rules: [{ from: [{ namespaces: ['demo'] }] }] }));
    await until('batch denied on catalog-api /items', async () => ((await call('batch', 'catalog-api', '/items')).status === 403 ? true : undefined), 30_000);
    const hits = appHits;
    expect(await call('batch', 'catalog-api', '/items')).toEqual(DENIED);
    expect(appHits).toBe(hits);
    expect(await call('batch', 'catalog', '/items')).toEqual({ status: 200, body: 'catalog app: catalog' });
    expect(await call('frontend', 'catalog-api', '/items')).toEqual({ status: 200, body: 'catalog app: catalog-api' });
    expect(await call('frontend', 'catalog', '/items')).toEqual({ status: 200, body: 'catalog app: catalog' });
  }, 60_000);

  it('pushes the RBAC of a service the workload starts backing to its sidecar only, when the endpoints say so', async () => {
    source.applyAuthorizationPolicy(authz('v2-no-batch', { service: 'catalog-v2', action: 'DENY', rules: [{ from: [{ serviceAccounts: ['demo/batch'] }] }] }));
    const listenerVersion = (node: string) => pilot.pilot.cache.getSnapshot(node)?.version(TYPE_URL.listener);
    const before = { catalog: listenerVersion('catalog-0'), frontend: listenerVersion('frontend-0'), batch: listenerVersion('batch-0') };
    // catalog-v2 exists but is backed by nobody yet: its policy guards nothing here.
    source.upsertService(service('catalog-v2'), []);
    await pilot.pilot.idle();
    expect(await call('batch', 'catalog', '/items')).toEqual({ status: 200, body: 'catalog app: catalog' });
    source.setEndpoints('demo/catalog-v2', [endpoint]);
    await until('batch denied on catalog', async () => ((await call('batch', 'catalog', '/items')).status === 403 ? true : undefined), 30_000);
    expect(await call('batch', 'catalog', '/items')).toEqual({ ...DENIED, policy: 'demo/v2-no-batch[rule 0]' });
    expect(await call('frontend', 'catalog', '/items')).toEqual({ status: 200, body: 'catalog app: catalog' });
    expect(listenerVersion('catalog-0')).not.toBe(before.catalog);
    // The callers' listeners did not change (catalog-v2 is an HTTP dependency: its routes and clusters did).
    expect({ frontend: listenerVersion('frontend-0'), batch: listenerVersion('batch-0') }).toEqual({ frontend: before.frontend, batch: before.batch });
    const pilotz = (await (await fetch(`http://127.0.0.1:${pilot.admin.port}/debug/pilotz`)).json()) as { nodes: { id: string; guards?: string[] }[] };
    expect(pilotz.nodes.find((n) => n.id === 'catalog-0')?.guards).toEqual(['demo/catalog', 'demo/catalog-api', 'demo/catalog-v2']);
    // And it stops when the endpoints no longer name the workload.
    source.setEndpoints('demo/catalog-v2', []);
    await until('batch allowed on catalog again', async () => ((await call('batch', 'catalog', '/items')).status === 200 ? true : undefined), 30_000);
  }, 60_000);
});
