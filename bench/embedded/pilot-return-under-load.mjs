// Issue 18 (not a test): what the embedded mesh does when both pilots are killed with SIGKILL on a
// machine loaded by CPU burners — does the mesh do avoidable work when the pilots return (re-pushes,
// rebuilds, a reconnect storm, proxy event-loop stalls), or are the failed requests the machine's?
//
// One run: the embedded mesh (packages/mesh/dist/main.js, every component a child process, 100 rps
// through frontend → catalog and ratings, the catalog policy's per-try timeout as e2e/embedded/
// faults.test.ts sets it: 1400 ms of a 2800 ms budget, or PER_TRY), BURNERS `yes > /dev/null`
// processes started and ended here by pid, then ROUNDS times:
//   A. WINDOW seconds with the burners and nothing killed: the baseline, in the same run;
//   C. the control for B: WINDOW seconds from starting two processes that each spin SPIKE_MS of CPU
//      (default 700: what two pilots take to start, measured as B's pilot CPU less A's), nothing
//      killed — the same CPU burst without a pilot's restart;
//   B. kill -9 of both pilots (the runner's supervisor restarts them), WINDOW seconds from the kill.
// Sampled every 250 ms: the load generator's requests and failures (the runner's /traffic), every
// sidecar proxy's event-loop lag max (prom-client's nodejs_eventloop_lag_max_seconds, reset at each
// scrape) and xDS updates applied (octo_proxy_xds_updates_total), each pilot's responses sent
// (pilot_xds_pushes_total; a restarted pilot starts at 0) and streams, and CPU time per process
// group from /proc (Linux). Per window: failures and reasons, failure seconds (from the window's
// start), max lag per sidecar, xDS responses pushed and applied, CPU seconds per group; and whether
// every sidecar's resources (name@version, /config_dump) are the same after the round as before.
// Usage: npm run build first (or tsc -b packages/mesh), then
//   flock /tmp/octo-bench.lock node bench/embedded/pilot-return-under-load.mjs
//   (env: ROUNDS=2 WINDOW=20 BURNERS=2 SPIKE_MS=700 PER_TRY=1400ms RPS=100 JSON=<file>)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const WINDOW = Number(process.env.WINDOW ?? 20);
const BURNERS = Number(process.env.BURNERS ?? 2);
const PER_TRY = process.env.PER_TRY ?? '1400ms';
const RPS = Number(process.env.RPS ?? 100);
const SPIKE_MS = Number(process.env.SPIKE_MS ?? 700);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

const work = mkdtempSync(join(tmpdir(), 'octo-pilot-return-'));
const manifests = join(work, 'manifests');
const stateDir = join(work, 'state');
cpSync(join(ROOT, 'examples/embedded'), manifests, { recursive: true });
if (PER_TRY !== '500ms') {
  const budget = `${2 * Number.parseInt(PER_TRY, 10)}ms`;
  const f = join(manifests, 'catalog.yaml');
  writeFileSync(f, readFileSync(f, 'utf8').replace('timeout: 2s', `timeout: ${budget}`).replace('perTryTimeout: 500ms', `perTryTimeout: ${PER_TRY}`));
}
const runner = spawn(process.execPath, [join(ROOT, 'packages/mesh/dist/main.js'), '--ports', 'auto', '--quiet', 'true', '--rps', String(RPS), '--state-dir', stateDir, '--manifests', manifests, '--log-level', 'warn'], {
  stdio: 'ignore',
});
const burners = [];
const spikes = [];
const endAll = () => {
  for (const b of [...burners, ...spikes]) if (b.exitCode === null) b.kill('SIGKILL');
  if (runner.exitCode === null) runner.kill('SIGTERM');
};
process.on('exit', endAll);
process.on('SIGINT', () => process.exit(130));

const getText = async (url) => (await fetch(url, { signal: AbortSignal.timeout(3000) })).text();
const getJson = async (url) => JSON.parse(await getText(url));
/** The sum of a Prometheus metric's samples (all label sets). */
const metric = (text, name) => {
  let sum = 0;
  for (const l of text.split('\n')) if (l.startsWith(name) && (l[name.length] === ' ' || l[name.length] === '{')) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
  return sum;
};

let state;
for (let i = 0; ; i++) {
  try {
    state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'));
    break;
  } catch {
    if (runner.exitCode !== null || i > 240) throw new Error('the embedded mesh did not start');
    await sleep(500);
  }
}
const traffic = () => getJson(`http://${state.runner.admin}/traffic`);
const connectedAll = async () => {
  const sc = await getJson(`http://${state.meta.admin}/debug/sidecars`);
  return sc.length === state.sidecars.length && sc.every((s) => s.connectedTo);
};
for (let i = 0; ; i++) {
  try {
    if ((await traffic()).requests > 3 * RPS && (await connectedAll())) break;
  } catch {
    /* not up yet */
  }
  if (i > 240) throw new Error('no traffic through the embedded mesh');
  await sleep(500);
}

