// Lease-backed pilot membership on the real API server: two meta-server replicas — the real
// octo-meta-server executable (as a user granted only the documented verbs on leases) and one
// in-process — share pilot Leases in one namespace. Pilots register and heartbeat through either;
// both answer Locate the same; a crashed pilot is dropped once its Lease lapses and only its
// sidecars move; a joining pilot takes about 1/N of the workloads gradually over the join ramp.
// Health checkers heartbeating to different replicas are told the same live list (checker Leases).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiException, CoordinationV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { CheckerMembership, PilotMembership, locatePilot, startGrpcServer, type StartedGrpc } from '@octo-mesh/clients';
import { waitFor, createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { adminKubeConfig, clusterInfo, createTestNamespace, REPO_ROOT, RESTRICTED_USER, restrictedKubeConfig } from '@octo-mesh/testing';
import { LeaseCheckers } from '../../packages/meta-server/src/checker-membership.js';
import { LeasePilots } from '../../packages/meta-server/src/lease-membership.js';
import { MetaServer, MetaServerService, ServiceRegistryService } from '../../packages/meta-server/src/server.js';

const TTL_MS = 2000;
const HEARTBEAT_MS = 500;
const RAMP_MS = 4000;
const APPS = Array.from({ length: 120 }, (_, i) => `app-${i}`);

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const until = <T>(get: () => T | Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs });

interface Replica {
  name: string;
  address: string;
  /** Live pilots as this replica sees them, with their share of their ring arc. */
  pilots(): Promise<{ id: string; share: number }[]>;
  pendingMoves(): Promise<number>;
  /** Live health checkers as this replica sees them (ids, sorted). */
  checkers(): Promise<string[]>;
}

let ns = '';
let child: ChildProcess | undefined;
let childOut = '';
let adminA = '';
let inProcess: { leases: LeasePilots; checkerLeases: LeaseCheckers; meta: MetaServer; grpc: StartedGrpc } | undefined;
const replicas: Replica[] = [];

beforeAll(async () => {
  execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/meta-server'], { cwd: REPO_ROOT });
  ns = await createTestNamespace('meta-leases');

  // Replica A: the executable, as a user RBAC grants exactly the verbs the README lists.
  const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: ns,
    body: { metadata: { name: 'octo-meta-server' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] }] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: 'octo-meta-server' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'octo-meta-server' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: RESTRICTED_USER }],
    },
  });
  const restricted = restrictedKubeConfig().makeApiClient(CoordinationV1Api);
  await until(
    () => restricted.listNamespacedLease({ namespace: ns }).then(() => 200, (e: unknown) => (e instanceof ApiException ? e.code : -1)),
    (code) => code === 200,
    'the Role to reach the authorizer',
  );
  const flags = ['--pilot-ttl-ms', `${TTL_MS}`, '--heartbeat-interval-ms', `${HEARTBEAT_MS}`, '--join-ramp-ms', `${RAMP_MS}`];
  child = spawn(
    process.execPath,
    [join(REPO_ROOT, 'packages/meta-server/dist/main.js'), '--grpc-port', '0', '--admin-port', '0', '--kubernetes', '--kubeconfig', clusterInfo().restrictedKubeconfig, '--namespace', ns, ...flags],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (c: Buffer) => (childOut += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (childOut += c.toString()));
  const listening = await until(
    () => childOut.split('\n').find((l) => l.includes('"listening"')),
    (l) => l !== undefined || child!.exitCode !== null,
    'replica A listening',
  );
  if (!listening) throw new Error(`replica A exited: ${childOut}`);
  const { grpcPort, adminPort, leases: leaseNs } = JSON.parse(listening) as { grpcPort: number; adminPort: number; leases: string };
  expect(leaseNs).toBe(ns);
  adminA = `http://127.0.0.1:${adminPort}`;
  const admin = (path: string) => fetch(`${adminA}${path}`).then((r) => r.json());
  replicas.push({
    name: 'A (executable)',
    address: `127.0.0.1:${grpcPort}`,
    pilots: () => admin('/debug/pilots') as Promise<{ id: string; share: number }[]>,
    pendingMoves: () => (admin('/debug/assignments') as Promise<{ pendingMoves: number }>).then((a) => a.pendingMoves),
    checkers: () => (admin('/debug/checkers') as Promise<{ id: string }[]>).then((l) => l.map((c) => c.id)),
  });

  // Replica B: in process, as the admin.
  const leases = new LeasePilots({ kubeConfig: adminKubeConfig(), namespace: ns, ttlMs: TTL_MS, rampMs: RAMP_MS, logger: quiet() });
  await leases.start();
  const checkerLeases = new LeaseCheckers({ kubeConfig: adminKubeConfig(), namespace: ns, ttlMs: TTL_MS, logger: quiet() });
  await checkerLeases.start();
  const meta = new MetaServer({ logger: quiet(), registry: createMetricsRegistry('b'), pilotTtlMs: TTL_MS, heartbeatIntervalMs: HEARTBEAT_MS, maxMovesPerSecond: 5, instanceTtlMs: 1000, leases, checkerLeases });
  meta.start();
  const grpc = await startGrpcServer('127.0.0.1', 0, (s) => {
    s.addService(MetaServerService, meta.metaService());
    s.addService(ServiceRegistryService, meta.registryService());
  });
  inProcess = { leases, checkerLeases, meta, grpc };
  replicas.push({
    name: 'B (in process)',
    address: `127.0.0.1:${grpc.port}`,
    pilots: async () => {
      const a = leases.assignment();
      return a.live.map((p) => ({ id: p.id, share: a.share(p.id) }));
    },
    pendingMoves: async () => leases.assignment().pendingMoves(),
    checkers: async () => (meta.debugRoutes()['/debug/checkers']!() as { id: string }[]).map((c) => c.id),
  });
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (inProcess) {
    await inProcess.meta.stop();
    await inProcess.grpc.close();
    await inProcess.leases.stop();
    await inProcess.checkerLeases.stop();
  }
});

