#!/usr/bin/env node
// Pilot benchmark: propagation time from a change to the ACK of every affected sidecar, and
// Pilot memory per connected sidecar, at 100, 1,000 and 5,000 simulated sidecars on real gRPC
// streams (the simulator runs in child processes, so its memory and CPU are not Pilot's).
// Each figure is printed with its baseline from the same run: memory against the idle pilot,
// a full push against an EDS-only push, every size against the smallest.
//
// Usage: node_modules/.bin/node --expose-gc bench/pilot/bench.mjs [--sizes 100,1000,5000]
//        (builds packages/pilot first; loopback only; bounded by a timeout per step)
import { execFileSync, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
try {
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b', 'packages/pilot', 'packages/mock-sidecar'], { cwd: root, stdio: 'ignore' });
} catch {
  // type errors elsewhere in the workspace do not stop emit; a missing build fails at import below
}
const { AdsServer, MemoryMeshSource, Pilot } = await import('@octo-mesh/pilot');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZES = arg('sizes', '100,1000,5000').split(',').map(Number);
const SERVICES = Number(arg('services', '200'));
const DEPS = Number(arg('deps', '4'));
const PER_CHILD = 2500;
const REPEAT = Number(arg('repeat', '3'));
const STEP_TIMEOUT_MS = 120_000;

if (typeof globalThis.gc !== 'function') {
  console.error('run with --expose-gc (node_modules/.bin/node --expose-gc bench/pilot/bench.mjs)');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// The mesh: SERVICES services with 8 endpoints in two zones, plus `common`, which every workload
// calls (so a change to it affects every sidecar: the worst case for propagation).

function rng(seed) {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}
const svc = (name) => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
const endpoints = (i, gen = 0) =>
  Array.from({ length: 8 }, (_, j) => ({
    address: `10.${(i >> 8) & 255}.${i & 255}.${j + 1 + gen * 10}`,
    port: 15006,
    labels: { version: j % 2 ? 'v2' : 'v1' },
    locality: { region: 'r1', zone: j < 4 ? 'a' : 'b' },
    healthy: true,
  }));

function mesh() {
  const source = new MemoryMeshSource();
  for (let i = 0; i < SERVICES; i++) source.upsertService(svc(`s${i}`), endpoints(i));
  source.upsertService(svc('common'), endpoints(9999));
  return source;
}

/** Sidecars: workloads of 10 replicas; each workload calls DEPS services and `common`. */
function sidecars(n, unscoped = false) {
  const rand = rng(42);
  const all = ['common', ...Array.from({ length: SERVICES }, (_, i) => `s${i}`)];
  const workloads = Math.max(1, Math.ceil(n / 10));
  const deps = Array.from({ length: workloads }, () => {
    const d = new Set(['common']);
    while (d.size < DEPS + 1) d.add(`s${Math.floor(rand() * SERVICES)}`);
    return [...d];
  });
  return Array.from({ length: n }, (_, i) => ({
    id: `sidecar-${i}`,
    namespace: 'bench',
    dependencies: unscoped ? all : deps[i % workloads],
    locality: { region: 'r1', zone: i % 2 ? 'a' : 'b' },
  }));
}

// ---------------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (b) => (b / 1024 / 1024).toFixed(2);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
async function settleMemory() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await sleep(100);
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external + m.arrayBuffers, rss: m.rss };
}
async function withTimeout(p, what) {
  let t;
  const timeout = new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: timed out after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

async function run(n, unscoped = false) {
  const source = mesh();
  const events = [];
  let bytes = 0;
  const pilot = new Pilot({ source, onPropagated: (nodeId, typeUrl, ms) => events.push({ nodeId, typeUrl, ms }) });
  const callbacks = {
    ...pilot.callbacks,
    onStreamResponse: (s, typeUrl, version, nonce, names) => {
      pilot.callbacks.onStreamResponse(s, typeUrl, version, nonce, names);
      const ts = pilot.cache.getSnapshot(s.node.id)?.get(typeUrl);
      for (const name of names) bytes += ts?.resources.get(name)?.any.value.length ?? 0;
    },
  };
  const server = new AdsServer({ cache: pilot.cache, callbacks, admission: { ratePerSecond: 2000, burst: 1000 } });
  const port = await server.listen(0, '127.0.0.1');
  const idle = await settleMemory();

  // Connect
  const specs = sidecars(n, unscoped);
  const children = [];
  const t0 = performance.now();
  const ready = [];
  for (let i = 0; i < specs.length; i += PER_CHILD) {
    const child = fork(join(here, 'sim.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    await new Promise((r) => child.once('message', r)); // started
    ready.push(
      new Promise((resolve, reject) => {
        child.on('message', (m) => (m.type === 'ready' ? resolve(m) : m.type === 'error' ? reject(new Error(m.message)) : undefined));
      }),
    );
    child.send({ cmd: 'connect', target: `127.0.0.1:${port}`, sidecars: specs.slice(i, i + PER_CHILD) });
  }
  await withTimeout(Promise.all(ready), `connecting ${n} sidecars`);
  const connectMs = performance.now() - t0;
  const initialBytes = bytes;
  await sleep(500);
  const loaded = await settleMemory();

  // One change, wait for every affected sidecar's ACK of every type it changed.
  const simCpu = async () => {
    const all = await Promise.all(
      children.map((c) => new Promise((resolve) => {
        const on = (m) => m.type === 'cpu' && (c.off('message', on), resolve(m.ms));
        c.on('message', on);
        c.send({ cmd: 'cpu' });
      })),
    );
    return all.reduce((a, b) => a + b, 0);
  };
  const push = async (what, apply) => {
    events.length = 0;
    bytes = 0;
    const sim0 = await simCpu();
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    apply();
    await withTimeout(
      (async () => {
        // every sidecar calls `common`: all n must ACK; then wait a little for other types of the same change
        while (new Set(events.map((e) => e.nodeId)).size < n) await sleep(10);
        let last = events.length;
        for (;;) {
          await sleep(200);
          if (events.length === last) break;
          last = events.length;
        }
      })(),
      what,
    );
    const cpu = process.cpuUsage(cpu0);
    const simMs = (await simCpu()) - sim0;
    const perNode = new Map();
    for (const e of events) perNode.set(e.nodeId, Math.max(perNode.get(e.nodeId) ?? 0, e.ms));
    const ms = [...perNode.values()];
    return {
      sidecars: perNode.size,
      types: [...new Set(events.map((e) => e.typeUrl.split('.').pop()))].sort(),
      p50: pct(ms, 50),
      p99: pct(ms, 99),
      max: Math.max(...ms),
      pilotCpuMs: (cpu.user + cpu.system) / 1000,
      simCpuMs: simMs,
      bytes,
      wallMs: performance.now() - wall0,
    };
  };
  const policy = (gen) => ({
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'common', namespace: 'bench', generation: gen },
    spec: {
      targetRef: { service: 'common' },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
      rules: [{ route: [{ subset: 'v1', weight: 100 - gen }, { subset: 'v2', weight: gen }], timeout: '2s', retries: { attempts: 2, retryOn: ['5xx'] } }],
      outlierDetection: { consecutive5xx: 3 + gen, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 10 },
    },
  });
  // Each kind of change REPEAT times; the figures are the median run (by p99) and the worst.
  const eds = [];
  const full = [];
  for (let i = 1; i <= REPEAT; i++) {
    eds.push(await push('EDS-only push', () => source.setEndpoints('bench/common', endpoints(9999, i))));
    // A RoutePolicy change on `common` re-translates it: new cluster settings and routes (and,
    // the first time, the subset clusters and their endpoints) for every sidecar.
    full.push(await push('full push', () => source.applyPolicy(policy(i))));
  }
  const scopes = pilot.describe().scopes;
  for (const c of children) c.send({ cmd: 'exit' });
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
  pilot.close();
  await server.close(500);
  return { n, unscoped, scopes, connectMs, initialBytes, idle, loaded, eds, full };
}

const { cpus, loadavg } = await import('node:os');
const loadBefore = loadavg()[0];
const results = [];
for (const n of SIZES) {
  process.stderr.write(`running ${n} sidecars...\n`);
  results.push(await run(n));
  await sleep(500);
}
// Baseline for scoping: the same number of sidecars as the smallest size... or UNSCOPED, each
// depending on every service (what a mesh without per-node scoping sends).
const UNSCOPED = Number(arg('unscoped', '1000'));
let unscoped;
if (UNSCOPED > 0) {
  process.stderr.write(`running ${UNSCOPED} unscoped sidecars...\n`);
  unscoped = await run(UNSCOPED, true);
}

const base = results[0];
console.log(
  `\nPilot benchmark — ${SERVICES + 1} services × 8 endpoints, sidecars in workloads of 10 calling ${DEPS} services + 'common'; Node ${process.version}, ${cpus().length} CPUs, 1-min load average ${loadBefore.toFixed(1)} before / ${loadavg()[0].toFixed(1)} after`,
);
console.log('\nMemory (Pilot process, after GC; baseline = the same pilot before any sidecar connected), and the initial configuration each sidecar received:');
for (const r of [...results, ...(unscoped ? [unscoped] : [])]) {
  const heap = (r.loaded.heap - r.idle.heap) / r.n;
  const rss = (r.loaded.rss - r.idle.rss) / r.n;
  console.log(
    `  ${String(r.n).padStart(5)} sidecars${r.unscoped ? ' UNSCOPED (all services)' : ''} (${r.scopes} scopes): initial config ${(r.initialBytes / r.n / 1024).toFixed(1)} KB/sidecar; heap+external ${mb(r.idle.heap)} → ${mb(r.loaded.heap)} MB = ${(heap / 1024).toFixed(1)} KB/sidecar; RSS ${mb(r.idle.rss)} → ${mb(r.loaded.rss)} MB = ${(rss / 1024).toFixed(1)} KB/sidecar  (goal ≤ 512 KB; istiod ~1.3 MB)`,
  );
}
const median = (runs) => [...runs].sort((a, b) => a.p99 - b.p99)[Math.floor(runs.length / 2)];
const worst = (runs) => [...runs].sort((a, b) => b.p99 - a.p99)[0];
console.log(`\nPropagation, change → ACK of every affected sidecar (every sidecar calls the changed service; includes the 100 ms debounce); median of ${REPEAT} runs by p99, and the worst run's p99:`);
for (const r of [...results, ...(unscoped ? [unscoped] : [])]) {
  for (const [name, runs] of [
    ['EDS-only', r.eds],
    ['full    ', r.full],
  ]) {
    const p = median(runs);
    console.log(
      `  ${String(r.n).padStart(5)}${r.unscoped ? " UNSCOPED" : ""} ${name}: p50 ${p.p50.toFixed(0)} ms, p99 ${p.p99.toFixed(0)} ms (worst run ${worst(runs).p99.toFixed(0)} ms), max ${p.max.toFixed(0)} ms over ${p.sidecars} sidecars; CPU: Pilot ${p.pilotCpuMs.toFixed(0)} ms, simulator ${p.simCpuMs.toFixed(0)} ms; ${mb(p.bytes)} MB pushed; types ${p.types.join('+')}  (goal p99 ≤ 1000 ms)`,
    );
  }
  const e = median(r.eds);
  const f = median(r.full);
  console.log(
    `        full vs EDS-only: ×${(f.p99 / e.p99).toFixed(2)} p99, ×${(f.pilotCpuMs / e.pilotCpuMs).toFixed(2)} Pilot CPU, ×${(f.bytes / e.bytes).toFixed(2)} bytes; connect all: ${(r.connectMs / 1000).toFixed(1)} s`,
  );
  r.eds = e;
  r.full = f;
}
if (unscoped) {
  const scoped = results.find((r) => r.n === unscoped.n) ?? results[0];
  console.log(
    `\nScoping against the unscoped baseline (${unscoped.n} sidecars, same run): initial config ×${(scoped.initialBytes / scoped.n / (unscoped.initialBytes / unscoped.n)).toFixed(3)}, ` +
      `EDS push bytes ×${(scoped.eds.bytes / unscoped.eds.bytes).toFixed(3)}, Pilot heap+external per sidecar ×${((scoped.loaded.heap - scoped.idle.heap) / scoped.n / ((unscoped.loaded.heap - unscoped.idle.heap) / unscoped.n)).toFixed(2)}, EDS p99 ${scoped.eds.p99.toFixed(0)} vs ${unscoped.eds.p99.toFixed(0)} ms`,
  );
}
if (results.length > 1) {
  console.log(`\nScaling against ${base.n} sidecars (same run):`);
  for (const r of results.slice(1))
    console.log(`  ${r.n}: ×${(r.n / base.n).toFixed(0)} sidecars → EDS p99 ×${(r.eds.p99 / base.eds.p99).toFixed(2)}, full p99 ×${(r.full.p99 / base.full.p99).toFixed(2)}, EDS Pilot CPU ×${(r.eds.pilotCpuMs / base.eds.pilotCpuMs).toFixed(2)}`);
}
process.exit(0);
