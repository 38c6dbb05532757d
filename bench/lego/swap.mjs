// LEGO hot-swap benchmark (not a test): how long a swap takes and what it costs the traffic.
//
// One run: the real agent (packages/lego-agent/dist) with a proxy serving a local upstream, two
// proxy packages of different versions in a real repository, and a load generator over kept-alive
// connections (half HTTP/1.1, half h2c; packages/lego-agent/dist/test-support/load.js).
//   1. 1,000 rps open loop: BASE seconds without swaps (the proxy's normal p99), then SWAPS swaps,
//      each after a window of NEAR ms without one and followed by a quiet GAP; per swap: time from
//      the target written to the old proxy gone, requests failed, p99 of the requests sent during
//      the swap window, added p99 = that minus the normal p99 (addedP99Ms; per protocol h1Added,
//      h2Added) and minus the p99 of the window just before it (addedNear, paired: the machine's
//      other load drifts over a run). After each swap a control without one (CONTROL=0 skips it):
//      the same two windows, NEAR ms and then as long as the swap, so addedNear can be read
//      against what two quiet windows differ by on this machine at this moment.
//   2. saturation (closed loop, CONC requests always in flight): the same, with the throughput
//      (SATURATION=0 skips it).
// Where the time goes, per swap: `tl`, the swap's timeline in ms after the target (the new
// process started / its warm-up began / the GC before its first accept / it accepts / promotion);
// `slowEnd`, the phase in which each of the window's slowest 1 % ended; `stalls`, gaps over 5 ms of
// a canary process (the machine did not run a ready process); `trafficGc`, GC pauses over 5 ms of
// the load generator's and the upstreams' threads (worker threads of their own, traffic.mjs).
// Usage: npm run build first (or tsc -b packages/lego-agent packages/proxy), then
//   node bench/lego/swap.mjs   (env: SWAPS=5 BASE=5 GAP=2 RPS=1000 CONC=64 MIN_READY=0.5 SPREAD=500 NEAR=2000 V8_HELPERS=auto WARM_UP=400 WARM_UP_MS=300 WARM_UP_DUTY=1 SATURATION=1 CONTROL=1)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleProxy, makePackage } from '../../packages/proxy-package/dist/build.js';
import { PackageRepository } from '../../packages/proxy-package/dist/index.js';
import { createLogger } from '../../packages/runtime/dist/index.js';
import { alive, proxySection, startAgent } from '../../packages/lego-agent/dist/test-support/harness.js';
import { quantile } from '../../packages/lego-agent/dist/test-support/load.js';

const SWAPS = Number(process.env.SWAPS ?? 5);
const BASE = Number(process.env.BASE ?? 5);
const GAP = Number(process.env.GAP ?? 2);
const RPS = Number(process.env.RPS ?? 1000);
const CONC = Number(process.env.CONC ?? 64);
const MIN_READY = Number(process.env.MIN_READY ?? 0.5);
const SPREAD = Number(process.env.SPREAD ?? 500);
const NEAR = Number(process.env.NEAR ?? 2000);
const CONTROL = process.env.CONTROL !== '0';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Who stalled, for the slowest requests: a canary process (a 1 ms timer at normal priority,
// reporting each gap over 5 ms: the machine did not run it) and the GC pauses of the traffic's
// threads (the load generator and the upstreams run in worker threads of their own, traffic.mjs,
// so this driver's garbage does not pause them; theirs delays every request in flight).
const canaryGaps = [];
const canary = spawn(process.execPath, ['-e', "process.stdout.on('error', () => process.exit()); let l = performance.now(); setInterval(() => { const n = performance.now(); if (n - l > 5) process.stdout.write(`${Date.now() - (n - l)} ${(n - l).toFixed(1)}\\n`); l = n; }, 1);"], { stdio: ['ignore', 'pipe', 'inherit'] });
canary.stdout.setEncoding('utf8').on('data', (d) => { for (const l of d.split('\n')) if (l) canaryGaps.push(l.split(' ').map(Number)); });
const traffic = (workerData) => new Worker(new URL('./traffic.mjs', import.meta.url), { workerData });

const dir = mkdtempSync(join(tmpdir(), 'octo-lego-bench-'));
const upWorker = traffic({ role: 'upstreams' });
const [up] = await once(upWorker, 'message');
const [b1, b2] = await Promise.all([bundleProxy('1.0.0'), bundleProxy('2.0.0')]);
mkdirSync(join(dir, 'boot'));
writeFileSync(join(dir, 'boot', 'proxy.mjs'), b1);
const repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, logger: createLogger('repo', 'error') });
await repo.start();
const pkgs = {};
for (const [version, bundle] of [['1.0.0', b1], ['2.0.0', b2]]) {
  const p = await makePackage({ version, bundle });
  await fetch(`${repo.url}/packages/${p.sha256}`, { method: 'PUT', body: p.bytes });
  pkgs[version] = { version, packageUrl: `${repo.url}/packages/${p.sha256}`, sha256: p.sha256 };
}
const targetFile = join(dir, 'target.json');
writeFileSync(targetFile, '{}');
const agent = await startAgent(dir, 'bench', {
  proxyEntry: join(dir, 'boot', 'proxy.mjs'),
  targetFile,
  minReadySeconds: MIN_READY,
  drainTimeoutMs: 5000,
  drainSpreadMs: SPREAD,
  // V8's helper threads: the proxy's default (`auto`: normal priority under the agent, as a pod
  // gets) unless V8_HELPERS says otherwise. Runs before LEGO round 3 pinned `idle`; idle helpers
  // of the old proxy made the swaps that add 100 ms and more (docs/benchmarks.md, LEGO round 3).
  // WARM_UP=0 turns the new proxy's warm-up off (its settings warmUpRequests, warmUpBudgetMs).
  proxy: {
    ...proxySection(up.h1Port, up.h2Port),
    ...(process.env.V8_HELPERS ? { v8Helpers: process.env.V8_HELPERS } : {}),
    ...(process.env.WARM_UP !== undefined ? { warmUpRequests: Number(process.env.WARM_UP) } : {}),
    ...(process.env.WARM_UP_MS !== undefined ? { warmUpBudgetMs: Number(process.env.WARM_UP_MS) } : {}),
    ...(process.env.WARM_UP_DUTY !== undefined ? { warmUpDutyCycle: Number(process.env.WARM_UP_DUTY) } : {}),
  },
});
await agent.waitStatus('ready', (s) => s.ready);