const A = () => replicas[0]!;
const B = () => replicas[1]!;

/** A pilot registered through one replica; its "connected sidecars" follow Locate and shed. */
interface TestPilot {
  id: string;
  m: PilotMembership;
  connected: Map<string, { nodeId: string; namespace: string; workload: string }>;
  shed: string[];
}
const pilots = new Map<string, TestPilot>();

afterEach(async () => {
  for (const p of pilots.values()) await p.m.stop();
  pilots.clear();
  await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => l.length === 0), 'no live pilots');
});

function startPilot(id: string, via: Replica, opts: { relocateShed?: boolean } = {}): TestPilot {
  const connected = new Map<string, { nodeId: string; namespace: string; workload: string }>();
  const shed: string[] = [];
  const m = new PilotMembership({
    metaAddress: via.address,
    pilotId: id,
    xdsAddress: `10.0.0.${pilots.size + 1}:15010`,
    zone: 'z1',
    sidecars: () => [...connected.values()],
    onShed: (ids) => {
      shed.push(...ids);
      for (const n of ids) {
        const s = connected.get(n);
        connected.delete(n);
        // Like a sidecar whose stream was closed: ask again, connect where told.
        if (s && opts.relocateShed) void locate(via, s.workload).then((r) => pilots.get(r)?.connected.set(n, s));
      }
    },
  });
  m.start();
  const p = { id, m, connected, shed };
  pilots.set(id, p);
  return p;
}

const locate = (r: Replica, app: string) => locatePilot({ metaAddress: r.address, nodeId: `${app}-0`, namespace: 'demo', workload: app, timeoutMs: 5000 }).then((x) => x.pilotId);
const locateAll = async (r: Replica) => new Map(await Promise.all(APPS.map(async (app) => [app, await locate(r, app)] as const)));

/** Both replicas see exactly these pilots live, each past its join ramp. */
const settled = (ids: string[]) =>
  until(
    () => Promise.all(replicas.map((r) => r.pilots())),
    (all) => all.every((l) => l.map((p) => p.id).sort().join() === [...ids].sort().join() && l.every((p) => p.share === 1)),
    `pilots ${ids.join(', ')} live and ramped on both replicas`,
    RAMP_MS + 10_000,
  );

