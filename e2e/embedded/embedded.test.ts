// The embedded mesh end to end, as `npm start` runs it but on free ports: every component is a
// real child process (dispatcher, meta server, two pilots, four octo-proxy sidecars, four demo
// apps) and traffic flows load generator → frontend sidecar → frontend → its sidecar → catalog /
// ratings sidecars → apps (frontend and ratings on Unix sockets to their sidecars, catalog on TCP). We apply an 80/20 split with octoctl, measure it over 2,000 requests,
// then SIGKILL the pilot that serves frontend and require its sidecars to be re-homed within
// 10 s, the pilot restarted by the supervisor, and no failed request.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { DispatcherConnection, MESH_CHANNEL_OPTIONS, meshChannelCredentials } from '@octo-mesh/clients';
import { MetaServerClient } from '@octo-mesh/proto';
import { waitFor } from '@octo-mesh/runtime';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'octo-embedded-e2e-'));
const manifests = join(work, 'manifests');
const stateDir = join(work, 'state');

interface State {
  meta: { admin: string; grpc: string };
  dispatcher: { grpc: string };
  pilots: { id: string; pid: number }[];
  sidecars: { nodeId: string }[];
  runner: { admin: string };
}
interface Traffic {
  requests: number;
  failures: number;
  failureReasons: Record<string, number>;
  totals: Record<string, number>;
  /** nodeId → the pilot it is connected to (the meta server's view). */
  pilots: Record<string, string>;
}

let runner: ChildProcess | undefined;
let state: State;
let output = '';

const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url, { signal: AbortSignal.timeout(5000) })).json()) as T;
const frontendAdmin = () => (state as unknown as { sidecars: { nodeId: string; admin: string }[] }).sidecars.find((s) => s.nodeId === 'frontend-v1-0.demo')!.admin;

/**
 * The demo's 500 ms per-try timeout is a latency budget a 2-core machine at load 10-20 does not
 * keep: at times every process stalls 1-1.5 s, and catalog calls fail with 504
 * upstream-per-try-timeout while ratings (no timeout) answers in the same 1.5 s. The policies
 * these tests write keep the budget within the demo app's own 3 s, so a failed request is the
 * mesh failing, not the machine being slow.
 */
const underLoad = (yaml: string) => yaml.replace('timeout: 2s', 'timeout: 2800ms').replace('perTryTimeout: 500ms', 'perTryTimeout: 1400ms');
const traffic = () => getJson<Traffic>(`http://${state.runner.admin}/traffic`);

const until = <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs: number): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs, intervalMs: 100, retryErrors: true, detail: () => `runner output:\n${output.slice(-3000)}` });

const splitSince = (now: Traffic, before: Traffic) => {
  const d = (k: string) => (now.totals[k] ?? 0) - (before.totals[k] ?? 0);
  const v1 = d('catalog/v1');
  const v2 = d('catalog/v2');
  return { v1, v2, share: v1 / (v1 + v2) };
};

