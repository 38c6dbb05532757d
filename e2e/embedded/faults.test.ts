// Issue 18, end to end: the embedded mesh (every component a real child process) under load,
// while its control plane is killed with SIGKILL one component at a time. The supervisor restarts
// what was killed; the data plane keeps serving on its last good configuration; no request fails;
// what octoctl applied survives a dispatcher restart; a restarted meta server publishes no
// partial registry; sidecars are back on their pilots within seconds.
// The last case does it again with two CPU-burning processes (`yes`) beside the mesh on this 2-core
// machine. It used to fail: catalog calls `504 upstream-per-try-timeout` (the 1400 ms per-try
// timeout set below) and whole requests timing out, 28–481 failed requests per 20 s whether or not
// anything was killed. The cause was the proxies' V8 helper threads at SCHED_IDLE: a garbage
// collection waits for the helper it handed work to, and beside a program that never sleeps a
// SCHED_IDLE thread gets ~3/1024 of a share, so a sidecar's event loop stalled for seconds. The
// proxy now idles its helpers only in a CPU group of its own (`v8Helpers: auto`; a pod's
// container), so here they run at normal priority. Figures: docs/benchmarks.md, "Embedded mesh:
// both pilots killed under CPU load"; bench/embedded/cpu-burners.mjs,
// bench/embedded/pilot-return-under-load.mjs.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { waitFor } from '@octo-mesh/runtime';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'octo-embedded-faults-'));
const manifests = join(work, 'manifests');
const stateDir = join(work, 'state');

interface State {
  meta: { admin: string; grpc: string };
  dispatcher: { grpc: string; admin: string };
  security?: { adminTlsDir: string };
  pilots: { id: string; admin: string }[];
  sidecars: { nodeId: string }[];
  runner: { admin: string };
}
interface Traffic {
  requests: number;
  failures: number;
  failureReasons: Record<string, number>;
}
interface Proc {
  name: string;
  pid: number;
  restarts: number;
}

let runner: ChildProcess | undefined;
let state: State;
/** The administrator's certificate: the embedded control plane speaks mTLS. */
const adminTls = () => (state.security ? { certDir: state.security.adminTlsDir } : undefined);
let output = '';

const getJson = async <T>(url: string): Promise<T> => (await (await fetch(url, { signal: AbortSignal.timeout(5000) })).json()) as T;
const traffic = () => getJson<Traffic>(`http://${state.runner.admin}/traffic`);
const processes = () => getJson<Proc[]>(`http://${state.runner.admin}/processes`);
const ready = async (admin: string) => (await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(3000) })).status === 200;

const until = <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs: number): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs, intervalMs: 100, retryErrors: true, detail: () => `runner output:\n${output.slice(-3000)}` });

/** Failures between two readings, with their reasons. */
const failedSince = (now: Traffic, before: Traffic) => {
  const reasons: Record<string, number> = {};
  for (const [r, n] of Object.entries(now.failureReasons)) if (n - (before.failureReasons[r] ?? 0) > 0) reasons[r] = n - (before.failureReasons[r] ?? 0);
  return { failed: now.failures - before.failures, reasons };
};

/** SIGKILLs a component and waits until the supervisor has it running (and ready) again. */
async function kill9(name: string, readyAt?: string): Promise<{ pid: number; restartedMs: number }> {
  const before = (await processes()).find((p) => p.name === name)!;
  const t0 = Date.now();
  process.kill(before.pid, 'SIGKILL');
  const after = await until(processes, (ps) => ps.some((p) => p.name === name && p.restarts > before.restarts && p.pid !== before.pid), `${name} restarted`, 30_000);
  if (readyAt) await until(() => ready(readyAt), (r) => r, `${name} ready`, 30_000);
  return { pid: after.find((p) => p.name === name)!.pid, restartedMs: Date.now() - t0 };
}

