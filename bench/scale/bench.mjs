#!/usr/bin/env node
// The control plane at 10,000 sidecars, beside go-control-plane (issue 20). One run measures
// the same simulated sidecars (packages/mock-sidecar's MockSidecar, SotW ADS, in child processes:
// bench/scale/fleet.mjs) against
//   1. our control plane: a real dispatcher, meta server and 2 pilots (child processes); the
//      sidecars locate their pilot through the meta server; changes go through the dispatcher;
//   2. bench/xds-reference: a go-control-plane server serving equivalent snapshots; the sidecars
//      connect to it directly; changes go through its HTTP control API,
// and prints, for each, and their ratio (Pilot / go-control-plane):
//   - connect: all sidecars synced (time), bytes of initial configuration per sidecar;
//   - memory per connected sidecar: control-plane RSS delta / sidecars (pilots summed);
//   - propagation, change → every affected sidecar received (and ACKed) it: an EDS-only change
//     (endpoints of `common`, which every workload calls) and a full push (a RoutePolicy on
//     `common`: CDS+RDS), p50/p99/max, --repeat times each, the median run by p99;
//   - churn storm: --churn-rate endpoint changes/s for --churn-seconds over the services
//     s0…s(N-1), EDS pushes per affected sidecar per second and per 100 ms window;
//   - failure: SIGKILL of the pilot holding the most sidecars → all re-homed and synced (time,
//     worst per-sidecar response: stream lost → synced on the other pilot); for the reference,
//     which has no second server, the same number of sidecars reconnecting at once.
// CPU of every process (control plane, reference server, simulator children) is printed per phase
// so it is clear where the 2 cores went.
//
// Usage: node_modules/.bin/node bench/scale/bench.mjs [--sidecars 10000] [--children 4]
//          [--services 50] [--deps 3] [--repeat 3] [--churn-rate 500] [--churn-seconds 60]
//          [--connect-rate 300] [--meta-args '…'] [--pilot-args '…'] [--only pilot|gcp] [--json out.json]
//          [--client lean|grpc-js] (the sidecars' gRPC client, default lean: node:http2 by hand, still one
//            connection per sidecar; 25–30 % less simulator CPU to connect, half in an EDS push; grpc-js
//            is what runs before L1 in results-10000.txt used)
//          [--locate grpc-js|lean] (the Locate call's client, default --client's: grpc-js's shares one
//            connection to the meta server per simulator process, lean's is one per call as real sidecars)
//          [--phases propagation,churn,failure] (which run after the connect; e.g. --phases failure)
//          [--log-dir DIR --log-level info] (keep our control plane's logs)
//          [--profile DIR] (CPU profiles of our processes over the pilot kill's re-home)
// The pilot kill also prints its steps per sidecar (stream lost → locate answered → first
// response → synced), a timeline every second (where the victims are, the survivor's admission
// queue, the meta server's Locate counts) and the machine's TcpExt ListenOverflows meanwhile.
// Builds packages/mock-sidecar (and what it starts) and the Go server (cached under
// ~/.cache/octo-mesh/xds-reference-<hash of its sources>). Loopback only; every wait is bounded.
import { execFileSync, fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const N = Number(arg('sidecars', '10000'));
const CHILDREN = Number(arg('children', '4'));
const SERVICES = Number(arg('services', '50'));
const DEPS = Number(arg('deps', '3'));
const REPEAT = Number(arg('repeat', '3'));
const CHURN_RATE = Number(arg('churn-rate', '500'));
const CHURN_SECONDS = Number(arg('churn-seconds', '60'));
const ONLY = arg('only', undefined);
/**
 * The simulated sidecars' gRPC client (MockSidecar's `client`): lean (node:http2 by hand,
 * packages/mock-sidecar/src/lean.ts; the default since results L1–L9: less simulator CPU in every
 * phase, and its Locate is a connection per sidecar as real sidecars', where grpc-js's shared one
 * per simulator process) or grpc-js (runs before L1).
 */
const CLIENT = arg('client', 'lean');
/** The Locate call's client (default --client's): grpc-js's locatePilot shares one connection per simulator process (see MockSidecar's `locate`). */
const LOCATE_CLIENT = arg('locate', CLIENT);
for (const [flag, v] of [['client', CLIENT], ['locate', LOCATE_CLIENT]]) if (v !== 'grpc-js' && v !== 'lean') throw new Error(`--${flag} must be grpc-js or lean, got ${v}`);
/** Which phases run after the connect (e.g. --phases failure to iterate on the pilot kill). */
const PHASES = new Set(arg('phases', 'propagation,churn,failure').split(','));
/** Keep our control plane's logs in this directory (default: a temp dir removed at the end), at --log-level. */
const LOG_DIR = arg('log-dir', undefined);
const LOG_LEVEL = arg('log-level', 'warn');
const JSON_OUT = arg('json', undefined);
/**
 * --profile DIR: a V8 CPU profile of every process of ours (control plane and simulator) from the
 * pilot kill until all are re-homed, written to DIR (bench/scale/cpu-prof-preload.mjs, loaded into
 * the children through NODE_OPTIONS; summarise with bench/scale/prof-summary.mjs). Profiling costs
 * CPU: its figures are not comparable with unprofiled runs.
 */
const PROFILE_DIR = arg('profile', undefined);
if (PROFILE_DIR) {
  mkdirSync(PROFILE_DIR, { recursive: true });
  process.env.OCTO_PROF_DIR = PROFILE_DIR;
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${join(here, 'cpu-prof-preload.mjs')}`.trim();
}
/** Starts or stops (writes) the CPU profiles of `procs` (--profile). */
async function profile(what, procs) {
  if (!PROFILE_DIR) return;
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGUSR2');
    } catch (err) {
      log(`profile ${what}: ${p.name}: ${err.message}`);
    }
  }
  if (what === 'stop') await sleep(3000); // the profiles are serialised and written
}
/**
 * Sidecars started per second (all children together). 300: at 1,000/s on the shared 2-core
 * machine the locate calls and pilot leases of our control plane collapsed into a storm
 * (bench/scale/results-10000.txt); the pilots admit 500 streams/s each by default.
 */
const CONNECT_RATE = Number(arg('connect-rate', '300'));
/** Extra flags for our control plane's processes, e.g. --meta-args '--pilot-ttl-ms 10000'. */
const splitArgs = (v) => (v ? v.split(' ').filter(Boolean) : []);
const EXTRA = { dispatcher: splitArgs(arg('dispatcher-args')), 'meta-server': splitArgs(arg('meta-args')), pilot: splitArgs(arg('pilot-args')) };
const NS = 'bench';
const STEP_TIMEOUT_MS = 180_000;
const WINDOW_MS = 100; // the pilot's debounce window

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const log = (line) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---- build -------------------------------------------------------------------------------------

execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b', 'packages/mock-sidecar'], { cwd: root, stdio: 'inherit' });
const { EmbeddedControlPlane, readProc } = await import('@octo-mesh/mock-sidecar');
const { DispatcherConnection } = await import('@octo-mesh/clients');

/** The Go server, built once per version of its sources into a cache dir outside the repository. */
function buildReference() {
  const src = join(root, 'bench/xds-reference');
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(src, f)));
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'octo-mesh', `xds-reference-${hash.digest('hex').slice(0, 16)}`);
  const bin = join(dir, 'xds-reference');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    log(`building bench/xds-reference → ${bin}`);
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: src, stdio: 'inherit' });
  }
  return bin;
}

// ---- the mesh ----------------------------------------------------------------------------------

function rng(seed) {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}
const SERVICE_NAMES = ['common', ...Array.from({ length: SERVICES }, (_, i) => `s${i}`)];
const endpoints = (i, gen) =>
  Array.from({ length: 8 }, (_, j) => ({
    address: `10.${gen % 250}.${i & 255}.${j + 1}`,
    port: 15006,
    labels: { version: j % 2 ? 'v2' : 'v1' },
    locality: { region: 'r1', zone: j < 4 ? 'a' : 'b' },
    healthy: true,
  }));

/** Workloads of 10 replicas; each calls `common` and DEPS of s0…s(SERVICES-1). */
function sidecarSpecs(n) {
  const rand = rng(42);
  const workloads = Math.ceil(n / 10);
  const deps = Array.from({ length: workloads }, () => {
    const d = new Set(['common']);
    while (d.size < DEPS + 1) d.add(`s${Math.floor(rand() * SERVICES)}`);
    return [...d];
  });
  return Array.from({ length: n }, (_, i) => {
    const w = i % workloads;
    return { id: `w${w}-${Math.floor(i / workloads)}.${NS}`, template: `w${w}`, namespace: NS, workload: `w${w}`, version: 'v1', dependencies: deps[w], protocol: 'sotw' };
  });
}

/** The RoutePolicy the full push applies, generation g (pilot: through the dispatcher; reference: its HTTP API). */
const policySpec = (g) => ({
  targetRef: { service: 'common' },
  subsets: [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' } },
  ],
  rules: [{ route: [{ subset: 'v1', weight: 100 - g }, { subset: 'v2', weight: g }], timeout: '2s', retries: { attempts: 2, retryOn: ['5xx'] } }],
  outlierDetection: { consecutive5xx: 3 + g, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 10 },
});

// ---- the two targets ---------------------------------------------------------------------------

class PilotTarget {
  name = 'pilot';
  async start() {
    this.cp = new EmbeddedControlPlane({ root, pilots: 2, extraArgs: EXTRA, logLevel: LOG_LEVEL, ...(LOG_DIR ? { workDir: LOG_DIR } : {}) });
    await this.cp.start();
    this.dispatcher = new DispatcherConnection(this.cp.dispatcherAddress);
    for (const [i, name] of SERVICE_NAMES.entries()) {
      await this.dispatcher.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
      await this.setEndpoints(name, endpoints(i, 1));
    }
    this.discovery = { metaAddress: this.cp.metaAddress };
  }
  setEndpoints(name, eps) {
    return this.dispatcher.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'ServiceEndpoints', metadata: { name, namespace: NS }, spec: { endpoints: eps } });
  }
  applyPolicy(g) {
    return this.dispatcher.apply({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'RoutePolicy', metadata: { name: 'common', namespace: NS }, spec: policySpec(g) });
  }
  /** Processes whose memory counts as the server's. */
  serverPids() {
    return this.cp.components().filter((c) => c.role === 'pilot' && c.pid).map((c) => ({ name: c.name, pid: c.pid }));
  }
  allPids() {
    return this.cp.components().filter((c) => c.pid).map((c) => ({ name: c.name, pid: c.pid }));
  }
  async stop() {
    this.dispatcher?.close();
    await this.cp?.stop();
  }
}

class ReferenceTarget {
  name = 'go-control-plane';
  async start() {
    const bin = buildReference();
    this.proc = spawn(bin, ['--xds-port', '0', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => (this.stderr = `${this.stderr ?? ''}${d}`.slice(-4000)));
    const line = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`xds-reference not ready in 10 s: ${this.stderr ?? ''}`)), 10_000);
      createInterface({ input: this.proc.stdout }).once('line', (l) => (clearTimeout(t), resolve(l)));
      this.proc.once('exit', (code) => reject(new Error(`xds-reference exited ${code}: ${this.stderr ?? ''}`)));
    });
    const m = /ready xds=(\S+) http=(\S+)/.exec(line);
    if (!m) throw new Error(`xds-reference: unexpected first line ${line}`);
    this.xds = m[1];
    this.http = `http://${m[2]}`;
    await this.put('/services', { services: SERVICE_NAMES.map((name, i) => ({ namespace: NS, name, port: 8080, endpoints: endpoints(i, 1) })) });
    this.discovery = { xdsAddress: this.xds, pilotId: 'gcp' };
  }
  async put(path, body, method = 'PUT') {
    const res = await fetch(`${this.http}${path}`, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }
  setEndpoints(name, eps) {
    return this.put(`/endpoints/${NS}/${name}`, eps);
  }
  applyPolicy(g) {
    const s = policySpec(g);
    return this.put(`/policy/${NS}/common`, { subsets: s.subsets, route: s.rules[0].route, timeoutMs: 2000, retries: 2, consecutive5xx: s.outlierDetection.consecutive5xx });
  }
  serverPids() {
    return [{ name: 'xds-reference', pid: this.proc.pid }];
  }
  allPids() {
    return this.serverPids();
  }
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await gone;
  }
}