/** Locates every app once and connects its sidecar to the pilot it was sent to. */
async function connectAll(r: Replica): Promise<Map<string, string>> {
  const home = await locateAll(r);
  for (const [app, pilot] of home) pilots.get(pilot)!.connected.set(`${app}-0`, { nodeId: `${app}-0`, namespace: 'demo', workload: app });
  for (const p of pilots.values()) p.m.nudge();
  return home;
}

describe('meta server on pilot Leases', () => {
  it('keeps one Lease per pilot, written through either replica, and both replicas answer Locate the same', async () => {
    startPilot('pilot-1', A());
    startPilot('pilot-2', B());
    startPilot('pilot-3', A());
    await settled(['pilot-1', 'pilot-2', 'pilot-3']);
    const [a, b] = [await locateAll(A()), await locateAll(B())];
    expect(b).toEqual(a);
    const counts = new Map<string, number>();
    for (const p of a.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(['pilot-1', 'pilot-2', 'pilot-3']);
    for (const n of counts.values()) expect(n / APPS.length).toBeGreaterThan(0.2);

    await connectAll(A());
    const coord = adminKubeConfig().makeApiClient(CoordinationV1Api);
    const lease = await until(
      () => coord.readNamespacedLease({ name: 'pilot-pilot-2', namespace: ns }),
      (l) => (l.metadata?.annotations?.['mesh.octo.io/workloads'] ?? '{}') !== '{}',
      'pilot-2 to report its workloads',
    );
    expect(lease.spec).toMatchObject({ holderIdentity: 'pilot-2', leaseDurationSeconds: TTL_MS / 1000 });
    expect(lease.metadata?.labels).toMatchObject({ 'mesh.octo.io/pilot-lease': 'true' });
    expect(lease.metadata?.annotations).toMatchObject({ 'mesh.octo.io/xds-address': '10.0.0.2:15010', 'mesh.octo.io/zone': 'z1' });
    const reported = JSON.parse(lease.metadata!.annotations!['mesh.octo.io/workloads']!) as Record<string, number>;
    expect(Object.keys(reported).sort()).toEqual(APPS.filter((app) => a.get(app) === 'pilot-2').map((app) => `demo/${app}`).sort());

    // Metrics and the debug API read the Leases: the same on the replica the pilot did not talk to.
    await until(
      () => fetch(`${adminA}/metrics`).then((r) => r.text()),
      (m) => /octo_meta_pilots\{state="live"\} 3/.test(m) && /octo_meta_pilot_sidecars\{pilot="pilot-2"\} [1-9]/.test(m),
      'metrics on replica A',
    );
    const table = await until(() => inProcess!.meta.sidecarTable(), (t) => t.length === APPS.length && t.every((x) => x.connectedTo === x.pilot), 'sidecars connected per the Leases');
    expect(new Map(table.map((x) => [x.workload, x.pilot]))).toEqual(a);
    expect((await fetch(`${adminA}/readyz`)).status).toBe(200);
  }, 40_000);

  it('drops a pilot that stops heartbeating once its Lease lapses, on both replicas; only its sidecars move', async () => {
    startPilot('crash-1', A());
    startPilot('crash-2', B());
    const victim = startPilot('crash-3', B());
    await settled(['crash-1', 'crash-2', 'crash-3']);
    const before = await connectAll(A());
    await sleep(HEARTBEAT_MS * 2);

    const t0 = Date.now();
    await victim.m.stop({ deregister: false }); // a crash: the Lease is left to lapse
    pilots.delete('crash-3');
    await sleep(TTL_MS / 2);
    for (const r of replicas) expect((await r.pilots()).map((p) => p.id)).toContain('crash-3'); // not before the Lease lapses
    await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => !l.some((p) => p.id === 'crash-3')), 'crash-3 dropped', 8000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TTL_MS - HEARTBEAT_MS);

    const [a, b] = [await locateAll(A()), await locateAll(B())];
    expect(b).toEqual(a);
    const movedTo = new Set<string>();
    for (const app of APPS)
      if (before.get(app) === 'crash-3') movedTo.add(a.get(app)!);
      else expect([app, a.get(app)]).toEqual([app, before.get(app)]);
    expect([...movedTo].sort()).toEqual(['crash-1', 'crash-2']);
    // The survivors are not told to shed anything.
    await sleep(HEARTBEAT_MS * 2);
    expect([...pilots.values()].flatMap((p) => p.shed)).toEqual([]);
  }, 40_000);

  // Heartbeats are written through the meta servers: while they (or the API server) cannot write,
  // every Lease lapses though the pilots serve on. Locate keeps answering with the pilots that were
  // live at the latest renewal instead of "no live pilot" for every new sidecar.
  it('when every pilot Lease lapses at once, Locate still answers with the pilots live at the latest renewal', async () => {
    const held = [startPilot('held-1', A()), startPilot('held-2', B())];
    await settled(['held-1', 'held-2']);
    const before = await locateAll(A());
    for (const p of held) await p.m.stop({ deregister: false }); // no more heartbeats, Leases left held
    await sleep(TTL_MS + HEARTBEAT_MS * 2);
    const coord = adminKubeConfig().makeApiClient(CoordinationV1Api);
    const lease = await coord.readNamespacedLease({ name: 'pilot-held-1', namespace: ns });
    expect(Date.now()).toBeGreaterThan(new Date(lease.spec!.renewTime!).getTime() + TTL_MS); // lapsed
    expect(await locateAll(A())).toEqual(before);
    expect(await locateAll(B())).toEqual(before);
    // One pilot heard from again: it alone is live, the other's lapse now counts.
    const back = startPilot('held-1', A());
    await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => l.map((p) => p.id).join() === 'held-1'), 'held-1 alone live');
    expect(new Set((await locateAll(B())).values())).toEqual(new Set(['held-1']));
    await back.m.stop();
    // held-2 lapsed before held-1's release was written: not kept once nothing is held but it.
    await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => l.length === 0), 'held-2 not kept after held-1 left');
    await expect(locate(A(), 'app-1')).rejects.toMatchObject({ details: 'no live pilot' });
    pilots.delete('held-2');
  }, 40_000);

  it('a joining pilot takes about 1/N of the workloads, gradually over the ramp, only from the others to it', async () => {
    startPilot('join-1', A(), { relocateShed: true });
    startPilot('join-2', B(), { relocateShed: true });
    await settled(['join-1', 'join-2']);
    const before = await connectAll(B());
    await sleep(HEARTBEAT_MS * 2);
    expect([...pilots.values()].flatMap((p) => p.shed)).toEqual([]);

    startPilot('join-3', B(), { relocateShed: true });
    const coord = adminKubeConfig().makeApiClient(CoordinationV1Api);
    const lease = await until(
      () => coord.readNamespacedLease({ name: 'pilot-join-3', namespace: ns }).catch(() => undefined),
      (l) => l?.spec?.acquireTime !== undefined,
      'join-3 Lease',
    );
    const joinedAt = new Date(lease!.spec!.acquireTime!).getTime();
    const onNew = async (r: Replica) => [...(await locateAll(r)).values()].filter((p) => p === 'join-3').length;

    await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => l.some((p) => p.id === 'join-3')), 'join-3 live on both');
    const early = await onNew(A());
    // Around the middle of the ramp, ask both replicas about each app at the same moment.
    await sleep(joinedAt + RAMP_MS / 2 - 200 - Date.now());
    const pairs: [string, string][] = [];
    for (const app of APPS) pairs.push(await Promise.all([locate(A(), app), locate(B(), app)]));
    const mid = pairs.filter(([x]) => x === 'join-3').length;
    await sleep(joinedAt + RAMP_MS + 200 - Date.now());
    const [a, b] = [await locateAll(A()), await locateAll(B())];
    expect(b).toEqual(a);
    const final = [...a.values()].filter((p) => p === 'join-3').length;

    expect(final / APPS.length).toBeGreaterThan(0.2);
    expect(final / APPS.length).toBeLessThan(0.47);
    expect(early / final).toBeLessThan(0.35);
    expect(mid / final).toBeGreaterThan(0.2);
    expect(mid / final).toBeLessThan(0.8);
    // One app may cross the line between the two calls of its pair; replicas do not otherwise differ.
    expect(pairs.filter(([x, y]) => x !== y).length).toBeLessThanOrEqual(1);
    for (const app of APPS) if (a.get(app) !== before.get(app)) expect([app, a.get(app)]).toEqual([app, 'join-3']);

    // The old pilots were told to shed exactly the moved sidecars; relocated, nothing is pending.
    const moved = APPS.filter((app) => a.get(app) === 'join-3').map((app) => `${app}-0`).sort();
    await until(() => [...pilots.values()].flatMap((p) => p.shed).sort(), (s) => s.join() === moved.join(), 'the moved sidecars shed', 5000);
    await until(() => Promise.all(replicas.map((r) => r.pendingMoves())), (n) => n.every((x) => x === 0), 'no pending moves', 5000);
  }, 40_000);

  it('a pilot that deregisters is dropped at once by both replicas, without waiting for its Lease to lapse', async () => {
    startPilot('bye-1', A());
    const leaving = startPilot('bye-2', A());
    await settled(['bye-1', 'bye-2']);
    const t0 = Date.now();
    await leaving.m.stop();
    pilots.delete('bye-2');
    await until(() => Promise.all(replicas.map((r) => r.pilots())), (all) => all.every((l) => l.map((p) => p.id).join() === 'bye-1'), 'bye-2 dropped', 3000);
    expect(Date.now() - t0).toBeLessThan(TTL_MS);
    expect(new Set((await locateAll(B())).values())).toEqual(new Set(['bye-1']));
  }, 40_000);

  it('concurrent heartbeats of one pilot through two replicas all land: conflicts are re-read and retried', async () => {
    const other = new LeasePilots({ kubeConfig: adminKubeConfig(), namespace: ns, ttlMs: TTL_MS, rampMs: RAMP_MS, logger: quiet() });
    await other.start();
    try {
      const b = inProcess!.leases;
      expect(await b.register({ id: 'race-1', xdsAddress: '10.0.9.1:15010', adminAddress: '', zone: '' })).toEqual({ joined: true });
      const sidecars = (n: number) => Array.from({ length: n }, (_, i) => ({ nodeId: `w${i}-0`, namespace: 'demo', workload: `w${i}` }));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? b : other).heartbeat('race-1', sidecars(i + 1))));
      expect(results.every((r) => r !== undefined)).toBe(true);
      // Registering again while live is not a new join.
      expect(await other.register({ id: 'race-1', xdsAddress: '10.0.9.1:15010', adminAddress: '', zone: '' })).toEqual({ joined: false });
      await until(() => [b, other].map((x) => x.assignment().live.map((p) => p.id).join()), (ids) => ids.every((i) => i === 'race-1'), 'race-1 live on both');
      expect(await other.deregister('race-1')).toBe(true);
      expect(await b.heartbeat('race-1', [])).toBeUndefined(); // released: register again
    } finally {
      await other.stop();
    }
  }, 40_000);

  it('sends a sidecar that reports its pilot unreachable elsewhere, through either replica, until that pilot renews', async () => {
    startPilot('sus-1', A());
    startPilot('sus-2', B());
    await settled(['sus-1', 'sus-2']);
    const app = APPS[0]!;
    const home = await locate(A(), app);
    // The mark is on the Lease, so the other replica agrees — until the pilot's next heartbeat
    // (every 500 ms), which may come before B looks: then mark it again.
    const agreed: string[] = [];
    for (let attempt = 0; attempt < 5 && !agreed.length; attempt++) {
      const other = await locatePilot({ metaAddress: A().address, nodeId: `${app}-0`, namespace: 'demo', workload: app, unreachablePilotId: home, timeoutMs: 5000 });
      expect(other.pilotId).not.toBe(home);
      const deadline = Date.now() + 200;
      while (Date.now() < deadline && !agreed.length) if ((await locate(B(), app)) === other.pilotId) agreed.push(other.pilotId);
    }
    expect(agreed).toHaveLength(1);
    await until(() => locate(B(), app), (p) => p === home, 'the pilot to renew and be handed out again', 3000);
  }, 40_000);
});

