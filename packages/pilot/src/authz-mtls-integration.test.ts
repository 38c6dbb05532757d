import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AuthorizationPolicy } from '@octo-mesh/api';
import { createLogger } from '@octo-mesh/runtime';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, startSidecar, stopChild, until } from './test-support/sidecar.js';

// Issue 21 end to end: an AuthorizationPolicy from the mesh source, a real pilot serving ADS over
// mTLS and configuring the data plane's mTLS, and three real OCTO proxies (built executables, as
// child processes), each with a certificate from an openssl-made mesh PKI: the catalog's sidecar
// enforces the policy on the SPIFFE ID its callers' sidecars present. frontend may call catalog;
// batch, in the same namespace with another service account, gets 403 from catalog's sidecar.

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

function get(port: number, path: string): Promise<{ status: number; body: string; reason?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'catalog' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers['x-octo-reason'] ? { reason: String(res.headers['x-octo-reason']) } : {}) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('AuthorizationPolicy on mTLS identities, pilot to proxies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-authz-mtls-'));
  const pki = meshTestPki(join(dir, 'pki'));
  const source = new MemoryMeshSource();
  let app: Server;
  let appHits = 0;
  let pilot: RunningPilot;
  const children: ChildProcess[] = [];
  const outbound: Record<string, number> = {};
  const admins: Record<string, number> = {};

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
    const logger = createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
    const tlsDir = pki.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`);
    const config = pilotConfig.parse({
      xdsPort: 0,
      adminPort: 0,
      xdsHost: '127.0.0.1',
      adminHost: '127.0.0.1',
      debounceQuietMs: 20,
      debounceMaxMs: 100,
      shutdownGraceSeconds: 0.2,
      tlsDir,
      xdsMtls: 'true',
      mtlsMode: 'strict',
    });
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
    source.upsertService(
      { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } },
      [{ address: '127.0.0.1', port: inbound, labels: {}, healthy: true }],
    );
    for (const w of ['frontend', 'batch']) {
      const s = await sidecar(w, ['--dependencies', 'catalog']);
      outbound[w] = Number(s.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
    }
  }, 90_000);

  afterAll(async () => {
    for (const c of children) await stopChild(c);
    await pilot?.stop();
    app?.close();
  });

  it('connects every sidecar to pilot over mTLS and carries both callers to catalog over mTLS before any policy', async () => {
    for (const [w, port] of Object.entries(admins))
      await until(`${w}'s sidecar connected to pilot`, async () => (((await (await fetch(`http://127.0.0.1:${port}/config_dump`)).json()) as { xds?: { connected?: boolean } }).xds?.connected ? true : undefined), 30_000);
    for (const w of ['frontend', 'batch']) await until(`${w} reaching catalog`, async () => ((await get(outbound[w]!, '/items')).status === 200 ? true : undefined), 30_000);
  }, 90_000);

  it('lets only the service account the ALLOW policy names through; the other gets 403 from the callee', async () => {
    source.applyAuthorizationPolicy({
      apiVersion: 'mesh.octo.io/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'catalog-callers', namespace: 'demo', generation: 1 },
      spec: { service: 'catalog', action: 'ALLOW', rules: [{ from: [{ serviceAccounts: ['demo/frontend'] }] }] },
    } as AuthorizationPolicy);
    await until('batch denied', async () => ((await get(outbound['batch']!, '/items')).status === 403 ? true : undefined), 30_000);
    const hits = appHits;
    expect(await get(outbound['batch']!, '/items')).toEqual({ status: 403, body: 'RBAC: access denied\n', reason: 'rbac-denied' });
    expect(appHits).toBe(hits);
    expect(await get(outbound['frontend']!, '/items')).toEqual({ status: 200, body: 'catalog' });
    expect(appHits).toBe(hits + 1);
  }, 60_000);
});