// ---- the simulator -----------------------------------------------------------------------------

class Fleet {
  constructor() {
    this.children = [];
    this.seq = 0;
  }
  async start(specs, discovery) {
    const per = Math.ceil(specs.length / CHILDREN);
    for (let i = 0; i < CHILDREN; i++) {
      const child = fork(join(here, 'fleet.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      const pending = new Map();
      child.on('message', (m) => {
        if (m.ready) return;
        pending.get(m.id)?.(m);
        pending.delete(m.id);
      });
      await new Promise((r) => child.once('message', r));
      this.children.push({ child, pending });
    }
    // Each child starts its share at CONNECT_RATE / CHILDREN per second, in ticks of 100 ms.
    const perTick = Math.max(1, Math.round(CONNECT_RATE / CHILDREN / 10));
    await this.all({ cmd: 'start', discovery, client: CLIENT, locate: LOCATE_CLIENT, perTick, tickMs: 100 }, (i) => ({ specs: specs.slice(i * per, (i + 1) * per) }));
  }
  ask(c, msg) {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      c.pending.set(id, (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      c.child.send({ ...msg, id });
    });
  }
  all(msg, per = () => ({})) {
    return Promise.all(this.children.map((c, i) => this.ask(c, { ...msg, ...per(i) })));
  }
  /** Sums numeric fields; concatenates arrays. */
  async sum(msg) {
    const parts = await this.all(msg);
    const out = {};
    for (const p of parts)
      for (const [k, v] of Object.entries(p)) {
        if (typeof v === 'number') out[k] = (out[k] ?? 0) + v;
        else if (Array.isArray(v)) out[k] = [...(out[k] ?? []), ...v];
        else if (v && typeof v === 'object') {
          out[k] ??= {};
          for (const [kk, vv] of Object.entries(v)) out[k][kk] = (out[k][kk] ?? 0) + vv;
        }
      }
    return out;
  }
  /** Polls `msg` until done === total (and total > 0), then asks once more with final: true. */
  async until(what, msg, timeoutMs = STEP_TIMEOUT_MS, pollMs = 50, partial = false) {
    const deadline = performance.now() + timeoutMs;
    let last;
    let said = performance.now();
    for (;;) {
      last = await this.sum(msg);
      if (last.total > 0 && last.done === last.total) return this.sum({ ...msg, final: true });
      if (performance.now() - said > 5000) {
        said = performance.now();
        log(`  ${what}: ${last.done} of ${last.total}${last.errors?.length ? ` (${last.errors.join('; ')})` : ''}${last.byPilot ? ` ${JSON.stringify(last.byPilot)}` : ''}`);
      }
      if (performance.now() > deadline && partial) {
        log(`${what}: only ${last.done} of ${last.total} after ${timeoutMs} ms`);
        return { ...(await this.sum({ ...msg, final: true })), timedOut: true };
      }
      if (performance.now() > deadline) throw new Error(`${what}: ${last.done ?? 0} of ${last.total ?? 0} after ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }
  pids() {
    return this.children.map((c, i) => ({ name: `sim-${i}`, pid: c.child.pid }));
  }
  async stop() {
    await this.all({ cmd: 'exit' }).catch(() => undefined);
    await Promise.all(this.children.map((c) => (c.child.exitCode === null ? new Promise((r) => c.child.once('exit', r)) : undefined)));
  }
}

// ---- /proc accounting --------------------------------------------------------------------------

const TICK_MS = 10; // USER_HZ = 100
function cpuSnapshot(procs) {
  return new Map(procs.map((p) => [p.name, readProc(p.pid)?.ticks ?? 0]));
}
function cpuSince(before, procs, wallMs) {
  // A process that died meanwhile (the killed pilot) has no figure.
  return procs.map((p) => {
    const ticks = readProc(p.pid)?.ticks;
    const ms = ticks === undefined ? NaN : (ticks - (before.get(p.name) ?? 0)) * TICK_MS;
    return { name: p.name, pct: (ms * 100) / wallMs, ms };
  });
}
const rssOf = (procs) => procs.reduce((n, p) => n + (readProc(p.pid)?.rssKb ?? 0) * 1024, 0);
const cpuLine = (list) => list.map((c) => `${c.name} ${Number.isFinite(c.pct) ? `${c.pct.toFixed(0)}%` : 'gone'}`).join(', ');

/** Runs `body` and returns its result with the CPU % (of one core) of every process meanwhile. */
async function withCpu(procs, body) {
  const before = cpuSnapshot(procs);
  const t0 = performance.now();
  const result = await body();
  return { ...result, cpu: cpuSince(before, procs, performance.now() - t0) };
}

/**
 * The kernel's count of connections dropped because a listener's accept queue was full
 * (TcpExt ListenOverflows, machine-wide: other processes' listeners count too).
 */
function listenOverflows() {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  const i = names?.indexOf('ListenOverflows') ?? -1;
  return i > 0 ? Number(values[i]) : NaN;
}

/**
 * Every second from the kill until stopped: where the victims are (locating, in backoff, waiting
 * for their first response — the pilot's admission queue — receiving, synced elsewhere), with the
 * surviving pilot's admission queue and the meta server's locate counts, as the failure's timeline.
 */
function sampleTimeline(target, fleet, victim, at) {
  const rows = [];
  let stopped = false;
  // CPU (% of one core) since the previous row: who had the cores in each second of the storm.
  const procs = [...target.allPids().filter((p) => p.name !== victim), ...fleet.pids()];
  let cpuFrom = cpuSnapshot(procs);
  let cpuAt = performance.now();
  const metric = async (addr, name) => {
    const text = await (await fetch(`http://${addr}/metrics`, { signal: AbortSignal.timeout(900) })).text();
    const out = {};
    for (const line of text.split('\n')) if (line.startsWith(name)) out[line.slice(name.length, line.lastIndexOf(' ')) || '_'] = Number(line.slice(line.lastIndexOf(' ') + 1));
    return out;
  };
  const survivors = target.cp.children.filter((c) => c.role === 'pilot' && c.name !== victim);
  const survivorsCpu = (pctOf) => survivors.map((c) => `${c.name} ${pctOf((n) => n === c.name)}`).join(' ');
  const loop = (async () => {
    while (!stopped) {
      const started = now();
      // 25 sidecars per simulator process that were not moved ask for EDS again (their request → response).
      await fleet.all({ cmd: 'probe', pilotId: victim, count: 25 });
      const { id: _, ...where } = await fleet.sum({ cmd: 'timeline', pilotId: victim });
      const row = { t: started - at, ...where };
      // "n/a": the process did not answer /metrics within 900 ms (itself a finding).
      for (const c of survivors) {
        // How long the pilot took to answer /metrics: a scrape runs on its event loop, between streams.
        const asked = now();
        const m = await metric(new URL(c.readyUrl).host, 'pilot_xds_').catch(() => undefined);
        const sumOf = (name) => (m ? Object.entries(m).filter(([k]) => k.startsWith(name)).reduce((a, [, v]) => a + v, 0) : 'n/a');
        row[`${c.name} queued`] = sumOf('queued_streams');
        // Streams the pilot has taken on (its handler ran): against the victims' 'waiting', what the simulator has yet to see.
        row[`${c.name} streams`] = sumOf('connected_proxies');
        row[`scrape ms`] = Math.round(now() - asked);
      }
      row['meta locates'] = await metric(target.cp.metaAdminAddress, 'octo_meta_locate_total').then((m) => Object.entries(m).map(([k, v]) => `${k.replace(/[{}"]|result=/g, '')}=${v}`).join(' '), () => 'n/a');
      const cpu = cpuSince(cpuFrom, procs, performance.now() - cpuAt);
      [cpuFrom, cpuAt] = [cpuSnapshot(procs), performance.now()];
      const pctOf = (f) => Math.round(cpu.filter((c) => f(c.name)).reduce((a, c) => a + (Number.isFinite(c.pct) ? c.pct : 0), 0));
      row['cpu %'] = `${survivorsCpu(pctOf)} meta ${pctOf((n) => n === 'meta-server')} sims ${pctOf((n) => n.startsWith('sim-'))}`;
      rows.push(row);
      await sleep(Math.max(0, 1000 - (now() - started)));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return rows;
    },
  };
}

// ---- the phases --------------------------------------------------------------------------------

async function measure(target) {
  const out = { target: target.name };
  log(`${target.name}: starting`);
  running.add(target);
  await target.start();
  await sleep(1000);
  const idleRss = rssOf(target.serverPids());
  const fleet = new Fleet();
  running.add(fleet);
  const procs = () => [...target.allPids(), ...fleet.pids()];
  try {
    // Connect
    const specs = sidecarSpecs(N);
    const t0 = now();
    // CPU: the control plane's over the connect; the simulator children's since they were born.
    const conn = await withCpu(target.allPids(), async () => {
      await fleet.start(specs, target.discovery);
      return fleet.until(`${target.name}: ${N} sidecars synced`, { cmd: 'synced' }, STEP_TIMEOUT_MS, 250).catch(async (e) => ({ error: e.message, ...(await fleet.sum({ cmd: 'synced' })) }));
    });
    const synced = await fleet.sum({ cmd: 'synced' });
    out.connect = { ms: now() - t0, synced: synced.synced, byPilot: synced.byPilot, bytesPerSidecar: synced.bytes / Math.max(1, synced.synced), cpu: [...conn.cpu, ...cpuSince(new Map(), fleet.pids(), now() - t0)], errors: synced.errors };
    log(`${target.name}: ${synced.synced}/${N} synced in ${f0(out.connect.ms)} ms ${JSON.stringify(synced.byPilot)} ${synced.errors?.length ? synced.errors : ''}`);
    if (synced.synced < N) throw new Error(`only ${synced.synced} of ${N} sidecars synced: ${JSON.stringify(synced.errors)}`);
    await sleep(3000);
    const loadedRss = rssOf(target.serverPids());
    out.memory = { idleRss, loadedRss, perSidecar: (loadedRss - idleRss) / N, perProcess: target.serverPids().map((p) => ({ name: p.name, rss: rssOf([p]) })) };
    log(`${target.name}: RSS ${f0(idleRss / 2 ** 20)} → ${f0(loadedRss / 2 ** 20)} MB = ${f0(out.memory.perSidecar / 1024)} KB/sidecar`);

    // Propagation
    const push = async (what, types, apply) => {
      await fleet.all({ cmd: 'trim' });
      await sleep(300);
      return withCpu(procs(), async () => {
        const at = now();
        await apply();
        const applyMs = now() - at;
        const r = await fleet.until(what, { cmd: 'pushed', since: at, types, deps: 'common' });
        return { applyMs, n: r.latencies.length, p50: pct(r.latencies, 50), p99: pct(r.latencies, 99), max: Math.max(...r.latencies) };
      });
    };
    out.eds = [];
    out.full = [];
    for (let g = 1; g <= REPEAT && PHASES.has('propagation'); g++) {
      out.eds.push(await push('EDS-only push', ['eds'], () => target.setEndpoints('common', endpoints(0, 10 + g))));
      log(`${target.name}: EDS #${g}: p50 ${f0(out.eds.at(-1).p50)} p99 ${f0(out.eds.at(-1).p99)} max ${f0(out.eds.at(-1).max)} ms over ${out.eds.at(-1).n}`);
      out.full.push(await push('full push', ['cds', 'rds'], () => target.applyPolicy(g)));
      log(`${target.name}: full #${g}: p50 ${f0(out.full.at(-1).p50)} p99 ${f0(out.full.at(-1).p99)} max ${f0(out.full.at(-1).max)} ms over ${out.full.at(-1).n}`);
    }

    // Churn storm: CHURN_RATE changes/s round-robin over s0…s(SERVICES-1), fired on schedule
    // (at most 64 applies in flight; one that cannot start on time is counted late).
    await fleet.all({ cmd: 'trim' });
    await sleep(500);
    if (PHASES.has('churn')) out.churn = await withCpu(procs(), async () => {
      const total = CHURN_RATE * CHURN_SECONDS;
      const gap = 1000 / CHURN_RATE;
      const from = now();
      let inflight = 0;
      let late = 0;
      let failed = 0;
      const applyMs = [];
      const waits = [];
      // Bounded in time: what is not issued by the end of the window (plus 5 s) is not issued,
      // and the achieved rate says so.
      let issued = 0;
      for (let i = 0; i < total && now() < from + CHURN_SECONDS * 1000 + 5000; i++) {
        const due = from + i * gap;
        if (now() < due) await sleep(due - now());
        issued++;
          if (inflight >= 64) late++;
        while (inflight >= 64) await sleep(1);
        inflight++;
        const svc = i % SERVICES;
        const t = now();
        waits.push(
          target
            .setEndpoints(`s${svc}`, endpoints(svc + 1, 2 + Math.floor(i / SERVICES)))
            .then(() => applyMs.push(now() - t))
            .catch((e) => {
              failed++;
              if (failed <= 3) log(`${target.name}: churn apply failed: ${e.message}`);
            })
            .finally(() => inflight--),
        );
      }
      await Promise.all(waits);
      const to = now();
      // Settle: until no EDS arrived for 2 s (bounded).
      let settledAt = to;
      for (const deadline = to + 60_000; now() < deadline; ) {
        await sleep(500);
        const { last } = (await fleet.all({ cmd: 'lastEds' })).reduce((a, b) => ({ last: Math.max(a.last, b.last) }));
        settledAt = Math.max(last, to);
        if (now() - last > 2000) break;
      }
      const c = await fleet.sum({ cmd: 'churn', from, to, deps: SERVICE_NAMES.slice(1), windowMs: WINDOW_MS });
      const seconds = (to - from) / 1000;
      return {
        changes: issued,
        seconds,
        rate: issued / seconds,
        late,
        failed,
        applyP99: pct(applyMs, 99),
        sidecars: c.sidecars,
        pushesPerSidecarPerSecond: c.pushes / c.sidecars / seconds,
        pushesPerSidecarPerWindow: c.pushes / c.windows,
        crowdedWindows: c.crowded / c.windows,
        maxInWindow: c.maxInWindow,
        settleMs: settledAt - to,
      };
    });
    if (out.churn) log(`${target.name}: churn ${f0(out.churn.rate)}/s → ${out.churn.pushesPerSidecarPerSecond.toFixed(2)} EDS/sidecar/s, settle ${f0(out.churn.settleMs)} ms`);

    // Failure: kill the busiest pilot (reference: the same number reconnect at once).
    await fleet.all({ cmd: 'trim' });
    await sleep(1000);
    if (!PHASES.has('failure')) {
      // skipped
    } else if (target instanceof PilotTarget) {
      const { byPilot } = await fleet.sum({ cmd: 'synced' });
      const [victim] = Object.entries(byPilot).sort((a, b) => b[1] - a[1])[0];
      const { victims } = await fleet.sum({ cmd: 'victims', pilotId: victim });
      out.failure = await withCpu(procs(), async () => {
        const at = now();
        const overflowsBefore = listenOverflows();
        await profile('start', procs());
        await target.cp.kill(victim, 'SIGKILL');
        const timeline = sampleTimeline(target, fleet, victim, at);
        const res = await fleet.until(`${victims} sidecars of ${victim} re-homed`, { cmd: 'rehomed', pilotId: victim, at }, 120_000, 100, true);
        const steps = {
          locate: res.locateMs,
          '(backoff': res.backoffMs,
          'call)': res.locateCallMs,
          firstResponse: res.firstResponseMs,
          '(headers': res.headersMs,
          'handling)': res.handlingMs,
          sync: res.syncMs,
          'request→response': res.requestMs,
          'unmoved request→response': res.probeMs,
          locateFailures: res.locateFailures,
          streamsLost: res.streamsLost,
        };
        await profile('stop', procs().filter((p) => p.name !== victim));
        return {
          listenOverflows: listenOverflows() - overflowsBefore,
          simLoop: res.simLoop,
          probes: res.probeMs?.length ?? 0,
          timeline: await timeline.stop(),
          steps: Object.fromEntries(Object.entries(steps).map(([k, xs]) => [k, { p50: pct(xs, 50), p99: pct(xs, 99), max: Math.max(...xs) }])), what: `SIGKILL ${victim}`, victims, done: res.done, timedOut: !!res.timedOut, allMs: Math.max(...res.sinceKill), p50: pct(res.sinceKill, 50), p99: pct(res.sinceKill, 99), worstResponse: Math.max(...res.response), responseP99: pct(res.response, 99) };
      });
    } else {
      const count = Math.round(N / 2);
      out.failure = await withCpu(procs(), async () => {
        const at = now();
        await fleet.all({ cmd: 'reconnect' }, () => ({ count: Math.ceil(count / CHILDREN) }));
        const res = await fleet.until(`${count} sidecars reconnected`, { cmd: 'back', at }, 120_000, 100, true);
        return { what: `${count} sidecars reconnect at once`, victims: res.total, done: res.done, timedOut: !!res.timedOut, allMs: Math.max(...res.latencies), p50: pct(res.latencies, 50), p99: pct(res.latencies, 99), worstResponse: Math.max(...res.latencies), responseP99: pct(res.latencies, 99) };
      });
    }
    if (out.failure) log(`${target.name}: ${out.failure.what}: ${out.failure.victims} synced again within ${f0(out.failure.allMs)} ms, worst response ${f0(out.failure.worstResponse)} ms`);
    const sim = await fleet.sum({ cmd: 'usage' });
    out.simulator = { rss: sim.rss, cpuMs: sim.cpuMs };
  } catch (err) {
    out.error = err.message;
    log(`${target.name}: FAILED: ${err.stack}`);
  } finally {
    await fleet.stop();
    await target.stop();
    running.delete(fleet);
    running.delete(target);
  }
  return out;
}

// ---- report ------------------------------------------------------------------------------------

// Ctrl-C / SIGTERM: stop what this run started (the control plane's children, the Go server, the simulator).
const running = new Set();
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, async () => {
    log(`${sig}: stopping what this run started`);
    await Promise.allSettled([...running].map((x) => x.stop()));
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });

const loadBefore = loadavg()[0];
const started = new Date();
const results = {};
if (ONLY !== 'gcp') results.pilot = await measure(new PilotTarget());
if (ONLY !== 'pilot') results.gcp = await measure(new ReferenceTarget());

const median = (runs) => (runs?.length ? [...runs].sort((a, b) => a.p99 - b.p99)[Math.floor(runs.length / 2)] : undefined);
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `×${(a / b).toFixed(2)}` : '-');
const P = results.pilot ?? {};
const G = results.gcp ?? {};
const lines = [];
const say = (l = '') => lines.push(l);
say(`Control plane at ${N} sidecars, beside go-control-plane — ${started.toISOString()}`);
say(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; 1-min load ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after`);
say(`Mesh: ${SERVICES + 1} services × 8 endpoints; ${Math.ceil(N / 10)} workloads of 10 sidecars (SotW), each calling 'common' + ${DEPS} others; simulator: ${CHILDREN} child processes, ${CLIENT} client (Locate: ${LOCATE_CLIENT})`);
say(`Pilot: dispatcher + meta server + 2 pilots (sidecars locate through the meta server); reference: bench/xds-reference (go-control-plane v0.14.0, envoy API v1.40.0, snapshot cache, ADS)`);
for (const [name, r] of [['pilot', P], ['go-control-plane', G]]) {
  if (r.error) say(`\n${name}: FAILED: ${r.error}`);
}
say('\n                                   pilot        go-control-plane   pilot/gcp   goal');
const row = (what, p, g, goal = '') => say(`  ${what.padEnd(32)} ${String(p).padStart(10)}   ${String(g).padStart(16)}   ${(Number(p) && Number(g) ? ratio(Number(p), Number(g)) : '-').padStart(9)}   ${goal}`);
row('connect all (ms)', f0(P.connect?.ms), f0(G.connect?.ms));
row('initial config (KB/sidecar)', (P.connect?.bytesPerSidecar / 1024).toFixed(1), (G.connect?.bytesPerSidecar / 1024).toFixed(1));
row('server RSS idle (MB)', f0(P.memory?.idleRss / 2 ** 20), f0(G.memory?.idleRss / 2 ** 20));
row('server RSS loaded (MB)', f0(P.memory?.loadedRss / 2 ** 20), f0(G.memory?.loadedRss / 2 ** 20));
row('memory per sidecar (KB)', f0(P.memory?.perSidecar / 1024), f0(G.memory?.perSidecar / 1024), '≤ 512 KB');
const [pe, ge, pf, gf] = [median(P.eds), median(G.eds), median(P.full), median(G.full)];
row('EDS-only p50 (ms)', f0(pe?.p50), f0(ge?.p50));
row('EDS-only p99 (ms)', f0(pe?.p99), f0(ge?.p99), '≤ 1000 ms and ≤ 1.5× gcp');
row('EDS-only max (ms)', f0(pe?.max), f0(ge?.max));
row('full push (CDS+RDS) p50 (ms)', f0(pf?.p50), f0(gf?.p50));
row('full push (CDS+RDS) p99 (ms)', f0(pf?.p99), f0(gf?.p99), '≤ 1000 ms and ≤ 1.5× gcp');
row('full push max (ms)', f0(pf?.max), f0(gf?.max));
row('churn: changes/s achieved', f0(P.churn?.rate), f0(G.churn?.rate), `${CHURN_RATE}/s for ${CHURN_SECONDS} s`);
row('churn: EDS/sidecar/s', P.churn?.pushesPerSidecarPerSecond?.toFixed(2), G.churn?.pushesPerSidecarPerSecond?.toFixed(2));
row(`churn: EDS/sidecar/${WINDOW_MS} ms window`, P.churn?.pushesPerSidecarPerWindow?.toFixed(3), G.churn?.pushesPerSidecarPerWindow?.toFixed(3));
row('churn: windows with >1 push', `${((P.churn?.crowdedWindows ?? NaN) * 100).toFixed(1)}%`, `${((G.churn?.crowdedWindows ?? NaN) * 100).toFixed(1)}%`);
row('churn: settle after last (ms)', f0(P.churn?.settleMs), f0(G.churn?.settleMs));
row('failure: sidecars moved', P.failure?.victims, G.failure?.victims);
row('failure: synced again in 120 s', P.failure?.done, G.failure?.done);
row('failure: all synced again (ms)', P.failure?.timedOut ? '> 120000' : f0(P.failure?.allMs), G.failure?.timedOut ? '> 120000' : f0(G.failure?.allMs), '≤ 30000 ms (pilot kill)');
row('failure: worst response (ms)', f0(P.failure?.worstResponse), f0(G.failure?.worstResponse), '≤ 5000 ms');
say(`\n  failure: pilot = ${P.failure?.what ?? '-'} (time from the kill; response = a sidecar's stream lost → synced on the other pilot); gcp = ${G.failure?.what ?? '-'} (no second server to move to)`);
say(`  propagation: change applied (pilot: dispatcher apply; gcp: HTTP PUT) → the last required type received and ACKed by every sidecar calling 'common' (${N}); median of ${REPEAT} runs by p99; pilot includes its 100 ms debounce`);
for (const [name, r] of [['pilot', P], ['gcp', G]]) {
  say(`\n  ${name}: runs EDS p99 ${r.eds?.map((x) => f0(x.p99)).join(' / ') ?? '-'}; full p99 ${r.full?.map((x) => f0(x.p99)).join(' / ') ?? '-'}; apply ${f0(median(r.eds)?.applyMs)} / ${f0(median(r.full)?.applyMs)} ms`);
  say(`    CPU (% of one core): connect: ${r.connect ? cpuLine(r.connect.cpu) : '-'}`);
  say(`    EDS push: ${pe && r === P ? cpuLine(pe.cpu) : ge && r === G ? cpuLine(ge.cpu) : '-'}`);
  say(`    full push: ${pf && r === P ? cpuLine(pf.cpu) : gf && r === G ? cpuLine(gf.cpu) : '-'}`);
  say(`    churn: ${r.churn ? cpuLine(r.churn.cpu) : '-'}; ${r.churn ? `late starts ${r.churn.late}, failed ${r.churn.failed}, apply p99 ${f0(r.churn.applyP99)} ms, max pushes in one window ${r.churn.maxInWindow}` : ''}`);
  say(`    failure: ${r.failure ? cpuLine(r.failure.cpu) : '-'}`);
  // CPU time (not share): what the simulator costs per sidecar beside what the control plane does.
  const cpuMs = (list, pick) => list?.filter((c) => pick(c.name) && Number.isFinite(c.ms)).reduce((n, c) => n + c.ms, 0);
  const isSim = (n) => n.startsWith('sim-');
  const cpuTimes = (list, per) =>
    list ? `simulator ${f0(cpuMs(list, isSim))} ms (${(cpuMs(list, isSim) / per).toFixed(2)} per sidecar), ${list.filter((c) => !isSim(c.name) && Number.isFinite(c.ms)).map((c) => `${c.name} ${f0(c.ms)}`).join(', ')} ms` : '-';
  say(`    CPU time: connect: ${cpuTimes(r.connect?.cpu, N)}`);
  const push = (mine, theirs) => (r === P ? mine : theirs)?.cpu;
  if (push(pe, ge)) say(`    CPU time: EDS push: ${cpuTimes(push(pe, ge), N)}; full push: ${cpuTimes(push(pf, gf), N)}`);
  if (r.failure?.cpu && r.failure.victims) say(`    CPU time: failure: ${cpuTimes(r.failure.cpu, r.failure.victims)} (per moved sidecar)`);
  if (r.failure?.simLoop) say(`    simulator event loops during the failure (busy share, delay p99 / max ms): ${r.failure.simLoop.map((l, i) => `sim-${i} ${(l.elu * 100).toFixed(0)}% ${f0(l.p99)} / ${f0(l.max)}`).join(', ')}`);
  if (r.failure?.steps) say(`    failure steps (p50 / p99 / max): ${Object.entries(r.failure.steps).map(([k, v]) => `${k} ${f0(v.p50)} / ${f0(v.p99)} / ${f0(v.max)}`).join('; ')} (ms, failures and streams lost are counts; ${r.failure.probes} unmoved probes); listen overflows (machine-wide) ${r.failure.listenOverflows}`);
  for (const row of r.failure?.timeline ?? []) say(`      t+${(row.t / 1000).toFixed(1).padStart(5)} s: ${Object.entries(row).filter(([k]) => k !== 't').map(([k, v]) => `${k} ${v}`).join(', ')}`);
  say(`    memory: ${r.memory?.perProcess.map((p) => `${p.name} ${f0(p.rss / 2 ** 20)} MB`).join(', ') ?? '-'}; simulator RSS ${f0((r.simulator?.rss ?? NaN) / 2 ** 20)} MB`);
}
console.log(lines.join('\n'));
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ started, N, results }, null, 2));
process.exit(P.error || G.error ? 1 : 0);
