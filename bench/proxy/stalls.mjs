// Attributes slow requests to what ran on the proxy's CPU meanwhile (see stalls.sh).
// Usage: node stalls.mjs <perf sched timehist output> <fixed-rate LAT_FILE> <proxy pid> <slow µs> <proxy CPU>
// For each request slower than the threshold it looks at the proxy thread's waits for the CPU
// inside the request's lifetime: woken and not yet running (scheduling delay), or preempted and
// runnable — perf 6.1's timehist puts the latter under "wait time", so stalls.sh asks for
// `--state` and a wait after a switch-out in state R counts as held from the CPU. When the waits
// add up to over 30 % of the request, it is named after the task that held the CPU meanwhile
// (e.g. kdamond, or a V8Worker of the proxy's own). Otherwise it is "proxy thread busy" when the
// proxy's thread ran for over half of it, else "elsewhere": the CPU was free for the proxy
// whenever it wanted it, so the time went outside it (the vCPU not running, or the other CPU
// with generator and upstream).
import { readFileSync } from 'node:fs';
import { quantile, readLatFile } from './lat-file.mjs';

const [histFile, latFile, pid, slowArg, cpuArg] = process.argv.slice(2);
const cpu = Number(cpuArg ?? 0);
const slowUs = Number(slowArg ?? 500);

/** Runs on the CPU as [start µs, end µs, task] on the monotonic clock. */
const runs = [];
/** The proxy thread's waits for the CPU: [runnable µs, running µs]. */
const delays = [];
let preempted = false; // the proxy thread's last switch-out left it runnable (state R)
for (const line of readFileSync(histFile, 'utf8').split('\n')) {
  // time  [cpu]  task[tid/pid]  wait  sch-delay  run  state-at-switch-out   (times in s and ms)
  const m = /^\s*([\d.]+)\s+\[(\d+)\]\s+(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)(?:\s+([A-Za-z]))?\s*$/.exec(line);
  if (!m || Number(m[2]) !== cpu) continue;
  const end = Number(m[1]) * 1e6;
  const start = end - Number(m[6]) * 1e3;
  const task = m[3].trim();
  const ids = /\[(\d+)(?:\/(\d+))?\]$/.exec(task);
  const name = task.replace(/\[.*$/, '');
  let who = name;
  if (ids && ids[1] === pid) {
    who = 'proxy thread';
    const schDelay = Number(m[5]) * 1e3;
    const waited = preempted ? Number(m[4]) * 1e3 + schDelay : schDelay;
    if (waited > 0) delays.push({ start: start - waited, end: start });
    preempted = m[7] === 'R';
  } else if (ids && ids[2] === pid) who = `proxy ${name}`;
  runs.push({ start, end, who });
}
runs.sort((a, b) => a.start - b.start);

const lat = readLatFile(latFile);
if (lat.startUs === undefined) throw new Error(`${latFile}: no "# start" line (run fixed-rate.mjs with LAT_FILE)`);
const t0 = lat.startUs;
const requests = lat.rows.map(({ at, us }) => ({ start: t0 + at * 1000, us }));

const overlap = (a, b) => Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));

const slow = requests.filter((r) => r.us > slowUs);
const verdicts = {};
for (const r of slow) {
  const win = { start: r.start, end: r.start + r.us };
  const held = delays.filter((d) => overlap(d, win) > 0);
  const heldUs = held.reduce((n, d) => n + overlap(d, win), 0);
  let v;
  if (heldUs > 0.3 * r.us) {
    const by = {};
    for (const d of held)
      for (const x of runs) {
        if (x.start >= d.end) break;
        if (x.end <= d.start || x.who === 'proxy thread') continue;
        by[x.who] = (by[x.who] ?? 0) + overlap(x, d);
      }
    v = Object.entries(by).sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'waiting for the CPU';
  } else {
    const busy = runs.filter((x) => x.who === 'proxy thread').reduce((n, x) => n + overlap(x, win), 0);
    v = busy > 0.5 * r.us ? 'proxy thread busy' : 'elsewhere';
  }
  verdicts[v] = (verdicts[v] ?? 0) + 1;
}
const sorted = Float64Array.from(requests, (r) => r.us).sort();
const p99 = Math.round(quantile(sorted, 0.99) ?? NaN);
const list = Object.entries(verdicts)
  .sort((a, b) => b[1] - a[1])
  .map(([k, n]) => `${k} ${n}`)
  .join(', ');
console.log(`p99 ${p99} µs; ${slow.length} of ${requests.length} requests over ${slowUs} µs: ${list || 'none'}`);