/** Every sidecar connected to a pilot, and that pilot's /debug/syncz says SYNCED for it. */
async function allSynced(): Promise<boolean> {
  const sidecars = await getJson<{ nodeId: string; connectedTo?: string }[]>(`http://${state.meta.admin}/debug/sidecars`);
  if (sidecars.length !== state.sidecars.length || sidecars.some((s) => !s.connectedTo)) return false;
  for (const p of state.pilots) {
    if (!(await ready(p.admin))) return false;
    const nodes = await getJson<{ node: string; types: { state: string }[] }[]>(`http://${p.admin}/debug/syncz`);
    for (const s of sidecars.filter((x) => x.connectedTo === p.id)) {
      const n = nodes.find((x) => x.node === s.nodeId);
      // As octoctl status rates it: a type never subscribed (NOT SENT) does not count.
      if (!n || n.types.some((t) => t.state !== 'SYNCED' && t.state !== 'NOT SENT')) return false;
    }
  }
  return true;
}

/** Waits for `n` more requests and returns the failures meanwhile. */
async function moreRequests(before: Traffic, n: number) {
  const after = await until(traffic, (t) => t.requests - before.requests >= n, `${n} more requests`, 60_000);
  return failedSince(after, before);
}

beforeAll(async () => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/mesh', 'packages/octoctl'], { cwd: ROOT, stdio: 'inherit' });
  cpSync(join(ROOT, 'examples/embedded'), manifests, { recursive: true });
  // Timeouts that hold on a loaded 2-core machine (see the policy applied in the first test).
  writeFileSync(join(manifests, 'catalog.yaml'), readFileSync(join(manifests, 'catalog.yaml'), 'utf8').replace('timeout: 2s', 'timeout: 2800ms').replace('perTryTimeout: 500ms', 'perTryTimeout: 1400ms'));
  runner = spawn(process.execPath, [join(ROOT, 'packages/mesh/dist/main.js'), '--ports', 'auto', '--quiet', 'true', '--rps', '100', '--state-dir', stateDir, '--manifests', manifests, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  runner.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  runner.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  state = await until(async () => JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as State, () => true, 'the state file', 120_000);
  await until(traffic, (t) => t.requests > 50, 'traffic through the mesh', 90_000);
  await until(allSynced, (ok) => ok, 'every sidecar synced', 30_000);
}, 240_000);

afterAll(async () => {
  if (runner && runner.exitCode === null) {
    const exited = new Promise((r) => runner!.once('exit', r));
    runner.kill('SIGTERM');
    await exited;
  }
  if (process.env['OCTO_E2E_KEEP']) process.stdout.write(`kept ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('embedded mesh under faults', () => {
  it('kill -9 of the dispatcher: restarted with everything octoctl applied, and no request fails', async () => {
    // The demo file's 500 ms per-try timeout is a latency budget a 2-core machine at load 10-16
    // does not keep (every process stalls 1-1.5 s at times: catalog calls then fail with 504
    // upstream-per-try-timeout while ratings, without a timeout, answers in the same 1.5 s). The
    // policy applied here keeps the budget within the app's own 3 s, so a failure below is the
    // mesh failing a request, not the machine being slow.
    const policy = join(work, 'catalog-70-30.yaml');
    writeFileSync(
      policy,
      readFileSync(join(manifests, 'catalog.yaml'), 'utf8')
        .replace('weight: 90', 'weight: 70')
        .replace('weight: 10', 'weight: 30')
        .replace('timeout: 2s', 'timeout: 2800ms')
        .replace('perTryTimeout: 500ms', 'perTryTimeout: 1400ms'),
    );
    const applied = spawnSync(process.execPath, [join(ROOT, 'packages/octoctl/dist/main.js'), 'apply', '-f', policy, '--state', join(stateDir, 'state.json')], { encoding: 'utf8' });
    expect(applied.stderr).toBe('');
    await until(allSynced, (ok) => ok, 'the applied policy pushed', 20_000);
    const before = await traffic();
    const { restartedMs } = await kill9('dispatcher', state.dispatcher.admin);
    const conn = new DispatcherConnection(state.dispatcher.grpc, adminTls());
    try {
      const p = (await conn.get('RoutePolicy', 'demo/catalog')) as RoutePolicy;
      expect(p.spec.rules?.[0]?.route.map((r) => r.weight)).toEqual([70, 30]);
      expect(p.metadata.annotations?.['mesh.octo.io/source']).toBe('api');
      // What the registry published is there at once, not after its next republish.
      expect((await conn.get('ServiceEndpoints', 'demo/catalog')).kind).toBe('ServiceEndpoints');
    } finally {
      conn.close();
    }
    await until(allSynced, (ok) => ok, 'every sidecar synced after the dispatcher restart', 30_000);
    const { failed, reasons } = await moreRequests(before, 500);
    process.stdout.write(`dispatcher kill -9: back in ${restartedMs} ms; failed requests: ${failed}\n`);
    expect(reasons).toEqual({});
    expect(failed).toBe(0);
  }, 120_000);

  it('kill -9 of the meta server: restarted, no partial registry published, and no request fails', async () => {
    const before = await traffic();
    const conn = new DispatcherConnection(state.dispatcher.grpc, adminTls());
    const seen = new Set<number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const eps = await conn.get('ServiceEndpoints', 'demo/catalog').then((r) => (r as { spec: { endpoints: unknown[] } }).spec.endpoints.length, () => -1);
        seen.add(eps);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const { restartedMs } = await kill9('meta-server');
      await until(allSynced, (ok) => ok, 'every sidecar connected and synced after the meta server restart', 30_000);
      const { failed, reasons } = await moreRequests(before, 500);
      sampling = false;
      await sampler;
      process.stdout.write(`meta server kill -9: back in ${restartedMs} ms; catalog endpoint counts seen: ${[...seen].join(', ')}; failed requests: ${failed}\n`);
      expect([...seen].filter((n) => n !== 2)).toEqual([]); // catalog v1 and v2, never fewer
      expect(reasons).toEqual({});
      expect(failed).toBe(0);
    } finally {
      sampling = false;
      await sampler;
      conn.close();
    }
  }, 120_000);

  it('kill -9 of both pilots: restarted, every sidecar synced again within seconds, no request fails', async () => {
    const before = await traffic();
    const t0 = Date.now();
    const back = await Promise.all(state.pilots.map((p) => kill9(p.id, p.admin)));
    const pilotsBack = Date.now();
    await until(allSynced, (ok) => ok, 'every sidecar synced with a restarted pilot', 30_000);
    const syncedMs = Date.now() - pilotsBack;
    const { failed, reasons } = await moreRequests(before, 500);
    process.stdout.write(`both pilots kill -9: back in ${back.map((b) => b.restartedMs).join(' and ')} ms; every sidecar SYNCED ${syncedMs} ms after they were ready (${Date.now() - t0} ms in all); failed requests: ${failed}\n`);
    expect(syncedMs).toBeLessThan(15_000); // the xDS backoff is capped at 5 s (it was 30 s: one sidecar took 60 s)
    expect(reasons).toEqual({});
    expect(failed).toBe(0);
  }, 120_000);

  it('with two CPU-burning processes beside the mesh: no request fails, nor when both pilots are killed', async () => {
    const burners = [0, 1].map(() => spawn('yes', [], { stdio: 'ignore' }));
    try {
      const before = await traffic();
      const loaded = await moreRequests(before, 500);
      const back = await Promise.all(state.pilots.map((p) => kill9(p.id, p.admin)));
      await until(allSynced, (ok) => ok, 'every sidecar synced with a restarted pilot', 60_000);
      const after = await moreRequests(before, 1500);
      process.stdout.write(`two CPU burners: ${loaded.failed} of 500 requests failed; both pilots kill -9 beside them (back in ${back.map((b) => b.restartedMs).join(' and ')} ms): ${after.failed} of 1500 in all\n`);
      expect(loaded.reasons).toEqual({});
      expect(after.reasons).toEqual({});
      expect(after.failed).toBe(0);
    } finally {
      for (const b of burners) b.kill('SIGKILL');
    }
  }, 180_000);
});