let next = '2.0.0';
async function swap(load) {
  const to = next;
  next = to === '2.0.0' ? '1.0.0' : '2.0.0';
  const old = await agent.proxy();
  const start = load.now();
  const t0 = performance.now();
  writeFileSync(targetFile, JSON.stringify(pkgs[to]));
  // When each phase was first seen (polled every 50 ms), in ms after the target was written.
  const phases = {};
  let drainWall;
  await agent.waitStatus(`running ${to}`, (s) => {
    phases[s.phase] ??= Math.round(performance.now() - t0);
    // The status's lastChange is stamped when the agent promotes (Draining), to the ms.
    if (s.phase === 'Draining') drainWall ??= Date.parse(s.lastChange);
    return s.runningVersion === to && s.phase === 'Idle';
  }, 60_000);
  while (alive(old.pid)) await sleep(5);
  const ms = performance.now() - t0;
  const window = [start, load.now()];
  // What the new proxy's warm-up did (its gauges; none with WARM_UP=0).
  const m = (await agent.get('/stats/prometheus')).body;
  const g = (re) => Number(re.exec(m)?.[1] ?? NaN);
  const warm = g(/^octo_proxy_warm_up_requests\{protocol="http1"\} (\S+)$/m) + g(/^octo_proxy_warm_up_requests\{protocol="http2"\} (\S+)$/m);
  const warmUp = Number.isNaN(warm) ? '-' : `${warm}/${Math.round(g(/^octo_proxy_warm_up_seconds (\S+)$/m) * 1000)}ms`;
  // The swap's timeline on the load generator's clock (ms since it started): the new process's
  // start (/proc, 10 ms ticks), its warm-up (gauges), the GC before its first accept (pause),
  // the promotion (Draining) and the old process gone.
  const toLoad = (wall) => wall - load.wall0;
  const neu = await agent.proxy();
  const spawned = procStartWall(neu.pid);
  const wuEnd = g(/^octo_proxy_warm_up_end_timestamp_seconds (\S+)$/m) * 1000;
  const wuStart = wuEnd - g(/^octo_proxy_warm_up_seconds (\S+)$/m) * 1000;
  const gcMs = g(/^octo_proxy_gc_before_accept_seconds_sum (\S+)$/m) * 1000;
  const timeline = {
    target: start,
    spawn: toLoad(spawned),
    warmUp: Number.isNaN(wuStart) ? undefined : toLoad(wuStart),
    gc: Number.isNaN(wuEnd) ? undefined : toLoad(wuEnd),
    accept: Number.isNaN(wuEnd) ? undefined : toLoad(wuEnd + (Number.isNaN(gcMs) ? 0 : gcMs)),
    drain: drainWall === undefined ? undefined : toLoad(drainWall),
    gone: window[1],
  };
  return { to, ms, window, phases, warmUp, timeline };
}

/** A process's start on the wall clock (ms), from /proc/<pid>/stat (clock ticks since boot) and /proc/uptime. */
function procStartWall(pid) {
  const ticks = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19]);
  const boot = Date.now() - Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  return boot + ticks * 10;
}

