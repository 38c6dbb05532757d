#!/usr/bin/env node
// Automatic dependency learning, measured on a real pilot and real octo-proxy sidecars (child
// processes) on loopback:
//  1. first-call added latency: a sidecar with no declared dependencies calls N services once
//     each (the first call asks the pilot and waits for the route), then again (warm); p50/p99
//     of both, in the same run, for SotW and delta;
//  2. config size per sidecar in the embedded demo's topology (frontend → catalog v1/v2 and
//     ratings; catalog and ratings call nothing): bytes of /config_dump and resource counts with
//     today's declared dependencies vs none declared (before and after the first calls), and, for
//     scale, with `--others K` more services in the mesh (a sidecar without scoping would get them all).
//
// Usage: node_modules/.bin/node bench/learning/bench.mjs [--services 100] [--others 50]
//        (builds packages/pilot and packages/proxy first)
import { execFileSync, spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
for (const p of ['packages/pilot', 'packages/proxy']) {
  try {
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b', p], { cwd: root, stdio: 'ignore' });
  } catch {
    // emit happens despite type errors elsewhere; a missing build fails below
  }
}
const { AdsServer, MemoryMeshSource, Pilot } = await import('@octo-mesh/pilot');
const PROXY_MAIN = join(root, 'packages/proxy/dist/main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SERVICES = Number(arg('services', '100'));
const OTHERS = Number(arg('others', '50'));

const upstream = await new Promise((resolve) => {
  const s = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  s.listen(0, '127.0.0.1', () => resolve(s));
});
const upstreamPort = upstream.address().port;

const service = (name, port = 8080) => ({
  apiVersion: 'model.mesh.octo.io/v1',
  kind: 'Service',
  metadata: { name, namespace: 'demo' },
  spec: { ports: [{ name: 'http', port, protocol: 'http' }] },
});
const ep = (version) => ({ address: '127.0.0.1', port: upstreamPort, labels: { version }, healthy: true });

async function startPilot(source) {
  const pilot = new Pilot({ source, debounce: { quietMs: 20, maxDelayMs: 100 } });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
  const port = await server.listen(0, '127.0.0.1');
  return { port, stop: async () => (pilot.close(), await server.close(100)) };
}

async function startSidecar(xdsPort, { nodeId, workload, dependencies, mode = 'sotw' }) {
  const child = spawn(
    process.execPath,
    [PROXY_MAIN, '--xds-address', `127.0.0.1:${xdsPort}`, '--xds-mode', mode, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--node-id', nodeId, '--namespace', 'demo', '--workload', workload, '--access-log', 'off', ...(dependencies ? ['--dependencies', dependencies] : [])],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, OCTO_LOG_LEVEL: 'error' } },
  );
  const started = await new Promise((resolve, reject) => {
    child.on('message', (m) => m.type === 'octo.proxy.started' && resolve(m));
    child.on('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
  });
  const outbound = Number(started.listeners.find((l) => l.name === 'outbound').address.split(':').pop());
  const admin = `http://127.0.0.1:${started.adminPort}`;
  for (let i = 0; i < 200; i++) {
    const s = await fetch(`${admin}/sync`).then((r) => r.json()).catch(() => ({}));
    if (s.synced) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, outbound, admin, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

const get = (port, host) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
    });
    req.on('error', reject);
    req.end();
  });

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f = (x) => x.toFixed(2);

// ---------------------------------------------------------------------------------------------
// 1. First-call added latency.
console.log(`# first-call latency: ${SERVICES} services, each called first (learned) then warm; ms`);
console.log('| mode | first call p50 | first call p99 | warm call p50 | warm call p99 | added p50 | added p99 | failures |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const mode of ['sotw', 'delta']) {
  const source = new MemoryMeshSource();
  for (let i = 0; i < SERVICES; i++) source.upsertService(service(`svc-${i}`), [ep('v1')]);
  const pilot = await startPilot(source);
  const sc = await startSidecar(pilot.port, { nodeId: `bench-${mode}`, workload: 'bench', mode });
  const first = [];
  const warm = [];
  let failures = 0;
  for (let i = 0; i < SERVICES; i++) {
    const a = await get(sc.outbound, `svc-${i}:8080`);
    const b = await get(sc.outbound, `svc-${i}:8080`);
    if (a.status !== 200 || b.status !== 200) failures++;
    first.push(a.ms);
    warm.push(b.ms);
  }
  const added = first.map((x, i) => x - warm[i]);
  console.log(`| ${mode} | ${f(pct(first, 50))} | ${f(pct(first, 99))} | ${f(pct(warm, 50))} | ${f(pct(warm, 99))} | ${f(pct(added, 50))} | ${f(pct(added, 99))} | ${failures} |`);
  await sc.stop();
  await pilot.stop();
}

// ---------------------------------------------------------------------------------------------
// 2. Config size per sidecar in the embedded demo's topology.
const DEMO = [
  { node: 'frontend-v1-0.demo', workload: 'frontend', calls: ['catalog', 'ratings'] },
  { node: 'catalog-v1-0.demo', workload: 'catalog', calls: [] },
  { node: 'catalog-v2-0.demo', workload: 'catalog', calls: [] },
  { node: 'ratings-v1-0.demo', workload: 'ratings', calls: [] },
];
const size = async (sc) => {
  const text = await (await fetch(`${sc.admin}/config_dump`)).text();
  const d = JSON.parse(text);
  const n = (k) => d.dynamic[k].length;
  return { bytes: Buffer.byteLength(text), counts: `${n('listeners')}/${n('routes')}/${n('clusters')}/${n('endpoints')}` };
};
for (const others of [0, OTHERS]) {
  const source = new MemoryMeshSource();
  source.upsertService(service('frontend'), [ep('v1')]);
  source.upsertService(service('catalog'), [ep('v1'), ep('v2')]);
  source.upsertService(service('ratings'), [ep('v1')]);
  for (let i = 0; i < others; i++) source.upsertService(service(`other-${i}`), [ep('v1')]);
  const everything = ['frontend', 'catalog', 'ratings', ...Array.from({ length: others }, (_, i) => `other-${i}`)].join(',');
  const pilot = await startPilot(source);
  console.log(`\n# config size per sidecar: embedded demo topology, ${3 + others} services in the mesh; /config_dump bytes (listeners/routes/clusters/endpoints)`);
  console.log('| sidecar | declared (today) | none declared, before its first call | none declared, after its calls (learned) | every service declared |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const s of DEMO) {
    const declared = await startSidecar(pilot.port, { nodeId: `${s.node}-declared`, workload: s.workload, dependencies: s.calls.join(',') || undefined });
    const learning = await startSidecar(pilot.port, { nodeId: `${s.node}-learned`, workload: s.workload });
    const all = await startSidecar(pilot.port, { nodeId: `${s.node}-all`, workload: s.workload, dependencies: everything });
    const before = await size(learning);
    for (const c of s.calls) {
      const r = await get(learning.outbound, c);
      if (r.status !== 200) throw new Error(`${s.node} → ${c}: ${r.status}`);
    }
    await new Promise((r) => setTimeout(r, 300)); // the pushes that follow the route (EDS of subsets, governance)
    const [d, a, b] = [await size(declared), await size(learning), await size(all)];
    const cell = (x) => `${x.bytes} (${x.counts})`;
    console.log(`| ${s.workload} (${s.node}) | ${cell(d)} | ${cell(before)} | ${cell(a)} | ${cell(b)} |`);
    await Promise.all([declared.stop(), learning.stop(), all.stop()]);
  }
  await pilot.stop();
}
upstream.close();
process.exit(0);