beforeAll(async () => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/mesh', 'packages/octoctl'], { cwd: ROOT, stdio: 'inherit' });
  cpSync(join(ROOT, 'examples/embedded'), manifests, { recursive: true });
  writeFileSync(join(manifests, 'catalog.yaml'), underLoad(readFileSync(join(manifests, 'catalog.yaml'), 'utf8')));
  runner = spawn(process.execPath, [join(ROOT, 'packages/mesh/dist/main.js'), '--ports', 'auto', '--quiet', 'true', '--rps', '200', '--state-dir', stateDir, '--manifests', manifests, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  runner.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  runner.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  state = await until(async () => JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as State, () => true, 'the state file', 90_000);
  await until(traffic, (t) => t.requests > 50, 'traffic through the mesh', 30_000);
}, 180_000);

afterAll(async () => {
  if (runner && runner.exitCode === null) {
    const exited = new Promise((r) => runner!.once('exit', r));
    runner.kill('SIGTERM');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
}, 30_000);

describe('embedded mesh', () => {
  it('refuses a bad setting with a message naming the field', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'packages/mesh/dist/main.js'), '--ports', 'some'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('ports');
    expect(r.stderr).toContain('flag --ports');
  });

  it('follows an 80/20 split applied with octoctl within ±3% over 2,000 requests', async () => {
    const policy = join(work, 'catalog-80-20.yaml');
    writeFileSync(policy, underLoad(readFileSync(join(manifests, 'catalog.yaml'), 'utf8').replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20')));
    const applied = spawnSync(process.execPath, [join(ROOT, 'packages/octoctl/dist/main.js'), 'apply', '-f', policy, '--state', join(stateDir, 'state.json')], { encoding: 'utf8' });
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toMatch(/routepolicy\/demo\/catalog applied/);
    await new Promise((r) => setTimeout(r, 1500)); // propagation: dispatcher → pilot → sidecar
    const before = await traffic();
    const after = await until(traffic, (t) => splitSince(t, before).v1 + splitSince(t, before).v2 >= 2000, '2,000 catalog calls', 90_000);
    const split = splitSince(after, before);
    process.stdout.write(`80/20 split measured over ${split.v1 + split.v2} catalog calls: v1 ${(100 * split.share).toFixed(1)}%\n`);
    expect(split.v1 + split.v2).toBeGreaterThanOrEqual(2000);
    expect(Math.abs(split.share - 0.8)).toBeLessThanOrEqual(0.03);
    expect(after.failureReasons).toEqual({});
    expect(after.failures).toBe(0);
  }, 120_000);

  it('follows an edit of the watched RoutePolicy file within a second (a few under heavy load)', async () => {
    const file = join(manifests, 'catalog.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, underLoad(text.replace('weight: 90', 'weight: 0').replace('weight: 10', 'weight: 100')));
    const edited = Date.now();
    // The file is the dispatcher's (directory source), and the octoctl-applied policy of the
    // previous test is octoctl's until the file changes: this edit is a new write, and wins.
    // Propagated when frontend's sidecar routes catalog to v2 only (its config dump says so).
    await until(
      async () => JSON.stringify(await getJson<unknown>(`http://${frontendAdmin()}/config_dump`)),
      (dump) => dump.includes('{"cluster":"outbound|8080|v2|catalog.demo.svc","weight":100}') && !dump.includes('{"cluster":"outbound|8080|v1|catalog.demo.svc","weight":80}'),
      'the edit in frontend’s sidecar',
      20_000,
    );
    const propagatedMs = Date.now() - edited;
    process.stdout.write(`file edit in force in frontend's sidecar ${propagatedMs} ms after the save\n`);
    expect(propagatedMs).toBeLessThan(5000); // ~1 s on a quiet machine; headroom for load 10-20
    // Calls that left frontend before the edit reached its sidecar may still be on their way to v1
    // (under load a request takes up to ~1.5 s): frontend gives each call 3 s at most.
    await new Promise((r) => setTimeout(r, 3000));
    const before = await traffic();
    const after = await until(traffic, (t) => t.requests - before.requests >= 400, '400 requests', 20_000);
    const split = splitSince(after, before);
    process.stdout.write(`after editing the file to 0/100: ${split.v1} v1 and ${split.v2} v2 calls once the edit was in force\n`);
    expect(split.v1).toBe(0);
    expect(split.v2).toBeGreaterThanOrEqual(400);
    expect(after.failureReasons).toEqual({});
    expect(after.failures).toBe(0);
  }, 60_000);

  it('re-homes every sidecar within 10 s when the pilot serving frontend is killed, with no failed request', async () => {
    // Every sidecar found its pilot through the meta server's Locate; kill frontend's.
    const located = await until(
      () => getJson<{ nodeId: string; pilot: string; connectedTo?: string }[]>(`http://${state.meta.admin}/debug/sidecars`),
      (rows) => rows.length === state.sidecars.length && rows.every((s) => s.connectedTo !== undefined && s.connectedTo === s.pilot),
      'every sidecar connected to the pilot the meta server named',
      10_000,
    );
    const victimId = located.find((s) => s.nodeId === 'frontend-v1-0.demo')?.connectedTo;
    const victim = state.pilots.find((p) => p.id === victimId)!;
    const survivor = state.pilots.find((p) => p.id !== victimId)!;
    expect(victim).toBeDefined();
    const before = await traffic();
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    // The victim's sidecars go to the survivor at once; the supervisor restarts the victim (as
    // Kubernetes would), and the meta server may then move workloads back to it, a few a second.
    // Either way: every sidecar connected to the pilot the meta server assigns it, and in sync.
    await until(
      () => getJson<{ nodeId: string; pilot: string; connectedTo?: string }[]>(`http://${state.meta.admin}/debug/sidecars`),
      (sidecars) => sidecars.find((s) => s.nodeId === 'frontend-v1-0.demo')?.connectedTo === survivor.id,
      `frontend's sidecar connected to ${survivor.id}`,
      10_000,
    );
    const rehomedMs = Date.now() - killedAt;
    process.stdout.write(`frontend's sidecar re-homed to ${survivor.id} ${rehomedMs} ms after ${victim.id} was killed\n`);
    expect(rehomedMs).toBeLessThan(10_000);
    const restarted = await until(
      () => getJson<{ name: string; pid: number; restarts: number }[]>(`http://${state.runner.admin}/processes`),
      (ps) => ps.some((p) => p.name === victim.id && p.pid !== victim.pid && p.restarts >= 1),
      `${victim.id} restarted by the supervisor`,
      30_000,
    );
    victim.pid = restarted.find((p) => p.name === victim.id)!.pid;
    // octoctl status agrees: every sidecar connected to the pilot it is assigned, and in sync
    // with it (one that reconnected already holding that pilot's versions was sent nothing, and
    // counts as SYNCED at the versions it holds).
    await until(
      async () => spawnSync(process.execPath, [join(ROOT, 'packages/octoctl/dist/main.js'), 'status', '--meta-admin', state.meta.admin], { encoding: 'utf8' }).stdout,
      (out) => state.sidecars.every((s) => new RegExp(`${s.nodeId.replace(/\./g, '\\.')}\\s+\\S+\\s+(\\S+)\\s+\\1\\s+SYNCED\\n`).test(out)),
      'octoctl status showing every sidecar SYNCED with its assigned pilot',
      30_000,
    );
    // Traffic keeps flowing, and nothing failed at any point.
    const after = await until(traffic, (x) => x.requests - before.requests >= 400, 'traffic after failover', 20_000);
    expect(after.failureReasons).toEqual(before.failureReasons);
    expect(after.failures - before.failures).toBe(0);
  }, 90_000);

  it('holds workload certificates from the mesh CA, and refuses strangers on the control plane (issue 21)', async () => {
    const certs = join(stateDir, 'agents', 'frontend-v1-0', 'certs');
    // The sidecar's certificate: issued by the mesh CA for the workload's identity, and it verifies.
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(certs, 'root-cert.pem'), join(certs, 'cert-chain.pem')], { encoding: 'utf8' });
    expect(verify.stdout).toContain(': OK');
    const san = spawnSync('openssl', ['x509', '-in', join(certs, 'cert-chain.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }).stdout;
    expect(san).toContain('URI:spiffe://cluster.local/ns/demo/sa/frontend');
    // A pilot registration: refused in plaintext (no handshake) and from a workload's identity.
    const register = (creds: ReturnType<typeof credentials.createInsecure>) =>
      new Promise<ServiceError | null>((resolve) => {
        const c = new MetaServerClient(state.meta.grpc, creds, MESH_CHANNEL_OPTIONS);
        c.registerPilot({ pilotId: 'evil', xdsAddress: '127.0.0.1:1', adminAddress: '', zone: '' }, new Metadata(), { deadline: Date.now() + 10_000 }, (err) => {
          c.close();
          resolve(err);
        });
      });
    expect(await register(credentials.createInsecure())).toMatchObject({ code: 14 });
    expect(await register(meshChannelCredentials({ certDir: certs }, 'meta-server'))).toMatchObject({ code: 7, details: expect.stringContaining('RegisterPilot is for') });
    const pilots = await getJson<{ id: string }[]>(`http://${state.meta.admin}/debug/pilots`).catch(() => []);
    expect(JSON.stringify(pilots)).not.toContain('evil');
    // Writes to the dispatcher: refused from a workload; octoctl (the administrator's certificate) reads.
    const asWorkload = new DispatcherConnection(state.dispatcher.grpc, { certDir: certs });
    try {
      await expect(asWorkload.delete('RoutePolicy', 'demo/catalog')).rejects.toThrow(/may not call it/);
    } finally {
      asWorkload.close();
    }
    const got = spawnSync(process.execPath, [join(ROOT, 'packages/octoctl/dist/main.js'), 'get', 'routepolicies', '--state', join(stateDir, 'state.json')], { encoding: 'utf8' });
    expect(got.stderr).toBe('');
    expect(got.stdout).toMatch(/demo\s+catalog/);
  }, 60_000);

  it('runs frontend and ratings on Unix sockets end to end: each app sees requests on its own socket, frontend calls out through its sidecar\'s (issue 19)', async () => {
    const frontend = (state as unknown as { sidecars: { nodeId: string; inbound: string }[] }).sidecars.find((s) => s.nodeId === 'frontend-v1-0.demo')!.inbound;
    type Reply = { via?: string; outbound?: string; calls?: Record<string, { via?: string; error?: string }> };
    const reply = (await (await fetch(`http://${frontend}/`, { headers: { host: 'frontend.demo.svc:8080' }, signal: AbortSignal.timeout(10_000) })).json()) as Reply;
    const sockets = join(stateDir, 'sockets');
    // load generator → frontend's sidecar (TCP) → frontend's app on its socket (a pipe endpoint from Pilot)
    expect(reply.via).toBe(`unix:${join(sockets, 'frontend-v1-0.app.sock')}`);
    // frontend's app → its sidecar's outbound Unix socket → ratings' sidecar → ratings' app on its socket
    expect(reply.outbound).toBe(`unix:${join(sockets, 'frontend-v1-0.out.sock')}`);
    expect(reply.calls?.['ratings']?.via).toBe(`unix:${join(sockets, 'ratings-v1-0.app.sock')}`);
    // catalog stays on loopback TCP: both paths side by side
    expect(reply.calls?.['catalog']?.via).toMatch(/^tcp:\d+$/);
  }, 30_000);

  it('denies a caller by identity over mTLS with an AuthorizationPolicy, and lets it through again once deleted (issue 21)', async () => {
    const octoctl = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'packages/octoctl/dist/main.js'), ...args, '--state', join(stateDir, 'state.json')], { encoding: 'utf8' });
    const frontend = (state as unknown as { sidecars: { nodeId: string; inbound: string }[] }).sidecars.find((s) => s.nodeId === 'frontend-v1-0.demo')!.inbound;
    type Reply = { calls?: Record<string, { error?: string; service?: string }> };
    const ask = async () => (await (await fetch(`http://${frontend}/`, { headers: { host: 'frontend.demo.svc:8080' }, signal: AbortSignal.timeout(10_000) })).json()) as Reply;
    const policy = join(work, 'deny-frontend.yaml');
    writeFileSync(
      policy,
      [
        'apiVersion: mesh.octo.io/v1alpha1',
        'kind: AuthorizationPolicy',
        'metadata: { name: no-frontend, namespace: demo }',
        'spec:',
        '  service: catalog',
        '  action: DENY',
        '  rules: [{ from: [{ serviceAccounts: [demo/frontend] }] }]',
        '',
      ].join('\n'),
    );
    const applied = octoctl('apply', '-f', policy);
    expect(applied.stderr).toBe('');
    // The catalog sidecars judge the caller by the certificate frontend's sidecar presented.
    const denied = await until(ask, (r) => /HTTP 403/.test(r.calls?.['catalog']?.error ?? ''), "frontend's calls to catalog refused with 403", 30_000);
    expect(denied.calls!['catalog']!.error).toContain('RBAC: access denied');
    expect(denied.calls!['ratings']!.service).toBe('ratings'); // another service is not governed by it
    const got = await until(
      async () => octoctl('get', 'authorizationpolicies', '-n', 'demo').stdout,
      (out) => /no-frontend\s+catalog\s+DENY\s+true\s+2\s/.test(out), // both catalog sidecars ACKed it
      'the policy accepted, and ACKed by both catalog sidecars, in its status',
      30_000,
    );
    expect(got).toMatch(/no-frontend/);
    expect(octoctl('delete', 'authorizationpolicy', 'no-frontend', '-n', 'demo').status).toBe(0);
    await until(ask, (r) => r.calls?.['catalog']?.service === 'catalog', 'frontend calling catalog again', 30_000);
  }, 120_000);
});