// CPU time per process group: the runner's descendants (named by their command line) and the burners; the rest of the machine is `others`.
const HZ = 100;
const groupOf = (cmd) => {
  const a = cmd.join(' ');
  if (a.includes('pilot/dist/main.js')) return 'pilots';
  if (a.includes('demo-app')) return 'apps';
  if (a.includes('lego-agent')) return 'agents';
  if (a.includes('proxy')) return 'proxies';
  if (cmd[0] === 'yes' || a.includes('yes > /dev/null')) return 'burners';
  if (a.includes('cpuUsage')) return 'CPU spike (control)';
  if (a.includes('mesh/dist/main.js')) return 'runner (load generator)';
  return 'control plane (dispatcher, meta, checkers, CA)';
};
const readProcs = () => {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0') });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
};
const busyTicks = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6];
};
/** Ticks per group since the last call. Processes that exited between calls lose their last interval. */
let lastProcs = readProcs();
let lastBusy = busyTicks();
const cpuSince = () => {
  const now = readProcs();
  const busy = busyTicks();
  const ours = new Set([runner.pid, ...burners.map((b) => b.pid), ...spikes.map((b) => b.pid)]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of now)
      if (!ours.has(pid) && ours.has(p.ppid)) {
        ours.add(pid);
        grew = true;
      }
  }
  const by = {};
  let sum = 0;
  for (const pid of ours) {
    const p = now.get(pid);
    if (!p) continue;
    const d = p.ticks - (lastProcs.get(pid)?.ticks ?? 0);
    if (d <= 0) continue;
    const g = groupOf(p.cmd);
    by[g] = (by[g] ?? 0) + d;
    sum += d;
  }
  by['others (rest of the machine)'] = Math.max(0, busy - lastBusy - sum);
  lastProcs = now;
  lastBusy = busy;
  return by;
};

/** One sample: cumulative counters; lag is a max over the interval since the last scrape. */
async function sample() {
  const s = { at: Date.now(), lag: {}, xds: {}, pilots: {} };
  try {
    const t = await traffic();
    Object.assign(s, { requests: t.requests, failures: t.failures, reasons: t.failureReasons });
  } catch {
    /* the runner is busy: the next sample has the counts */
  }
  await Promise.all([
    ...state.sidecars.map(async (sc) => {
      try {
        const m = await getText(`http://${sc.admin}/stats/prometheus`);
        s.lag[sc.nodeId] = metric(m, 'nodejs_eventloop_lag_max_seconds') * 1000;
        s.xds[sc.nodeId] = metric(m, 'octo_proxy_xds_updates_total');
      } catch {
        /* no answer within 3 s: itself a stall */
        s.lag[sc.nodeId] = 3000;
      }
    }),
    ...state.pilots.map(async (p) => {
      try {
        const m = await getText(`http://${p.admin}/metrics`);
        s.pilots[p.id] = { pushes: metric(m, 'pilot_xds_pushes_total'), streams: metric(m, 'pilot_xds_connected_proxies') };
      } catch {
        s.pilots[p.id] = null; // down
      }
    }),
  ]);
  s.cpu = cpuSince();
  return s;
}

/** Samples for `seconds`, starting with `start()` (if any) right after the first sample. */
async function window(seconds, start) {
  const samples = [await sample()];
  const t0 = Date.now();
  await start?.();
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(250);
    samples.push(await sample());
  }
  return summarise(samples, t0);
}

function summarise(samples, t0) {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const reasons = {};
  for (const [r, n] of Object.entries(last.reasons ?? {})) if (n - (first.reasons?.[r] ?? 0) > 0) reasons[r] = n - (first.reasons?.[r] ?? 0);
  const failureSeconds = {};
  for (let i = 1; i < samples.length; i++) {
    const d = (samples[i].failures ?? 0) - (samples[i - 1].failures ?? 0);
    if (d > 0 && samples[i - 1].failures !== undefined) {
      const sec = Math.floor((samples[i].at - t0) / 1000);
      failureSeconds[sec] = (failureSeconds[sec] ?? 0) + d;
    }
  }
  const lagMax = {};
  for (const id of Object.keys(first.lag)) lagMax[id] = Math.round(Math.max(...samples.slice(1).map((s) => s.lag[id] ?? 0)));
  const xdsApplied = Object.fromEntries(Object.keys(first.xds).map((id) => [id, (last.xds[id] ?? 0) - (first.xds[id] ?? 0)]));
  // A pilot's push counter restarts at 0 with the process: the responses sent are summed over its increases.
  const pushes = {};
  for (const id of Object.keys(first.pilots)) {
    let n = 0;
    let prev = first.pilots[id]?.pushes;
    for (const s of samples.slice(1)) {
      const p = s.pilots[id];
      if (!p) {
        prev = 0;
        continue;
      }
      n += Math.max(0, p.pushes - (prev ?? 0));
      prev = p.pushes;
    }
    pushes[id] = n;
  }
  const cpu = {};
  for (const s of samples.slice(1)) for (const [g, t] of Object.entries(s.cpu)) cpu[g] = (cpu[g] ?? 0) + t / HZ;
  return {
    seconds: (last.at - t0) / 1000,
    requests: (last.requests ?? 0) - (first.requests ?? 0),
    failed: (last.failures ?? 0) - (first.failures ?? 0),
    reasons,
    failureSeconds,
    lagMaxMs: lagMax,
    pilotResponsesSent: pushes,
    sidecarXdsUpdatesApplied: xdsApplied,
    cpuSeconds: Object.fromEntries(Object.entries(cpu).sort((a, b) => b[1] - a[1]).map(([g, t]) => [g, Number(t.toFixed(1))])),
  };
}

