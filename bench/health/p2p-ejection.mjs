#!/usr/bin/env node
// Time from an endpoint dying (its app stops answering) to no traffic reaching it through a real
// octo-proxy, and the requests that still reach it afterwards: the central health checker alone,
// with the proxy's passive outlier detection, and with outlier detection plus the selective P2P
// checks. Real processes: dispatcher, meta server, pilot, 2 checker replicas, the proxy (one per
// configuration, P2P switched by OCTO_PROXY_P2P_MAX_CONCURRENT_PROBES); 2 catalog instances.
// Scenario "checkers up": the central verdict follows within interval × threshold + timeout.
// Scenario "checkers down": both replicas are stopped first, so the central verdict never changes
// (the last one stays, "healthy"): only the proxy can keep the dead endpoint out. Scenario
// "recovery, checkers down": the endpoint is marked unhealthy, the checkers stop, it recovers: the
// stale "unhealthy" verdict would keep it out for good; only the proxy's own probes bring it back.
//   npx tsc -b packages/health packages/mock-sidecar packages/proxy && node bench/health/p2p-ejection.mjs [--trials 3] [--interval 500] [--threshold 2] [--window 10000]
import { HealthStack } from '../../packages/health/dist/test-support/stack.js';
import { stopAll } from '../../packages/testing/dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const trials = arg('trials', 3);
const intervalMs = arg('interval', 500);
const threshold = arg('threshold', 2);
const windowMs = arg('window', 10_000);
const timeoutMs = Math.min(200, intervalMs / 2);
// Outlier detection and a route timeout, so a hung endpoint's requests fail (504) and count.
const OUTLIER = { consecutiveGatewayErrors: 2, interval: '1s', baseEjectionTime: '3s', maxEjectionPercent: 50 };
const ROUTE_TIMEOUT = '250ms';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (what, fn, timeout = 30_000) => {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(20);
  }
  throw new Error(`timed out: ${what}`);
};
const stats = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const pct = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  return `min ${s[0]}  p50 ${pct(50)}  max ${s.at(-1)}  (each ${xs.join(', ')})`;
};

async function withStack(cfg, fn) {
  process.env.OCTO_PROXY_P2P_MAX_CONCURRENT_PROBES = cfg.p2p ? '4' : '0';
  const stack = new HealthStack({ checkers: 2, intervalMs, timeoutMs, unhealthyThreshold: threshold, healthyThreshold: 1, apps: 2 });
  try {
    await stack.start();
    if (cfg.outlier) {
      const policy = await stack.dispatcher.get('RoutePolicy', 'shop/catalog');
      await stack.dispatcher.apply({
        ...policy,
        metadata: { name: 'catalog', namespace: 'shop' },
        spec: { ...policy.spec, outlierDetection: OUTLIER, rules: [{ route: [{}], timeout: ROUTE_TIMEOUT, retries: { attempts: 0 } }] },
      });
      await sleep(1500); // pilot debounce and push
    }
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}

/** Checkers up: time from death to the last request reaching the endpoint, per trial. */
async function checkersUp(stack) {
  const out = [];
  const load = stack.load(10);
  const b = stack.apps[1];
  try {
    for (let t = 0; t < trials; t++) {
      const n = b.arrivals.length;
      await until('traffic to b', () => b.arrivals.length - n > 10);
      await sleep(Math.random() * intervalMs);
      const died = Date.now();
      b.mode = 'hang';
      await until('b quiet for 2 s', () => Date.now() - Math.max(b.lastArrival(), died) >= 2000);
      out.push(Math.max(0, b.lastArrival() - died));
      b.mode = 'ok';
      await until('b back', async () => (await stack.verdicts())?.spec.endpoints.every((e) => e.healthy));
    }
  } finally {
    await load.stop();
  }
  return out;
}

/** Checkers down: requests reaching the dead endpoint within the window, and after the first 1 s. */
async function checkersDown(stack) {
  const load = stack.load(10);
  const b = stack.apps[1];
  try {
    await Promise.all([...stack.checkers.values()].map((c) => c.proc.stop(3000)));
    const n0 = b.arrivals.length;
    await until('traffic to b', () => b.arrivals.length - n0 > 10);
    const died = Date.now();
    const n = b.arrivals.length;
    b.mode = 'hang';
    await sleep(windowMs);
    const after = b.arrivals.slice(n);
    return { total: after.length, late: after.filter((t) => t - died > 1000).length, last: after.length ? Math.max(0, after.at(-1) - died) : 0 };
  } finally {
    await load.stop();
  }
}

/**
 * Checkers down after marking the endpoint unhealthy, then it recovers: time until it gets traffic
 * again (undefined: not within the window). Only a proxy that doubts a stale verdict brings it back.
 */
async function recoveryCheckersDown(stack) {
  const load = stack.load(10);
  const b = stack.apps[1];
  try {
    b.mode = 'hang';
    await until('b marked unhealthy', async () => (await stack.verdicts())?.spec.endpoints.some((e) => !e.healthy));
    await Promise.all([...stack.checkers.values()].map((c) => c.proc.stop(3000)));
    await sleep(500);
    const n = b.arrivals.length;
    const back = Date.now();
    b.mode = 'ok';
    const end = back + windowMs;
    while (Date.now() < end && b.arrivals.slice(n).every((t) => t < back)) await sleep(20);
    const first = b.arrivals.slice(n).find((t) => t >= back);
    return first === undefined ? undefined : first - back;
  } finally {
    await load.stop();
  }
}

const configs = [
  { name: 'central alone', outlier: false, p2p: false },
  { name: 'central + outlier detection', outlier: true, p2p: false },
  { name: 'central + outlier detection + P2P', outlier: true, p2p: true },
];
const rows = [];
try {
  for (const cfg of configs) {
    const up = await withStack(cfg, checkersUp);
    const down = cfg.outlier ? await withStack(cfg, checkersDown) : undefined;
    const back = cfg.outlier ? await withStack(cfg, recoveryCheckersDown) : undefined;
    rows.push({ cfg, up, down, back });
    console.log(`${cfg.name}: checkers up: dead → last request reaching it (ms) ${stats(up)}`);
    if (down) console.log(`${cfg.name}: checkers down, ${windowMs} ms after death: ${down.total} requests reached it, ${down.late} of them more than 1 s after, the last at ${down.last} ms`);
    if (cfg.outlier) console.log(`${cfg.name}: checkers down after marking it unhealthy, endpoint recovers: traffic again after ${back === undefined ? `never (${windowMs} ms window)` : `${back} ms`}`);
  }
} finally {
  await stopAll();
}
console.log(
  `\n(interval ${intervalMs} ms, check timeout ${timeoutMs} ms, unhealthyThreshold ${threshold}; outlier detection ${JSON.stringify(OUTLIER)}, route timeout ${ROUTE_TIMEOUT}; load: one request every 10 ms; ${trials} trials)`,
);
