#!/usr/bin/env node
// Checks per second for E endpoints called by S sidecars: the central checker (plus the selective
// P2P path, which adds probes only for disagreeing (sidecar, endpoint) pairs) against every
// sidecar actively checking every endpoint it may call.
//
// - Endpoints: E real HTTP listeners (one per endpoint) in a child process (endpoints.mjs).
// - Central: a dispatcher and a meta server (processes) and one real checker replica
//   (packages/health/dist/main.js) checking all E endpoints (spread over `--services` services,
//   one RoutePolicy each with an HTTP check); checks/s from its /metrics, CPU from /proc.
// - Every sidecar checks everything: one sidecar-equivalent prober (prober.mjs: the checker's own
//   probe() over all E endpoints per interval) is measured, then K of them at once to show that
//   the cost grows linearly, and S sidecars are EXTRAPOLATED as S × one prober (S processes do
//   not fit on this machine).
// - Central + selective P2P: a disagreeing pair is probed once per interval by its sidecar
//   (packages/proxy p2p-decision.ts), so it adds D/interval checks for D disagreeing pairs; D = 0
//   in a healthy mesh. Computed for the given D values at the prober's measured cost per check.
//
//   npx tsc -b packages/health packages/mock-sidecar && node bench/health/check-rate.mjs \
//     [--endpoints 1000] [--sidecars 1000] [--services 100] [--interval 1000] [--timeout 500] \
//     [--window 15] [--probers 1,2] [--disagree 0,1000,10000] [--protocol http|grpc]
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { DispatcherConnection } from '../../packages/clients/dist/index.js';
import { EmbeddedControlPlane } from '../../packages/mock-sidecar/dist/index.js';
import { REPO_ROOT, startProcess, stopAll } from '../../packages/testing/dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const E = Number(arg('endpoints', 1000));
const S = Number(arg('sidecars', 1000));
const SERVICES = Math.min(E, Number(arg('services', 100)));
const INTERVAL = Number(arg('interval', 1000));
const TIMEOUT = Number(arg('timeout', 500));
const WINDOW_S = Number(arg('window', 15));
const PROBERS = String(arg('probers', '1,2')).split(',').map(Number);
const DISAGREE = String(arg('disagree', '0,1000,10000')).split(',').map(Number);
const PROTOCOL = arg('protocol', 'http');
if (!['http', 'grpc'].includes(PROTOCOL)) throw new Error(`--protocol: must be http or grpc, not ${PROTOCOL}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = 100; // getconf CLK_TCK on Linux
/** CPU time (user + system) a process has used, in ms. */
const cpuMs = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
};
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const ask = (child, what) =>
  new Promise((resolve) => {
    const on = (m) => (child.off('message', on), resolve(m));
    child.on('message', on);
    child.send(what);
  });
const until = async (what, fn, timeoutMs = 120_000) => {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(200);
  }
  throw new Error(`timed out: ${what}`);
};
const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Measures `count()` (checks so far) and the CPU of `pids` over the window. */
async function measure(pids, count, endpointsPid) {
  const [c0, t0] = [await count(), performance.now()];
  const cpu0 = pids.map(cpuMs);
  const ep0 = cpuMs(endpointsPid);
  await sleep(WINDOW_S * 1000);
  const [c1, t1] = [await count(), performance.now()];
  const cpu = pids.map((p, i) => cpuMs(p) - cpu0[i]).reduce((a, b) => a + b, 0);
  const seconds = (t1 - t0) / 1000;
  const checks = c1.checks - c0.checks;
  return {
    rate: checks / seconds,
    okShare: checks ? (c1.ok - c0.ok) / checks : 0,
    cpuPct: (cpu / 1000 / seconds) * 100,
    usPerCheck: checks ? (cpu * 1000) / checks : NaN,
    endpointsCpuPct: ((cpuMs(endpointsPid) - ep0) / 1000 / seconds) * 100,
    endpointsUsPerCheck: checks ? ((cpuMs(endpointsPid) - ep0) * 1000) / checks : NaN,
  };
}

const load0 = loadavg();
const endpoints = fork(join(import.meta.dirname, 'endpoints.mjs'), [String(E), PROTOCOL], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const { ports } = await new Promise((r) => endpoints.once('message', r));
const results = {};
let cp;
let dispatcher;
try {
  // ---- Central: one real checker replica over all E endpoints -------------------------------
  cp = new EmbeddedControlPlane({ root: REPO_ROOT, pilots: 0 });
  await cp.start();
  dispatcher = new DispatcherConnection(cp.dispatcherAddress);
  const per = Math.ceil(E / SERVICES);
  for (let s = 0; s < SERVICES; s++) {
    const name = `svc-${s}`;
    const mine = ports.slice(s * per, (s + 1) * per);
    if (!mine.length) break;
    await dispatcher.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'bench' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
    await dispatcher.apply({
      apiVersion: 'model.mesh.octo.io/v1',
      kind: 'ServiceEndpoints',
      metadata: { name, namespace: 'bench' },
      spec: { endpoints: mine.map((port, i) => ({ address: '127.0.0.1', port, labels: {}, healthy: true, instance: `${name}-${i}` })) },
    });
    await dispatcher.apply({
      apiVersion: 'mesh.octo.io/v1alpha1',
      kind: 'RoutePolicy',
      metadata: { name, namespace: 'bench' },
      spec: { targetRef: { service: name }, healthCheck: { ...(PROTOCOL === 'grpc' ? { grpc: {} } : { http: { path: '/health' } }), interval: `${INTERVAL}ms`, timeout: `${TIMEOUT}ms` } },
    });
  }
  const checker = startProcess('packages/health/dist/main.js', [
    '--checker-id', 'bench-checker',
    '--dispatcher-address', cp.dispatcherAddress,
    '--meta-server-address', cp.metaAddress,
    '--admin-host', '127.0.0.1', '--admin-port', '0',
    '--log-level', 'info', // its "listening" line carries the admin port
  ]);
  const admin = `127.0.0.1:${(await checker.line('listening')).adminPort}`;
  const checkerCount = async () => {
    const text = await (await fetch(`http://${admin}/metrics`)).text();
    let checks = 0;
    let ok = 0;
    for (const m of text.matchAll(/^octo_health_checks_total\{([^}]*)\} (\S+)$/gm)) {
      checks += Number(m[2]);
      if (m[1].includes('result="ok"')) ok += Number(m[2]);
    }
    return { checks, ok };
  };
  await until('the checker ran two rounds over every endpoint', async () => (await checkerCount()).checks >= 2 * E);
  results.central = { ...(await measure([checker.child.pid], checkerCount, endpoints.pid)), rssMb: rssMb(checker.child.pid) };
  await checker.stop(5000);
  dispatcher.close();
  await cp.stop();
  cp = undefined;

  // ---- Per-sidecar: K sidecar-equivalent probers over all E endpoints -----------------------
  results.probers = [];
  for (const k of PROBERS) {
    const probers = Array.from({ length: k }, () =>
      fork(join(import.meta.dirname, 'prober.mjs'), [JSON.stringify({ ports, intervalMs: INTERVAL, timeoutMs: TIMEOUT, protocol: PROTOCOL })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    let reasons = {};
    const count = async () => {
      const each = await Promise.all(probers.map((p) => ask(p, 'count')));
      reasons = Object.assign({}, ...each.map((e) => e.reasons));
      return each.reduce((a, b) => ({ checks: a.checks + b.checks, ok: a.ok + b.ok }), { checks: 0, ok: 0 });
    };
    await until(`${k} prober(s) ran two rounds`, async () => (await count()).checks >= 2 * E * k);
    results.probers.push({ k, ...(await measure(probers.map((p) => p.pid), count, endpoints.pid)), rssMb: rssMb(probers[0].pid) });
    if (Object.keys(reasons).length) console.error(`${k} prober(s): failures by reason (from the start): ${JSON.stringify(reasons)}`);
    for (const p of probers) p.disconnect();
    await sleep(500);
  }
} finally {
  dispatcher?.close();
  await cp?.stop();
  endpoints.disconnect();
  await stopAll();
}
const load1 = loadavg();

// ---- Report ---------------------------------------------------------------------------------
const c = results.central;
const one = results.probers.find((p) => p.k === 1) ?? results.probers[0];
const oneRate = one.rate / one.k;
const oneCpu = one.cpuPct / one.k;
const every = { rate: oneRate * S, cores: (oneCpu * S) / 100 };
const ideal = (E * 1000) / INTERVAL;
console.log(`check rate: ${E} endpoints (${SERVICES} services), ${S} sidecars; ${PROTOCOL === 'grpc' ? 'gRPC (grpc.health.v1, one channel per endpoint)' : 'HTTP (a connection per check)'} checks, interval ${INTERVAL} ms, timeout ${TIMEOUT} ms; window ${WINDOW_S} s each`);
console.log(`machine: ${cpus().length} cores (shared), load average 1/5/15 min before ${load0.map((x) => x.toFixed(2)).join(' / ')}, after ${load1.map((x) => x.toFixed(2)).join(' / ')}`);
console.log('');
console.log(`central checker (1 real replica, measured): ${fmt(c.rate)} checks/s (ideal E/interval = ${fmt(ideal)}; ${fmt(c.okShare * 100, 1)} % ok)`);
console.log(`  CPU ${fmt(c.cpuPct, 1)} % of a core = ${fmt(c.usPerCheck)} µs per check, RSS ${fmt(c.rssMb)} MB; the endpoints answering it: ${fmt(c.endpointsCpuPct, 1)} % of a core (${fmt(c.endpointsUsPerCheck)} µs per check)`);
for (const p of results.probers)
  console.log(
    `${p.k} sidecar-equivalent prober${p.k > 1 ? 's' : ''} over all ${E} endpoints (measured): ${fmt(p.rate)} checks/s (${fmt(p.okShare * 100, 1)} % ok), CPU ${fmt(p.cpuPct, 1)} % of a core = ${fmt(p.usPerCheck)} µs per check (RSS ${fmt(p.rssMb)} MB each); the endpoints: ${fmt(p.endpointsCpuPct, 1)} % (${fmt(p.endpointsUsPerCheck)} µs per check)`,
  );
console.log('');
console.log(`every sidecar checks everything (EXTRAPOLATED: ${S} × one prober): ${fmt(every.rate)} checks/s, ${fmt(every.cores, 1)} cores of probing over the mesh, every endpoint answering ${fmt(every.rate / E)} checks/s ≈ ${fmt(((every.rate / E) * one.endpointsUsPerCheck) / 1e4, 1)} % of a core each (central: ${fmt(c.rate / E, 1)} checks/s)`);
for (const d of DISAGREE) {
  const p2p = (d * 1000) / INTERVAL;
  const rate = c.rate + p2p;
  console.log(
    `central + selective P2P with ${fmt(d)} disagreeing (sidecar, endpoint) pairs: ${fmt(c.rate)} + ${fmt(p2p)} = ${fmt(rate)} checks/s, ` +
      `${fmt((c.cpuPct + (p2p * one.usPerCheck) / 1e4) / 100, 2)} cores → every-sidecar / this = ${fmt(every.rate / rate, 1)}× the checks, ${fmt(every.cores / ((c.cpuPct + (p2p * one.usPerCheck) / 1e4) / 100), 1)}× the CPU`,
  );
}
console.log('');
console.log(`checks at the API's default interval (10 s): divide every rate by ${fmt(10_000 / INTERVAL, 1)}; the ratios stay.`);