const resources = async () =>
  Object.fromEntries(
    await Promise.all(
      state.sidecars.map(async (sc) => {
        const d = await getJson(`http://${sc.admin}/config_dump`);
        return [sc.nodeId, Object.values(d.dynamic).flat().map((r) => `${r.name}@${r.version}`).sort().join('\n')];
      }),
    ),
  );

/** Two processes that each spin SPIKE_MS of CPU time (not wall time: on a loaded machine they take longer) and exit. */
function spike() {
  const code = `const s = process.cpuUsage(); for (;;) { const u = process.cpuUsage(s); if (u.user + u.system >= ${SPIKE_MS * 1000}) break; }`;
  for (let i = 0; i < 2; i++) spikes.push(spawn(process.execPath, ['-e', code], { stdio: 'ignore' }));
}

async function killPilots() {
  const procs = await getJson(`http://${state.runner.admin}/processes`);
  for (const p of procs.filter((x) => x.name.startsWith('pilot-'))) process.kill(p.pid, 'SIGKILL');
}

const report = { startedAt: new Date().toISOString(), loadavgAtStart: load(), rounds: [], perTryTimeout: PER_TRY, burners: BURNERS, rps: RPS, windowSeconds: WINDOW };
process.stdout.write(`embedded mesh up (${state.sidecars.length} sidecars, ${state.pilots.length} pilots); load average ${load()}\n`);
for (let i = 0; i < BURNERS; i++) burners.push(spawn('sh', ['-c', 'exec yes > /dev/null'], { stdio: 'ignore' }));
process.stdout.write(`burners: pids ${burners.map((b) => b.pid).join(', ')}\n`);
try {
  await sleep(2000);
  for (let r = 1; r <= ROUNDS; r++) {
    const baseline = await window(WINDOW);
    const control = await window(WINDOW, spike);
    const before = await resources();
    const kill = await window(WINDOW, killPilots);
    const after = await resources().catch(() => ({}));
    const sameResources = Object.keys(before).every((id) => before[id] === after[id]);
    const round = { round: r, loadavg: load(), baseline, cpuSpike: control, pilotsKilled: kill, sameResourcesAfter: sameResources };
    report.rounds.push(round);
    const line = (w) => `${w.failed} failed of ${w.requests} (${JSON.stringify(w.failureSeconds)} by second); lag max ${JSON.stringify(w.lagMaxMs)} ms; pilots sent ${JSON.stringify(w.pilotResponsesSent)}; sidecars applied ${JSON.stringify(w.sidecarXdsUpdatesApplied)}; CPU s ${JSON.stringify(w.cpuSeconds)}`;
    process.stdout.write(`round ${r} (load average ${round.loadavg})\n  baseline, burners only: ${line(baseline)}\n  CPU spike, no kill:     ${line(control)}\n  both pilots kill -9:     ${line(kill)}\n  every sidecar's resources the same after the round: ${sameResources}\n`);
  }
} finally {
  for (const b of burners) b.kill('SIGKILL');
}
report.loadavgAtEnd = load();
const total = (k) => report.rounds.reduce((n, r) => n + r[k].failed, 0);
process.stdout.write(
  `failed requests in ${ROUNDS} × ${WINDOW} s: ${total('pilotsKilled')} from both pilots' kill, ${total('cpuSpike')} from a ${SPIKE_MS} ms × 2 CPU spike (control), ${total('baseline')} with the burners alone (baseline); load average ${report.loadavgAtEnd}\n`,
);
if (process.env.JSON) writeFileSync(process.env.JSON, JSON.stringify(report, null, 2));
const exited = new Promise((r) => runner.once('exit', r));
runner.kill('SIGTERM');
await exited;
rmSync(work, { recursive: true, force: true });
