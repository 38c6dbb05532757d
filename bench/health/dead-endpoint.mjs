#!/usr/bin/env node
// Time from an endpoint dying (its app stops answering) to no traffic reaching it through a real
// octo-proxy, with the central health checker alone (no P2P path yet). Real processes: dispatcher,
// meta server, pilot, 2 checker replicas, proxy; 2 catalog instances as HTTP servers.
//   npx tsc -b packages/health packages/mock-sidecar packages/proxy && node bench/health/dead-endpoint.mjs [--trials 5] [--interval 500] [--threshold 2]
import { HealthStack } from '../../packages/health/dist/test-support/stack.js';
import { stopAll } from '../../packages/testing/dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const trials = arg('trials', 5);
const intervalMs = arg('interval', 500);
const threshold = arg('threshold', 2);
const timeoutMs = Math.min(200, intervalMs / 2);
const stack = new HealthStack({ checkers: 2, intervalMs, timeoutMs, unhealthyThreshold: threshold, healthyThreshold: 1, apps: 2 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (what, fn, timeout = 20_000) => {
  const end = Date.now() + timeout;
  while (Date.now() < end) { if (await fn()) return; await sleep(20); }
  throw new Error(`timed out: ${what}`);
};
const out = [];
try {
  await stack.start();
  const load = stack.load(10);
  const b = stack.apps[1];
  for (let t = 0; t < trials; t++) {
    const n = b.arrivals.length;
    await until('traffic to b', () => b.arrivals.length - n > 10);
    await sleep(Math.random() * intervalMs); // die at a random phase of the check interval
    const died = Date.now();
    b.mode = 'hang';
    await until('b quiet for 1.5 s', () => Date.now() - Math.max(b.lastArrival(), died) >= 1500);
    out.push(Math.max(0, b.lastArrival() - died));
    b.mode = 'ok';
    await until('b back', async () => (await stack.verdicts())?.spec.endpoints.every((e) => e.healthy));
  }
  await load.stop();
} finally {
  await stack.stop();
  await stopAll();
}
const s = [...out].sort((x, y) => x - y);
const pct = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
console.log(`dead endpoint → no traffic through the proxy (central checks only; interval ${intervalMs} ms, timeout ${timeoutMs} ms, unhealthyThreshold ${threshold}, ${trials} trials)`);
console.log(`  each (ms): ${out.join(', ')}`);
console.log(`  min ${s[0]}  p50 ${pct(50)}  max ${s.at(-1)}  bound interval×threshold+timeout = ${intervalMs * threshold + timeoutMs} ms (+ write, debounce, push)`);