/** [wall start, ms] events inside a window of the load clock, as `at+ms` after its start. */
function inWall(events, [a, b], wall0) {
  return events.filter(([t]) => t - wall0 >= a && t - wall0 <= b).map(([t, d]) => `${Math.round(t - wall0 - a)}+${Math.round(d)}`).join(' ');
}

/** Which phase of a swap's timeline a moment (load clock) falls in. */
function phaseAt(t, tl) {
  if (t < tl.spawn) return 'before';
  if (tl.warmUp === undefined) return t < (tl.drain ?? Infinity) ? 'starting' : t < tl.drain + SPREAD ? 'drain' : 'after';
  if (t < tl.warmUp) return 'starting';
  if (t < tl.gc) return 'warmUp';
  if (t < tl.accept) return 'gc';
  if (t < tl.drain) return 'ready';
  if (t < tl.drain + SPREAD) return 'drain';
  return 'after';
}

function summarise(label, load, baseWindow, swaps, seconds, controls) {
  const s = load.stats;
  const samples = s.samples;
  const inWin = (t, [a, b]) => t >= a && t <= b;
  const base = samples.filter(([t]) => inWin(t, baseWindow)).map(([, l]) => l);
  const baseP99 = quantile(base, 0.99);
  // The same per protocol: kept-alive HTTP/1.1 connections are handed over on a swap, h2c
  // sessions get GOAWAY and reconnect; both meet the new proxy.
  const p99Of = (t, proto) => quantile(samples.filter(([at, , p]) => inWin(at, t) && p === proto).map(([, l]) => l), 0.99);
  const baseBy = { h1: p99Of(baseWindow, 'h1'), h2: p99Of(baseWindow, 'h2') };
  const rows = swaps.map((w) => {
    const lat = samples.filter(([t]) => inWin(t, w.window)).map(([, l]) => l);
    const p99 = quantile(lat, 0.99);
    // Where the slowest 1 % of the window's requests started, in ms after the target was written, and how many of them were h2.
    const slow = samples.filter(([t]) => inWin(t, w.window)).sort((a, b) => b[1] - a[1]).slice(0, Math.max(1, Math.ceil(lat.length / 100)));
    const at = slow.map(([t]) => Math.round(t - w.window[0])).sort((a, b) => a - b);
    return {
      to: w.to,
      swapMs: Math.round(w.ms),
      starting: w.phases.Starting,
      draining: w.phases.Draining,
      warmUp: w.warmUp,
      slowAt: `${at[0]}..${at.at(-1)}`,
      // Where the slowest 1 % ended, by phase of the swap (before: the target seen but the new
      // process not started; starting: module load to warm-up; ready: accepting beside the old
      // one for minReadySeconds; drain: the drain spread; after: until the old one is gone).
      slowEnd: Object.entries(slow.reduce((a, [t0, l]) => ((a[phaseAt(t0 + l, w.timeline)] = (a[phaseAt(t0 + l, w.timeline)] ?? 0) + 1), a), {})).map(([k, v]) => `${k}:${v}`).join(' '),
      // The timeline, ms after the target was written: spawn, warm-up start, GC, accept, drain.
      // Gaps over 5 ms of the canary and GC pauses over 5 ms of this process in the window (start after the target +length, ms).
      stalls: inWall(canaryGaps, w.window, load.wall0),
      trafficGc: inWall(load.gc, w.window, load.wall0),
      tl: ['spawn', 'warmUp', 'gc', 'accept', 'drain'].map((k) => (w.timeline[k] === undefined ? '-' : Math.round(w.timeline[k] - w.window[0]))).join('/'),
      slowH2: `${slow.filter(([, , p]) => p === 'h2').length}/${slow.length}`,
      failed: s.failedAt.filter((t) => inWin(t, w.window)).length,
      requests: lat.length,
      p99Ms: +p99.toFixed(2),
      addedP99Ms: +(p99 - baseP99).toFixed(2),
      addedNear: +(p99 - quantile(samples.filter(([t]) => inWin(t, w.near)).map(([, l]) => l), 0.99)).toFixed(1),
      h1Added: +(p99Of(w.window, 'h1') - baseBy.h1).toFixed(1),
      h2Added: +(p99Of(w.window, 'h2') - baseBy.h2).toFixed(1),
    };
  });
  console.log(`\n## ${label}: ${s.sent} requests in ${seconds.toFixed(1)} s (${(s.sent / seconds).toFixed(0)} rps), failed ${s.failed}, h2 refused-and-retried ${s.retriedRefused}`);
  console.log(`normal p50 ${quantile(base, 0.5).toFixed(2)} ms, p99 ${baseP99.toFixed(2)} ms (h1 ${baseBy.h1.toFixed(2)}, h2 ${baseBy.h2.toFixed(2)}) over ${base.length} requests; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  if (label.includes('open loop') && baseP99 > 50) console.log('WARNING: the normal p99 is over 50 ms: the machine cannot carry this rate now (other load); this run says nothing about swaps');
  console.table(rows);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`per swap: mean ${mean(rows.map((r) => r.swapMs)).toFixed(0)} ms, max ${Math.max(...rows.map((r) => r.swapMs))} ms; failed ${rows.reduce((a, r) => a + r.failed, 0)}; added p99 mean ${mean(rows.map((r) => r.addedP99Ms)).toFixed(2)} ms, max ${Math.max(...rows.map((r) => r.addedP99Ms)).toFixed(2)} ms (h1 mean ${mean(rows.map((r) => r.h1Added)).toFixed(1)}, h2 mean ${mean(rows.map((r) => r.h2Added)).toFixed(1)}); against the window before each swap: median ${quantile(rows.map((r) => r.addedNear), 0.5).toFixed(1)} ms, mean ${mean(rows.map((r) => r.addedNear)).toFixed(1)} ms`);
  if (controls.length) {
    const p99In = (win) => quantile(samples.filter(([t]) => inWin(t, win)).map(([, l]) => l), 0.99);
    const diffs = controls.map((c) => +(p99In(c.after) - p99In(c.before)).toFixed(1));
    console.log(`control, no swap (a window as long as each swap against the ${NEAR} ms before it, as addedNear): ${diffs.join(', ')} ms — median ${quantile(diffs, 0.5).toFixed(1)} ms, mean ${mean(diffs).toFixed(1)} ms; failed ${controls.reduce((a, c) => a + s.failedAt.filter((t) => inWin(t, c.after)).length, 0)}`);
  }
  if (s.errors.length) console.log('errors:', s.errors.slice(0, 10));
}

async function phase(label, opts) {
  const worker = traffic({ role: 'load', opts: { port: agent.outboundPort, h1Connections: 16, h2Connections: 4, ...opts } });
  // The generator's clock (ms since it started) from here: its 0 on the wall clock, which the
  // proxy's gauges and /proc are on too.
  const [{ t0Wall }] = await once(worker, 'message');
  const load = { wall0: t0Wall, now: () => performance.timeOrigin + performance.now() - t0Wall, stats: undefined, gc: [] };
  await sleep(1000); // warm-up, not measured
  const baseWindow = [load.now(), load.now() + BASE * 1000];
  await sleep(BASE * 1000);
  const swaps = [];
  const controls = [];
  for (let i = 0; i < SWAPS; i++) {
    // A window as long as a swap just before it, without one: the swap's added p99 is also taken
    // against this (paired), as the machine's other load drifts over a run.
    const near = [load.now(), load.now() + NEAR];
    await sleep(NEAR);
    const w = await swap(load);
    swaps.push({ ...w, near });
    await sleep(GAP * 1000);
    if (CONTROL) {
      // The control: the same two windows with no swap at all (NEAR ms, then as long as this swap),
      // so the swap's addedNear can be read against what two quiet windows differ by here.
      const before = [load.now(), load.now() + NEAR];
      await sleep(NEAR);
      const after = [load.now(), load.now() + w.ms];
      await sleep(w.ms);
      controls.push({ before, after });
      await sleep(GAP * 1000);
    }
  }
  const seconds = load.now() / 1000;
  worker.postMessage('stop');
  const [{ stats, gc }] = await once(worker, 'message');
  upWorker.postMessage('gc');
  const [{ gc: upGc }] = await once(upWorker, 'message');
  Object.assign(load, { stats, gc: [...gc, ...upGc].sort((a, b) => a[0] - b[0]) });
  summarise(label, load, baseWindow, swaps, seconds, controls);
}

console.log(`LEGO hot swap: ${SWAPS} swaps per phase, minReadySeconds ${MIN_READY}, drainSpreadMs ${SPREAD}, node ${process.version}, ${(await import('node:os')).cpus().length} CPUs`);
try {
  await phase(`${RPS} rps (open loop)`, { rps: RPS });
  if (process.env.SATURATION !== '0') await phase(`saturation (closed loop, ${CONC} in flight)`, { rps: 0, concurrency: CONC });
} finally {
  // A swap that took the whole drain timeout: the old proxy says what it still held at the deadline.
  const held = agent.stderr().split('\n').filter((l) => l.includes('drain deadline'));
  if (held.length) console.log(`old proxies at their drain deadline:\n${held.join('\n')}`);
  canary.kill();
  await agent.stop();
  await repo.stop();
  upWorker.postMessage('close');
  await once(upWorker, 'exit');
}
