// The meta server executable over mTLS (issue 21): a client that reaches its port cannot
// register a pilot without a pilot's certificate from the mesh CA — the attack where a fake
// pilot was handed new workloads — and its admin port (`--admin-mtls`) answers probes and metrics
// to anyone but debug reads only to an administrator or the operator. Certificates come from
// openssl (packages/testing), not from the CA under test; handshakes, the access interceptor and
// the server are all real.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { MetaAdminClient, PilotAdminClient, meshChannelCredentials, readMeshTlsMaterial, type MeshTls } from '@octo-mesh/clients';
import { MetaServerClient, ServiceRegistryClient } from '@octo-mesh/proto';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/meta-server/dist/main.js');
const TD = 'spiffe://cluster.local';
const dir = mkdtempSync(join(tmpdir(), 'octo-meta-mtls-'));
const pki = meshTestPki(join(dir, 'pki'));
const tlsOf = (certDir: string): MeshTls => ({ certDir });

let child: ReturnType<typeof spawn>;
let out = '';
let grpcPort = 0;
let adminPort = 0;

/** GET on the admin port over TLS, with a client certificate from `certDir` or none; the server's certificate is not checked here. */
function admin(path: string, certDir?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const m = certDir ? readMeshTlsMaterial(tlsOf(certDir)) : {};
    get({ host: '127.0.0.1', port: adminPort, path, ...m, servername: 'octo-mesh', rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

type Call<Req, Res> = (req: Req, cb: (err: ServiceError | null, res?: Res) => void) => unknown;
const call = <Req, Res>(fn: Call<Req, Res>, req: Req) =>
  new Promise<{ ok: true; res: Res } | { ok: false; code: number; details: string }>((resolve) =>
    fn(req, (err, res) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, res: res as Res })),
  );

function meta(creds: ReturnType<typeof credentials.createInsecure>) {
  const c = new MetaServerClient(`127.0.0.1:${grpcPort}`, creds, { 'grpc.initial_reconnect_backoff_ms': 100 });
  const deadline = () => ({ deadline: Date.now() + 10_000 });
  return {
    register: (pilotId: string) => call((r, cb) => c.registerPilot(r, new Metadata(), deadline(), cb), { pilotId, xdsAddress: '10.9.9.9:15010', adminAddress: '', zone: '' }),
    locate: (workload: string) => call((r, cb) => c.locate(r, new Metadata(), deadline(), cb), { nodeId: `n-${workload}`, namespace: 'default', workload, unreachablePilotId: '' }),
    close: () => c.close(),
  };
}

beforeAll(async () => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/meta-server'], { cwd: ROOT });
  const server = pki.issue('meta', `${TD}/ns/octo-system/sa/octo-meta-server`);
  child = spawn(process.execPath, [MAIN, '--grpc-port', '0', '--admin-port', '0', '--tls-dir', server, '--admin-mtls', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  for (let i = 0; i < 400 && !grpcPort; i++) {
    const line = out.split('\n').find((l) => l.includes('"listening"'));
    if (line) ({ grpcPort, adminPort } = JSON.parse(line) as { grpcPort: number; adminPort: number });
    else await new Promise((r) => setTimeout(r, 50));
  }
  expect(out).toContain('"mtls":true');
}, 120_000);

afterAll(async () => {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
});

describe('meta server over mTLS', () => {
  it('refuses a pilot registration from plaintext, a workload identity and a foreign root; accepts a pilot certificate', async () => {
    const plain = meta(credentials.createInsecure());
    const r1 = await plain.register('fake');
    expect(r1).toMatchObject({ ok: false, code: 14 }); // no TLS handshake: unreachable, nothing registered
    plain.close();

    const workload = meta(meshChannelCredentials(tlsOf(pki.issue('reviews', `${TD}/ns/default/sa/reviews`)), 'meta-server'));
    const r2 = await workload.register('fake');
    expect(r2).toMatchObject({ ok: false, code: 7 });
    if (!r2.ok) expect(r2.details).toMatch(/RegisterPilot is for .*sa\/octo-pilot; spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews may not call it/);
    // …while Locate is for every mesh identity: answered (no pilot yet), not refused.
    expect(await workload.locate('frontend')).toMatchObject({ ok: false, code: 14, details: 'no live pilot' });

    const foreign = pki.foreign();
    const impostor = meta(meshChannelCredentials(tlsOf(foreign.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`)), 'meta-server'));
    const r3 = await impostor.register('fake');
    expect(r3).toMatchObject({ ok: false, code: 14 }); // a certificate from another root fails the handshake
    impostor.close();

    const pilot = meta(meshChannelCredentials(tlsOf(pki.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`)), 'meta-server'));
    expect(await pilot.register('pilot-a')).toMatchObject({ ok: true });
    expect(await workload.locate('frontend')).toMatchObject({ ok: true, res: { pilotId: 'pilot-a' } });
    pilot.close();
    workload.close();

    const metrics = (await admin('/metrics')).body;
    expect(metrics).toMatch(/octo_grpc_access_denied_total\{method="\/octo.mesh.v1.MetaServer\/RegisterPilot",code="permission-denied"\} 1/);
    expect(out).toMatch(/"message":"gRPC call refused".*RegisterPilot/);
  }, 60_000);

  it('lets a workload register instances in its own namespace only', async () => {
    const c = new ServiceRegistryClient(`127.0.0.1:${grpcPort}`, meshChannelCredentials(tlsOf(pki.issue('legacy', `${TD}/ns/shop/sa/legacy`)), 'meta-server'));
    const reg = (namespace: string) =>
      call((r, cb) => c.register(r, new Metadata(), { deadline: Date.now() + 10_000 }, cb), { namespace, service: 'legacy', instanceId: 'i1', address: '10.0.0.5', port: 8080, labels: {}, region: '', workload: '', servicePort: 0, zone: '', ttlMs: 0 });
    expect(await reg('shop')).toMatchObject({ ok: true });
    const other = await reg('payments');
    expect(other).toMatchObject({ ok: false, code: 7 });
    if (!other.ok) expect(other.details).toContain('may not register instances in namespace payments');
    c.close();
  }, 60_000);

  it('serves probes and metrics to anyone over TLS, debug reads only to an administrator or the operator', async () => {
    // Probes and Prometheus present no mesh certificate.
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await admin(path)).status).toBe(200);
    // Plain HTTP to the admin port gets no answer from it.
    await expect(fetch(`http://127.0.0.1:${adminPort}/debug/pilots`, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow();

    const anonymous = await admin('/debug/pilots');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toContain('GET /debug/pilots requires a client certificate from the mesh CA');
    const workload = await admin('/debug/pilots', pki.issue('reviews-admin', `${TD}/ns/default/sa/reviews`));
    expect(workload.status).toBe(403);
    expect(workload.body).toMatch(/GET \/debug\/pilots is for ns\/octo-system\/sa\/octo-admin, ns\/octo-system\/sa\/octo-operator; spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews may not call it/);
    expect((await admin('/debug/pilots', pki.issue('pilot-admin', `${TD}/ns/octo-system/sa/octo-pilot`))).status).toBe(403);
    // An administrator's certificate from another root is not verified: as good as none.
    const foreign = await admin('/debug/pilots', pki.foreign().issue('admin', `${TD}/ns/octo-system/sa/octo-admin`));
    expect(foreign.status).toBe(401);
    expect(foreign.body).toMatch(/requires a client certificate from the mesh CA \(\w+/);
    // Unknown paths are refused before anything is said about them.
    expect((await admin('/debug/nothing-here')).status).toBe(401);

    // The typed clients over mTLS, checking the server's identity: an administrator and the operator read it…
    for (const role of ['admin', 'operator']) {
      const pilots = await new MetaAdminClient(`127.0.0.1:${adminPort}`, { tls: tlsOf(pki.issue(`${role}-client`, `${TD}/ns/octo-system/sa/octo-${role}`)) }).pilots();
      expect(Array.isArray(pilots)).toBe(true);
    }
    // …and a client that expects a pilot there refuses the meta server's certificate.
    await expect(new PilotAdminClient(`127.0.0.1:${adminPort}`, { tls: tlsOf(pki.issue('admin-client2', `${TD}/ns/octo-system/sa/octo-admin`)) }).syncz()).rejects.toThrow(
      /the server's identity is spiffe:\/\/cluster.local\/ns\/octo-system\/sa\/octo-meta-server, expected spiffe:\/\/cluster.local\/ns\/octo-system\/sa\/octo-pilot/,
    );

    const metrics = (await admin('/metrics')).body;
    expect(metrics).toMatch(/octo_admin_access_denied_total\{code="unauthenticated"\} [3-9]/);
    expect(metrics).toMatch(/octo_admin_access_denied_total\{code="permission-denied"\} 2/);
    expect(out).toMatch(/"message":"admin request refused".*\/debug\/pilots/);
  }, 60_000);

  it('checks the server too: a client expecting the meta server refuses a server with another identity', async () => {
    // The client asks for the dispatcher's identity; the server proves the meta server's.
    const c = new MetaServerClient(`127.0.0.1:${grpcPort}`, meshChannelCredentials(tlsOf(pki.issue('pilot2', `${TD}/ns/octo-system/sa/octo-pilot`)), 'dispatcher'));
    const r = await call((req, cb) => c.locate(req, new Metadata(), { deadline: Date.now() + 10_000 }, cb), { nodeId: 'x', namespace: 'default', workload: 'w', unreachablePilotId: '' });
    expect(r).toMatchObject({ ok: false, code: 14 });
    c.close();
  }, 60_000);
});
