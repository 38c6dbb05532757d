// Issue 18 (not a test): the embedded mesh with CPU-burning processes beside it, per setting of the
// proxies' `v8Helpers` — why requests failed on a loaded machine. For each arm (ARMS, default
// "idle,auto"): the embedded mesh (packages/mesh/dist/main.js, every component a child process,
// 100 rps through frontend → catalog and ratings, examples/embedded as shipped) with
// OCTO_PROXY_V8_HELPERS set for every proxy, then three WINDOW-second windows: no burners, BURNERS
// `yes` processes (started and ended here by pid), no burners again. Per window: requests,
// failures and their reasons (the runner's /traffic), and per process group the CPU time and the
// run-queue wait of its main thread (/proc/<pid>/schedstat); per arm, how many V8 helper threads
// the proxies run at SCHED_IDLE.
// Usage: npm run build first, then
//   flock /tmp/octo-bench.lock node bench/embedded/cpu-burners.mjs   (env: ARMS=idle,auto WINDOW=20 BURNERS=2)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARMS = (process.env.ARMS ?? 'idle,auto').split(',');
const WINDOW = Number(process.env.WINDOW ?? 20);
const BURNERS = Number(process.env.BURNERS ?? 2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = [];
process.on('exit', () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));

const procs = () => {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      out.set(Number(d), { ppid: Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      /* ended meanwhile */
    }
  }
  return out;
};
const treeOf = (root) => {
  const all = procs();
  const mine = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of all)
      if (!mine.has(pid) && mine.has(p.ppid)) {
        mine.add(pid);
        grew = true;
      }
  }
  return [...mine].map((pid) => ({ pid, cmd: all.get(pid)?.cmd ?? '' }));
};
const groupOf = (c) => (c.includes('pilot/dist') ? 'pilots' : c.includes('demo-app') ? 'apps' : c.includes('proxy') ? 'proxies' : c.includes('lego-agent') ? 'agents' : c.includes('mesh/dist/main') ? 'runner' : 'control plane');
const sched = (pid) => {
  try {
    const [cpu, wait, slices] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return { cpu, wait, slices };
  } catch {
    return undefined;
  }
};
const idleHelpers = (pid) => {
  let n = 0;
  let all = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      if (!st.includes('(V8Worker)')) continue;
      all++;
      if (st.slice(st.lastIndexOf(')') + 2).split(' ')[38] === '5') n++;
    }
  } catch {
    /* ended meanwhile */
  }
  return { n, all };
};

async function arm(setting) {
  const work = mkdtempSync(join(tmpdir(), 'octo-burners-'));
  const manifests = join(work, 'manifests');
  const stateDir = join(work, 'state');
  cpSync(join(ROOT, 'examples/embedded'), manifests, { recursive: true });
  const runner = spawn(process.execPath, [join(ROOT, 'packages/mesh/dist/main.js'), '--ports', 'auto', '--quiet', 'true', '--rps', '100', '--state-dir', stateDir, '--manifests', manifests, '--log-level', 'warn'], {
    stdio: 'ignore',
    env: { ...process.env, OCTO_PROXY_V8_HELPERS: setting },
  });
  started.push(runner);
  let state;
  for (let i = 0; !state; i++) {
    try {
      state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'));
    } catch {
      if (i > 240 || runner.exitCode !== null) throw new Error('the embedded mesh did not start');
      await sleep(500);
    }
  }
  const traffic = async () => (await fetch(`http://${state.runner.admin}/traffic`, { signal: AbortSignal.timeout(5000) })).json();
  for (let i = 0; ; i++) {
    try {
      if ((await traffic()).requests > 1000) break;
    } catch {
      /* not up yet */
    }
    if (i > 240) throw new Error('no traffic through the embedded mesh');
    await sleep(500);
  }
  const helpers = treeOf(runner.pid)
    .filter((p) => groupOf(p.cmd) === 'proxies')
    .map((p) => idleHelpers(p.pid))
    .reduce((a, b) => ({ n: a.n + b.n, all: a.all + b.all }), { n: 0, all: 0 });
  console.log(`\n### v8Helpers: ${setting} — the proxies' V8 helper threads at SCHED_IDLE: ${helpers.n} of ${helpers.all}`);
  const window = async (name, burners) => {
    const burning = Array.from({ length: burners }, () => spawn('yes', [], { stdio: 'ignore' }));
    started.push(...burning);
    const ps = treeOf(runner.pid);
    const before = new Map(ps.map((p) => [p.pid, sched(p.pid)]));
    const t0 = await traffic();
    const l0 = loadavg()[0];
    await sleep(WINDOW * 1000);
    const t1 = await traffic();
    for (const b of burning) b.kill('SIGKILL');
    const reasons = {};
    for (const [r, n] of Object.entries(t1.failureReasons)) if (n - (t0.failureReasons[r] ?? 0) > 0) reasons[r.trim()] = n - (t0.failureReasons[r] ?? 0);
    console.log(`${name}: ${WINDOW} s, load ${l0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; requests ${t1.requests - t0.requests}, failed ${t1.failures - t0.failures}${Object.keys(reasons).length ? ` ${JSON.stringify(reasons)}` : ''}`);
    const rows = {};
    for (const p of ps) {
      const a = before.get(p.pid);
      const b = sched(p.pid);
      if (a && b) (rows[groupOf(p.cmd)] ??= []).push({ cpu: (b.cpu - a.cpu) / 1e9, wait: (b.wait - a.wait) / 1e9, perSlice: (b.wait - a.wait) / 1e6 / Math.max(1, b.slices - a.slices) });
    }
    for (const [g, rs] of Object.entries(rows)) {
      const sum = (k) => rs.reduce((s, r) => s + r[k], 0);
      console.log(`  ${g.padEnd(14)} ×${rs.length}  CPU ${sum('cpu').toFixed(2)} s  run-queue wait ${sum('wait').toFixed(2)} s  mean wait per slice ${(sum('perSlice') / rs.length).toFixed(2)} ms`);
    }
  };
  await window('no burners', 0);
  await window(`${BURNERS} burners`, BURNERS);
  await window('no burners again', 0);
  runner.kill('SIGTERM');
  await new Promise((r) => (runner.exitCode !== null ? r() : runner.once('exit', r)));
  rmSync(work, { recursive: true, force: true });
}

console.log(`embedded mesh beside CPU burners — ${new Date().toISOString()}, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const a of ARMS) await arm(a);
process.exit(0);