describe('health-checker membership on Leases', () => {
  /** A checker replica heartbeating to one meta-server replica; `told` is the last live list it got. */
  const startChecker = (id: string, via: Replica) => {
    const c = { id, told: [] as string[], m: undefined as unknown as CheckerMembership };
    c.m = new CheckerMembership({ metaAddress: via.address, checkerId: id, adminAddress: `10.0.1.${id.length}:15014`, onMembers: (ids) => (c.told = ids) });
    c.m.start();
    return c;
  };
  const both = (ids: string[], what: string, timeoutMs?: number) =>
    until(() => Promise.all(replicas.map((r) => r.checkers())), (all) => all.every((l) => l.join() === ids.join()), what, timeoutMs);

  it('two checkers on different replicas are both told both; one deregisters: both list the other at once; it stops: gone after its TTL', async () => {
    const a = startChecker('chk-a', A());
    const b = startChecker('chk-b', B());
    try {
      await both(['chk-a', 'chk-b'], 'both checkers live on both replicas');
      // What each checker is told (not only what the debug API shows): the same two.
      await until(() => [a.told.join(), b.told.join()], (t) => t.every((x) => x === 'chk-a,chk-b'), 'both checkers told both');
      const coord = adminKubeConfig().makeApiClient(CoordinationV1Api);
      const lease = await coord.readNamespacedLease({ name: 'checker-chk-b', namespace: ns });
      expect(lease.spec).toMatchObject({ holderIdentity: 'chk-b', leaseDurationSeconds: TTL_MS / 1000 });
      expect(lease.metadata?.labels).toMatchObject({ 'mesh.octo.io/checker-lease': 'true' });
      expect(lease.metadata?.annotations).toMatchObject({ 'mesh.octo.io/admin-address': '10.0.1.5:15014' });
      await until(() => fetch(`${adminA}/metrics`).then((r) => r.text()), (m) => /octo_meta_checkers 2/.test(m), 'octo_meta_checkers on replica A');

      // B deregisters (through replica B): released on its Lease, both replicas drop it before its TTL.
      const t0 = Date.now();
      await b.m.stop();
      await both(['chk-a'], 'chk-b dropped on both replicas', TTL_MS);
      expect(Date.now() - t0).toBeLessThan(TTL_MS);
      await until(() => a.told.join(), (t) => t === 'chk-a', 'chk-a told it is alone');
      expect((await coord.readNamespacedLease({ name: 'checker-chk-b', namespace: ns })).spec?.holderIdentity).toBeUndefined();

      // A crashes (no deregistration, through the executable as the restricted user): kept until
      // its Lease lapses, then gone from both.
      const t1 = Date.now();
      await a.m.stop({ deregister: false });
      await sleep(TTL_MS / 2);
      for (const r of replicas) expect(await r.checkers()).toEqual(['chk-a']);
      await both([], 'chk-a dropped once its Lease lapsed', 8000);
      expect(Date.now() - t1).toBeGreaterThanOrEqual(TTL_MS - HEARTBEAT_MS);

      // Heartbeating again reuses the lapsed Lease: a new join.
      const again = startChecker('chk-a', B());
      await both(['chk-a'], 'chk-a back on both replicas');
      const back = await coord.readNamespacedLease({ name: 'checker-chk-a', namespace: ns });
      expect(back.spec?.leaseTransitions).toBe(1);
      expect(new Date(back.spec!.acquireTime!).getTime()).toBeGreaterThan(t1);
      await again.m.stop();
    } finally {
      await a.m.stop();
      await b.m.stop();
    }
    await both([], 'no live checkers');
  }, 40_000);
});
