// Sidecar footprint benchmark (not a test): memory and start time of the proxy and the LEGO agent,
// beside a bare Node process measured in the same run (issue 22).
//
// Prints, for one run on this machine:
//   1. baseline: a bare `node -e` process (RSS idle; time to exit of `node -e 0`);
//   2. import costs: RSS and V8 heap (after a full GC) of a process that only imports one module
//      (@octo-mesh/proto's index and the proxy's codecs, @grpc/grpc-js, @octo-mesh/runtime, re2js,
//      zod, the proxy's compiled code, the proxy bundle) — each minus the baseline;
//   3. the proxy idle (one route; 1,000 routes = 100 virtual hosts × 10 routes, 100 clusters × 5
//      endpoints), as the agent runs it (the esbuild bundle of packages/proxy-package) and as
//      packages/proxy/dist/main.js: RSS (and its anonymous part), V8 heap used/total, external
//      memory, start-to-ready (process spawn → admin `/ready` 200; median of STARTS, with no
//      compile cache, the one a package ships (unpacked into a new directory), and warm);
//   4. the bundle with the 1,000-route config after LOAD seconds of RPS requests/s spread over all
//      1,000 routes (keep-alive connections, 5 upstream ports served by a child process): RSS, peak
//      RSS, heap, and the metric series the load created (stats);
//   5. the LEGO agent (packages/lego-agent/dist/main.js) running the bundle with the one-route
//      config: the agent's RSS and its proxy child's.
//   6. (pod) a new pod's first start: the sidecar image's agent and bootstrap proxy bundles
//      (packages/images bundleApp), empty state directory, with no compile cache and with the one
//      the image ships: agent spawn → /readyz, the proxy child's part, CPU of both.
// RSS comes from /proc/<pid>/status (VmRSS, RssAnon), Pss and Uss (Private_Clean + Private_Dirty)
// from /proc/<pid>/smaps_rollup — Uss is what a process costs beside the others mapping the node
// binary (the agent and its proxy in a pod), Pss depends on how many Node processes run on the
// machine; the GC pauses (before the first accept, idle) from the proxy's metrics; the heap from its own /metrics
// (prom-client's nodejs_heap_size_*), read after RSS so the scrape does not count.
//
// Usage: npm run build first (tsc -b packages/lego-agent packages/proxy packages/proxy-package packages/images), then
//   node_modules/.bin/node bench/footprint/footprint.mjs     (env: LOAD=60 RPS=1000 CONNS=32 STARTS=5 IDLE=5
//                                                             NODE_FLAGS="--max-semi-space-size=8" to
//                                                             try V8 flags on every proxy measured directly;
//                                                             the agent forks with its own proxyNodeFlags;
//                                                             AGENT_NODE_FLAGS: Node flags of the agent itself,
//                                                             '|' between variants measured one after the other;
//                                                             PARTS=imports,idle,starts,load,agent,child,pod,gc: the sections to run
//                                                             (gc, not run by default: RSS after a full GC forced over the inspector;
//                                                             child: the bundle as the agent's child beside it alone, CHILD_ROUNDS=2,
//                                                             CHILD_VARIANTS=all for round 5's variants too);
//                                                             IDLE_GC=0: read the idle figures without waiting for the proxy's idle GC;
//                                                             BASELINE=<a built checkout> to measure beside this tree)
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { oneRoute, thousandRoutes } from './configs.mjs';
import { cpuMsOf, freePort, get, rssOf, smapsOf } from './proc.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// BASELINE=<another checkout, built>: every proxy section measures it too, interleaved with this
// tree (same run, same load), its rows marked "baseline".
const TREES = [...(process.env.BASELINE ? [{ name: 'baseline', root: process.env.BASELINE }] : []), { name: process.env.BASELINE ? 'this tree' : '', root: ROOT }];
const tag = (t, label) => (t.name ? `${t.name}: ${label}` : label);
const NODE = process.execPath;
const LOAD = Number(process.env.LOAD ?? 60);
const RPS = Number(process.env.RPS ?? 1000);
const CONNS = Number(process.env.CONNS ?? 32);
const STARTS = Number(process.env.STARTS ?? 5);
const IDLE = Number(process.env.IDLE ?? 5);
const NODE_FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
const AGENT_VARIANTS = (process.env.AGENT_NODE_FLAGS ?? '').split('|').map((v) => v.split(' ').filter(Boolean));
const PARTS = new Set((process.env.PARTS ?? 'imports,idle,starts,load,agent,child,pod').split(','));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MB = (b) => (b / 1048576).toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

const dir = mkdtempSync(join(tmpdir(), 'octo-footprint-'));
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(args, opts = {}) {
  const c = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(c);
  c.on('exit', () => children.delete(c));
  let err = '';
  c.stderr.on('data', (d) => (err += d));
  c.stdout.resume();
  c.stderrText = () => err;
  return c;
}

/** Heap figures from prom-client's default metrics on the proxy's admin port. */
async function heapOf(adminPort) {
  const { text } = await get(adminPort, '/metrics');
  const v = (name) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { used: v('nodejs_heap_size_used_bytes'), total: v('nodejs_heap_size_total_bytes'), external: v('nodejs_external_memory_bytes') };
}

// ---- configs: configs.mjs ----------------------------------------------------------------------

// ---- upstream (a child process, so its work and garbage are not the generator's) ---------------
const UPSTREAM = `
const net = require('node:net');
const body = 'x'.repeat(256);
const res = Buffer.from('HTTP/1.1 200 OK\\r\\ncontent-type: text/plain\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n' + body);
for (const port of process.argv.slice(1).map(Number)) net.createServer((s) => {
  let buf = '';
  s.on('data', (d) => { buf += d.toString('latin1'); let i; while ((i = buf.indexOf('\\r\\n\\r\\n')) >= 0) { buf = buf.slice(i + 4); s.write(res); } });
  s.on('error', () => {});
}).listen(port, '127.0.0.1');
process.send('up');`;

async function startUpstream(ports) {
  const c = spawn(NODE, ['-e', UPSTREAM, ...ports.map(String)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(c);
  await new Promise((r) => c.once('message', r));
  return c;
}

// ---- proxy runs --------------------------------------------------------------------------------
/** Spawns a proxy; resolves with the process, its admin port and spawn → /ready 200 in ms. */
async function startProxy(entry, cfgOf, upPorts, env = {}, flags = NODE_FLAGS, attempt = 1) {
  const [adminPort, outboundPort] = [await freePort(), await freePort()];
  const file = join(dir, `proxy-${adminPort}.json`);
  writeFileSync(file, JSON.stringify(cfgOf(adminPort, outboundPort, upPorts)));
  const t0 = performance.now();
  const proc = run([...flags, entry, '--config', file], { env: { ...process.env, ...env } });
  for (;;) {
    if (proc.exitCode !== null) {
      // Another process on this shared machine took a port between freePort() and the bind.
      if (attempt < 3 && proc.stderrText().includes('EADDRINUSE')) return startProxy(entry, cfgOf, upPorts, env, flags, attempt + 1);
      throw new Error(`proxy exited: ${proc.stderrText()}`);
    }
    try {
      if ((await get(adminPort, '/ready')).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(2);
  }
  const readyMs = performance.now() - t0;
  return { proc, adminPort, outboundPort, readyMs, readyCpuMs: cpuMsOf(proc.pid) };
}

async function stop(proc) {
  proc.kill('SIGKILL');
  await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
}

/** How many idle memory-reducing GCs the proxy ran (idle-gc.ts), or undefined for a build without them. */
async function idleGcs(adminPort) {
  const { text } = await get(adminPort, '/metrics');
  if (!text.includes('octo_proxy_idle_gc_total')) return undefined;
  return Number(/^octo_proxy_idle_gc_total\{result="done"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

/** The pauses of the proxy's memory-reducing GCs so far, in ms: before the first accept, and idle (sums). */
async function gcPauses(adminPort) {
  const { text } = await get(adminPort, '/metrics');
  const sum = (m) => Number(new RegExp(`^${m}_sum (\\S+)`, 'm').exec(text)?.[1] ?? 0) * 1000;
  return { accept: sum('octo_proxy_gc_before_accept_seconds'), idle: sum('octo_proxy_idle_gc_seconds') };
}

/** Whether the proxy ran its memory-reducing GC before the first accept (setting gcBeforeAccept). */
async function gcBeforeAccept(adminPort) {
  const { text } = await get(adminPort, '/metrics');
  return Number(/^octo_proxy_gc_before_accept_total\{result="done"\} (\d+)/m.exec(text)?.[1] ?? 0) > 0;
}

/**
 * Waits (up to 30 s) for the proxy's next idle GC. A scrape every 6 s: with the ~2,800 series the
 * 1,000-route load leaves, a scrape every 2 s kept the loop above the 2 % the idle GC waits for.
 */
async function afterIdleGc(adminPort, before) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const n = await idleGcs(adminPort);
    if (n === undefined || n > before || Date.now() > deadline) return n;
    await sleep(6000);
  }
}

async function idleFigures(p) {
  await sleep(IDLE * 1000);
  const early = rssOf(p.proc.pid).rss;
  // A build with the idle GC: measured once it has run (IDLE_GC=0: do not wait for it). After a GC
  // before the first accept the idle one waits for the heap to grow, which an idle proxy's does not.
  const gcs = process.env.IDLE_GC === '0' || (await gcBeforeAccept(p.adminPort)) ? undefined : await afterIdleGc(p.adminPort, 0);
  if (gcs !== undefined) await sleep(500);
  const r = rssOf(p.proc.pid);
  return { ...r, ...smapsOf(p.proc.pid), heap: await heapOf(p.adminPort), pauses: await gcPauses(p.adminPort), readyMs: p.readyMs, gcs, early };
}

/** Open-loop load: RPS requests/s over CONNS keep-alive connections, cycling through all 1,000 routes. */
async function load(port, seconds) {
  const reqs = [];
  for (let v = 0; v < 100; v++)
    for (let r = 0; r < 10; r++)
      reqs.push(Buffer.from(r === 9 ? `GET /x HTTP/1.1\r\nhost: svc-${v}\r\n\r\n` : `GET /api/v${r}/x HTTP/1.1\r\nhost: svc-${v}\r\nx-version: v${r}\r\n\r\n`, 'latin1'));
  let sent = 0;
  let done = 0;
  let errors = 0;
  const conns = await Promise.all(
    Array.from({ length: CONNS }, () => new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    })),
  );
  for (const s of conns) {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const h = buf.indexOf('\r\n\r\n');
        if (h < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, h))?.[1] ?? 0);
        if (buf.length < h + 4 + len) return;
        if (!buf.startsWith('HTTP/1.1 200')) errors++;
        buf = buf.slice(h + 4 + len);
        done++;
      }
    });
    s.on('error', () => errors++);
  }
  const t0 = performance.now();
  const total = RPS * seconds;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RPS));
    while (sent < due) {
      conns[sent % CONNS].write(reqs[sent % reqs.length]);
      sent++;
    }
    await sleep(5);
  }
  const deadline = Date.now() + 5000;
  while (done < sent && Date.now() < deadline) await sleep(20);
  for (const s of conns) s.destroy();
  return { sent, done, errors, seconds: (performance.now() - t0) / 1000 };
}

// ---- the run -----------------------------------------------------------------------------------
const out = [];
const say = (line = '') => {
  out.push(line);
  console.log(line);
};
say(`# octo-mesh sidecar footprint — ${new Date().toISOString()}`);
say(`tree: ${ROOT}${process.env.BASELINE ? `; baseline: ${process.env.BASELINE}` : ''}`);
say(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${MB(totalmem())} MB RAM, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (NODE_FLAGS.length) say(`NODE_FLAGS for the proxies started directly: ${NODE_FLAGS.join(' ')}`);
if (process.env.AGENT_NODE_FLAGS) say(`AGENT_NODE_FLAGS for the agent: ${AGENT_VARIANTS.map((v) => v.join(' ') || '(none)').join(' | ')}`);

for (const [i, t] of TREES.entries()) {
  const { bundleProxy } = await import(join(t.root, 'packages/proxy-package/dist/build.js'));
  t.bundle = await bundleProxy('0.0.0-footprint');
  t.bundlePath = join(dir, `proxy-${i}.mjs`);
  writeFileSync(t.bundlePath, t.bundle);
  // esbuild starts each module's code with a `// <path>` line: sum the generated protobuf code.
  const parts = t.bundle.toString('latin1').split(/^(?=\/\/ \S+\.[cm]?js$)/m);
  const gen = parts.filter((p) => /^\/\/ \S*proto\/dist\/gen\//.test(p));
  say(tag(t, `bundle: ${(t.bundle.length / 1024).toFixed(0)} KiB (packages/proxy-package bundleProxy), of which generated protobuf code ${(gen.reduce((n, p) => n + p.length, 0) / 1024).toFixed(0)} KiB in ${gen.length} files`));
}
const { bundlePath } = TREES.at(-1);
// 1. baseline
const bare = run(['-e', 'setInterval(() => {}, 1 << 30)']);
await sleep(1000);
const base = { ...rssOf(bare.pid), ...smapsOf(bare.pid) };
await stop(bare);
const bareStart = [];
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  execFileSync(NODE, ['-e', '0']);
  bareStart.push(performance.now() - t0);
}
say(`\n## baseline: bare node -e\nRSS ${MB(base.rss)} MB (anon ${MB(base.anon)} MB; Pss ${MB(base.pss)} MB, Uss ${MB(base.uss)} MB), node -e 0 runs in ${median(bareStart).toFixed(0)} ms`);

// 2. import costs
const REPORT = `globalThis.gc(); globalThis.gc(); const m = process.memoryUsage(); const s = require('node:fs').readFileSync('/proc/self/status', 'utf8'); process.stdout.write(JSON.stringify({ ms: performance.now() - t0, rss: Number(/VmRSS:\\s+(\\d+)/.exec(s)[1]) * 1024, heap: m.heapUsed, ab: m.arrayBuffers }));`;
async function importCost(spec, root = ROOT) {
  const code = `const { createRequire } = await import('node:module'); const require = createRequire(import.meta.url); const t0 = performance.now(); ${spec ? `await import(${JSON.stringify(spec)});` : ''} ${REPORT}`;
  const res = [];
  for (let i = 0; i < 3; i++) res.push(JSON.parse(execFileSync(NODE, ['--expose-gc', '--input-type=module', '-e', code], { cwd: join(root, 'packages/proxy'), stdio: ['ignore', 'pipe', 'ignore'] }).toString()));
  return { rss: median(res.map((r) => r.rss)), heap: median(res.map((r) => r.heap)), ms: median(res.map((r) => r.ms)) };
}
if (PARTS.has('imports')) {
  const nothing = await importCost('');
  say('\n## import costs (a process that imports only that module, after gc; minus the same with nothing imported)');
  say('| module | RSS MB | heap MB | import ms |\n| --- | ---: | ---: | ---: |');
  say(`| (nothing) | ${MB(nothing.rss)} | ${MB(nothing.heap)} | 0 |`);
  const IMPORTS = (ROOT) => [
    ['@octo-mesh/proto (index: every codec)', '@octo-mesh/proto'],
    ['@octo-mesh/proto/codecs.js (codecs and type URLs, no gRPC)', '@octo-mesh/proto/codecs.js'],
    ['@octo-mesh/proto/proxy-codecs.js (the proxy\'s trimmed tree: resources, typed configs)', '@octo-mesh/proto/proxy-codecs.js'],
    ['the proxy\'s translators (dist/translate/index.js + all they import)', join(ROOT, 'packages/proxy/dist/translate/index.js')],
    ['@grpc/grpc-js', '@grpc/grpc-js'],
    ['@octo-mesh/runtime (winston, prom-client, yaml)', '@octo-mesh/runtime'],
    ['zod', 'zod'],
    ['re2js', 're2js'],
    ['proxy code (dist/proxy.js + everything it imports)', join(ROOT, 'packages/proxy/dist/proxy.js')],
    ['proxy bundle (proxy.mjs, without running main)', null],
  ];
  for (const t of TREES)
    for (const [label, spec] of IMPORTS(t.root)) {
      let r;
      try {
        if (spec === null) {
          // The bundle runs main() on import: load a copy with the call removed.
          const lib = join(dir, 'proxy-lib.mjs');
          writeFileSync(lib, t.bundle.toString().replace(/\nmain\(\)\.catch\([\s\S]*$/, '\n'));
          r = await importCost(lib, t.root);
        } else r = await importCost(spec, t.root);
      } catch {
        say(`| ${tag(t, label)} | — | — | — |`);
        continue;
      }
      say(`| ${tag(t, label)} | +${MB(r.rss - nothing.rss)} | +${MB(r.heap - nothing.heap)} | ${r.ms.toFixed(0)} |`);
    }
}

// 3. the proxy idle
const upPorts = await Promise.all(Array.from({ length: 5 }, freePort));
const upstream = await startUpstream(upPorts);
const row = (label, f) => `| ${label} | ${f.gcs ? `${MB(f.early)} → after its idle GC ${MB(f.rss)}` : MB(f.rss)} | ${MB(f.anon)} | ${MB(f.pss)} | ${MB(f.uss)} | ${MB(f.heap.used)} / ${MB(f.heap.total)} | ${MB(f.heap.external)} | ${f.pauses.accept.toFixed(0)} / ${f.pauses.idle.toFixed(0)} | ${f.readyMs.toFixed(0)} |`;
const CONFIGS = [
  ['1 route', oneRoute],
  ['1,000 routes', thousandRoutes],
];
if (PARTS.has('idle')) {
  say(`\n## proxy idle (${IDLE} s after ready)`);
  say('| proxy, config | RSS MB | anon MB | Pss MB | Uss MB | V8 heap used / total MB | external MB | GC pause ms: before accept / idle | spawn → /ready ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const ENTRIES = [
    ['bundle', (t) => t.bundlePath],
    ['dist/main.js', (t) => join(t.root, 'packages/proxy/dist/main.js')],
  ];
  for (const [el, entry] of ENTRIES)
    for (const [cl, cfg] of CONFIGS)
      for (const t of TREES) {
        const p = await startProxy(entry(t), cfg, upPorts);
        say(row(tag(t, `${el}, ${cl}`), await idleFigures(p)));
        await stop(p.proc);
      }
}

if (PARTS.has('starts')) {
  // start-to-ready, several starts: no compile cache (cold); the cache a package ships, the
  // package unpacked into a new directory for every start (each start is that version's first in
  // a new pod, as the agent runs it: NODE_COMPILE_CACHE=<package>/compile-cache, portable); warm
  // (the cache the proxy's own earlier start wrote, as for a restart).
  say(`\n## start-to-ready (spawn → /ready 200, and the proxy's CPU time until then), bundle, median of ${STARTS}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const i of TREES.keys()) mkdirSync(join(dir, `compile-cache-${i}`));
  for (const [i, t] of TREES.entries()) {
    const { makePackage } = await import(join(t.root, 'packages/proxy-package/dist/build.js'));
    const { PackageStore } = await import(join(t.root, 'packages/proxy-package/dist/store.js'));
    const p = await makePackage({ version: '0.0.0-footprint', bundle: t.bundle });
    const file = join(dir, `package-${i}.tgz`);
    writeFileSync(file, p.bytes);
    let n = 0;
    t.unpackFresh = () => new PackageStore({ root: join(dir, `store-${i}-${n++}`) }).install(file, { version: '0.0.0-footprint', sha256: p.sha256 });
    const shipped = p.bytes.length;
    const bare = (await makePackage({ version: '0.0.0-footprint', bundle: t.bundle, compileCache: false })).bytes.length;
    say(tag(t, `package: ${(shipped / 1024).toFixed(0)} KiB with its compile cache, ${(bare / 1024).toFixed(0)} KiB without`));
  }
  for (const [cl, cfg] of CONFIGS)
    for (const [label, cache, gcEnv] of [
      ['no compile cache', 'none', {}],
      ['compile cache shipped in the package, unpacked into a new directory (first start)', 'shipped', {}],
      ['NODE_COMPILE_CACHE warm (written by an earlier start)', 'warm', {}],
      ['NODE_COMPILE_CACHE warm, gcBeforeAccept always (a GC before the first accept)', 'warm', { OCTO_PROXY_GC_BEFORE_ACCEPT: 'always' }],
    ]) {
      const envOf = (i) => ({ ...gcEnv, ...(cache === 'warm' ? { NODE_COMPILE_CACHE: join(dir, `compile-cache-${i}`) } : {}) });
      // Fills the cache: Node writes it when the process exits, so the filling start is stopped
      // with SIGTERM (the proxy's graceful exit); SIGKILL, as stop() sends, leaves it empty.
      if (cache === 'warm')
        for (const [i, t] of TREES.entries()) {
          const { proc } = await startProxy(t.bundlePath, cfg, upPorts, envOf(i));
          proc.kill('SIGTERM');
          await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
        }
      const ms = TREES.map(() => []);
      const cpu = TREES.map(() => []);
      // The trees take turns, so a change in the machine's load hits both.
      for (let i = 0; i < STARTS; i++)
        for (const [j, t] of TREES.entries()) {
          let entry = t.bundlePath;
          let env = envOf(j);
          if (cache === 'shipped') {
            const pkg = await t.unpackFresh();
            entry = pkg.entry;
            env = { ...env, NODE_COMPILE_CACHE: join(pkg.dir, 'compile-cache'), NODE_COMPILE_CACHE_PORTABLE: '1' };
          }
          const p = await startProxy(entry, cfg, upPorts, env);
          ms[j].push(p.readyMs);
          cpu[j].push(p.readyCpuMs);
          await stop(p.proc);
        }
      for (const [j, t] of TREES.entries())
        say(`- ${tag(t, `${cl}, ${label}`)}: ${median(ms[j]).toFixed(0)} ms (${ms[j].map((x) => x.toFixed(0)).join(', ')}); CPU used until ready ${median(cpu[j]).toFixed(0)} ms (${cpu[j].join(', ')})`);
    }
  say(`load average after the starts: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

// The bundle as the LEGO agent's child (forked with the agent's Node flags, its compile cache, the
// sockets over IPC and so the warm-up) beside the same bundle alone: what makes the difference.
if (PARTS.has('child')) {
  const { ProxyChild } = await import(join(ROOT, 'packages/lego-agent/dist/child.js'));
  const { ListeningSockets } = await import(join(ROOT, 'packages/lego-agent/dist/sockets.js'));
  const { DEFAULT_PROXY_NODE_FLAGS } = await import(join(ROOT, 'packages/lego-agent/dist/config.js'));
  const quiet = { debug() {}, info() {}, warn: (m, f) => console.error(m, f), error: (m, f) => console.error(m, f) };
  const cacheDir = join(dir, 'child-compile-cache');
  mkdirSync(cacheDir, { recursive: true });
  // glibc's default: 8 arenas per core.
  const defaultArenas = String(8 * cpus().length);
  async function asChild(extra, env) {
    const sockets = new ListeningSockets();
    sockets.bindTcp('outbound', 'outbound', '127.0.0.1', 0);
    sockets.bindTcp('inbound', 'inbound', '127.0.0.1', 0);
    const file = join(dir, `child-${Math.random().toString(36).slice(2)}.json`);
    const { adminPort: _a, outboundPort: _o, inboundPort: _i, inboundHost: _h, ...cfg } = oneRoute(0, 0, upPorts);
    writeFileSync(file, JSON.stringify({ ...cfg, ...extra, socketsFrom: 'parent', adminHost: '127.0.0.1', adminPort: 0 }));
    const t0 = performance.now();
    const c = new ProxyChild({ entry: bundlePath, args: ['--config', file, '--sockets-from', 'parent', '--admin-port', '0', '--outbound-port', '0', '--inbound-port', '0'], sockets, logger: quiet, version: 'footprint', sha256: '', execArgv: DEFAULT_PROXY_NODE_FLAGS, env: { ...process.env, NODE_COMPILE_CACHE: cacheDir, ...env } });
    children.add(c.proc);
    const adminPort = await c.started;
    while ((await get(adminPort, '/ready').catch(() => ({ status: 0 }))).status !== 200) await sleep(5);
    return { proc: c.proc, adminPort, readyMs: performance.now() - t0, close: () => sockets.held.forEach((h) => h.handle.close()) };
  }
  // CHILD_VARIANTS=all adds round 5's (the child before the idle GC, without the warm-up, with glibc's default arenas).
  const VARIANTS = [
    ['alone (spawned, binds its own sockets), agent\'s Node flags (gcBeforeAccept after-warm-up: none here)', null, {}],
    ['alone, agent\'s Node flags, gcBeforeAccept always', null, { OCTO_PROXY_GC_BEFORE_ACCEPT: 'always' }],
    ...(process.env.CHILD_VARIANTS === 'all'
      ? [
          ['agent\'s child as before round 5: warm-up, no idle GC, glibc\'s default arenas', { idleGcMs: 0, gcBeforeAccept: 'off' }, { MALLOC_ARENA_MAX: defaultArenas }],
          ['agent\'s child, no warm-up (warmUpRequests 0), no idle GC, default arenas', { idleGcMs: 0, warmUpRequests: 0, gcBeforeAccept: 'off' }, { MALLOC_ARENA_MAX: defaultArenas }],
          ['agent\'s child, warm-up, idle GC, default arenas', { gcBeforeAccept: 'off' }, { MALLOC_ARENA_MAX: defaultArenas }],
        ]
      : []),
    ['agent\'s child as round 5 (warm-up, idle GC, two arenas; gcBeforeAccept off)', { gcBeforeAccept: 'off' }, {}],
    ['agent\'s child, gcBeforeAccept after the warm-up, idle GC off', { idleGcMs: 0 }, {}],
    ['agent\'s child as now (warm-up, gcBeforeAccept, idle GC, ProxyChild\'s env)', {}, {}],
  ];
  say(`\n## the bundle as the agent's child and alone (one route, ${IDLE} s after ready or after its idle GC), ${Number(process.env.CHILD_ROUNDS ?? 2)} rounds; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  say('| variant | RSS MB | anon MB | file MB | Pss MB | Uss MB | V8 heap used / total MB | idle GCs | GC pause ms: before accept / idle | spawn → /ready ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (let round = 0; round < Number(process.env.CHILD_ROUNDS ?? 2); round++)
    for (const [label, extra, env] of VARIANTS) {
      const p = extra === null ? await startProxy(bundlePath, oneRoute, upPorts, env, DEFAULT_PROXY_NODE_FLAGS) : await asChild(extra, env);
      const f = await idleFigures(p);
      const st = readFileSync(`/proc/${p.proc.pid}/status`, 'utf8');
      const file = Number(/^RssFile:\s+(\d+)/m.exec(st)?.[1] ?? 0) * 1024;
      say(`| ${label} | ${MB(f.rss)} | ${MB(f.anon)} | ${MB(file)} | ${MB(f.pss)} | ${MB(f.uss)} | ${MB(f.heap.used)} / ${MB(f.heap.total)} | ${f.gcs ?? '—'} | ${f.pauses.accept.toFixed(0)} / ${f.pauses.idle.toFixed(0)} | ${f.readyMs.toFixed(0)} |`);
      await stop(p.proc);
      p.close?.();
    }
}

// What a full GC once the config is loaded would give (an experiment: the proxy does not do it).
// The proxy runs with --inspect and the bench asks for the GC over the inspector protocol; the
// inspector itself costs some memory, hence the "before" column measured the same way.
if (PARTS.has('gc')) {
  say(`\n## bundle idle ${IDLE} s, then a full GC forced over the inspector protocol (experiment; --inspect adds its own memory)`);
  say('| config | RSS MB before | after two full GCs | V8 heap used / total after MB |\n| --- | ---: | ---: | ---: |');
  for (const [cl, cfg] of CONFIGS) {
    const p = await startProxy(bundlePath, cfg, upPorts, {}, [...NODE_FLAGS, '--inspect=127.0.0.1:0']);
    await sleep(IDLE * 1000);
    const before = rssOf(p.proc.pid).rss;
    const ws = new WebSocket(/ws:\/\/\S+/.exec(p.proc.stderrText())[0]);
    await new Promise((r, j) => (ws.addEventListener('open', r), ws.addEventListener('error', j)));
    const replies = new Map();
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(e.data);
      replies.get(m.id)?.(m);
    });
    let id = 0;
    const call = (method) => new Promise((r) => (replies.set(++id, r), ws.send(JSON.stringify({ id, method }))));
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    await sleep(2000);
    const after = rssOf(p.proc.pid).rss;
    const heap = await heapOf(p.adminPort);
    ws.close();
    say(`| ${cl} | ${MB(before)} | ${MB(after)} | ${MB(heap.used)} / ${MB(heap.total)} |`);
    await stop(p.proc);
  }
}

// 4. under load
if (PARTS.has('load')) {
  say(`\n## bundle, 1,000 routes, after ${LOAD} s at ${RPS} rps over ${CONNS} connections (all 1,000 routes)`);
  for (const t of TREES) {
    if (t.name) say(`${t.name}:`);
    const p = await startProxy(t.bundlePath, thousandRoutes, upPorts);
    const before = await idleFigures(p);
    const seriesBefore = (await get(p.adminPort, '/stats/prometheus')).text.split('\n').filter((l) => l && !l.startsWith('#')).length;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(p.proc.pid).rss)), 500);
    const l = await load(p.outboundPort, LOAD);
    clearInterval(sampler);
    await sleep(1000);
    const after = rssOf(p.proc.pid);
    const gcsBefore = (await idleGcs(p.adminPort)) ?? 0;
    const heap = await heapOf(p.adminPort);
    const seriesAfter = (await get(p.adminPort, '/stats/prometheus')).text.split('\n').filter((l) => l && !l.startsWith('#')).length;
    // One sample falls anywhere in the GC cycle: the range over the next IDLE seconds, idle.
    const later = [];
    for (let i = 0; i < IDLE * 2; i++) {
      await sleep(500);
      later.push(rssOf(p.proc.pid).rss);
    }
    say(`requests ${l.sent} sent, ${l.done} answered, ${l.errors} not 200, in ${l.seconds.toFixed(1)} s`);
    say(`RSS sampled every 0.5 s over the ${IDLE} s after that: ${MB(Math.min(...later))}–${MB(Math.max(...later))} MB (last ${MB(later.at(-1))} MB)`);
    say(`RSS ${MB(after.rss)} MB (anon ${MB(after.anon)} MB; peak sampled ${MB(peak)} MB, VmHWM ${MB(after.hwm)} MB), V8 heap used / total ${MB(heap.used)} / ${MB(heap.total)} MB, external ${MB(heap.external)} MB`);
    const gcs = process.env.IDLE_GC === '0' ? undefined : await afterIdleGc(p.adminPort, gcsBefore);
    if (gcs !== undefined) {
      await sleep(500);
      const h = await heapOf(p.adminPort);
      say(`after the proxy's idle GC (${gcs} since start): RSS ${MB(rssOf(p.proc.pid).rss)} MB, V8 heap used / total ${MB(h.used)} / ${MB(h.total)} MB`);
    }
    say(`idle before the load: RSS ${MB(before.rss)} MB, heap used ${MB(before.heap.used)} MB; metric series ${seriesBefore} → ${seriesAfter} (stats: +${MB(heap.used - before.heap.used)} MB heap with everything else the load left)`);
    await stop(p.proc);
  }
}

// 5. the agent
if (PARTS.has('agent')) {
  say('\n## LEGO agent running the bundle (one route), 3 s after ready');
  for (const AGENT_NODE_FLAGS of AGENT_VARIANTS) {
    const stateDir = join(dir, `agent-${AGENT_VARIANTS.indexOf(AGENT_NODE_FLAGS)}`);
    const adminPort = await freePort();
    const agentCfg = {
      adminPort,
      outboundPort: await freePort(),
      inboundHost: '127.0.0.1',
      inboundPort: await freePort(),
      proxyEntry: bundlePath,
      stateDir,
      logLevel: 'warn',
      proxy: (({ adminPort: _a, outboundPort: _o, inboundHost: _h, inboundPort: _i, ...rest }) => rest)(oneRoute(0, 0, upPorts)),
    };
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify(agentCfg));
    const t0 = performance.now();
    const agent = run([...AGENT_NODE_FLAGS, join(ROOT, 'packages/lego-agent/dist/main.js'), '--config', file]);
    for (;;) {
      if (agent.exitCode !== null) throw new Error(`agent exited: ${agent.stderrText()}`);
      try {
        if ((await get(adminPort, '/readyz')).status === 200) break;
      } catch {
        /* not yet */
      }
      await sleep(5);
    }
    const readyMs = performance.now() - t0;
    await sleep(3000);
    const proxyPid = JSON.parse((await get(adminPort, '/proxy')).text).pid;
    const a = rssOf(agent.pid);
    const c = rssOf(proxyPid);
    const [am, cm] = [smapsOf(agent.pid), smapsOf(proxyPid)];
    const ah = await heapOf(adminPort);
    say(`${AGENT_NODE_FLAGS.length ? `with ${AGENT_NODE_FLAGS.join(' ')}: ` : ''}agent RSS ${MB(a.rss)} MB (anon ${MB(a.anon)} MB, V8 heap used / total ${MB(ah.used)} / ${MB(ah.total)} MB, external ${MB(ah.external)} MB); its proxy child RSS ${MB(c.rss)} MB (anon ${MB(c.anon)} MB); agent spawn → /readyz 200 (proxy ready and synced) ${readyMs.toFixed(0)} ms`);
    // The pair's pages: each one's own (Uss) plus the pages they share, which are at least the larger
    // one's shared set (same binary) and at most both added up.
    say('| process | RSS MB | Pss MB | Uss MB | Shared (RSS − Uss) MB |\n| --- | ---: | ---: | ---: | ---: |');
    say(`| bare node -e (start of run) | ${MB(base.rss)} | ${MB(base.pss)} | ${MB(base.uss)} | ${MB(base.rss - base.uss)} |`);
    say(`| agent | ${MB(a.rss)} | ${MB(am.pss)} | ${MB(am.uss)} | ${MB(am.shared)} |`);
    say(`| its proxy child | ${MB(c.rss)} | ${MB(cm.pss)} | ${MB(cm.uss)} | ${MB(cm.shared)} |`);
    say(`| the pair | ${MB(a.rss + c.rss)} (sum) | ${MB(am.pss + cm.pss)} (sum) | ${MB(am.uss + cm.uss)} (sum) | pod total: ${MB(am.uss + cm.uss + Math.max(am.shared, cm.shared))}–${MB(a.rss + c.rss)} |`);
    try {
      const args = readFileSync(`/proc/${proxyPid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      say(`proxy child command line: ${args.map((x) => x.replace(ROOT, '').replace(dir, '<tmp>')).join(' ')}`);
    } catch {
      /* gone */
    }
    agent.kill('SIGTERM');
    await new Promise((r) => (agent.exitCode !== null ? r() : agent.once('exit', r)));
  }
}
// A new pod's first start, as the sidecar image runs it: the agent bundle (/app/lego-agent.mjs,
// the injector's Node flag) starting the bootstrap proxy bundle (/app/proxy.mjs), an empty state
// directory; without a compile cache and with the one the image ships (/app/compile-cache, built
// as packages/images builds it, for this user). Spawn → the agent's /readyz 200 (its proxy ready).
if (PARTS.has('pod')) {
  const { bundleApp } = await import(join(ROOT, 'packages/images/dist/mesh.js'));
  const { buildCompileCache } = await import(join(ROOT, 'packages/proxy-package/dist/compile-cache.js'));
  const files = await Promise.all(['lego-agent', 'proxy'].map(async (a) => ({ path: `${a}.mjs`, data: await bundleApp(ROOT, a, '0.0.0-footprint') })));
  const cache = await buildCompileCache({ files, modules: files.map((f) => f.path), uid: process.getuid() });
  const apps = {};
  for (const [kind, extra] of [['none', []], ['image', cache]]) {
    apps[kind] = join(dir, `app-${kind}`);
    for (const f of [...files, ...extra]) {
      mkdirSync(join(apps[kind], f.path, '..'), { recursive: true });
      writeFileSync(join(apps[kind], f.path), f.data);
    }
  }
  say(`\n## a new pod's first start: the image's agent and bootstrap proxy bundles (${files.map((f) => `${f.path} ${(f.data.length / 1024).toFixed(0)} KiB`).join(', ')}), empty state directory, median of ${STARTS}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const rows = { none: { ms: [], proxyMs: [], agentCpu: [], proxyCpu: [] }, image: { ms: [], proxyMs: [], agentCpu: [], proxyCpu: [] } };
  let n = 0;
  for (let i = 0; i < STARTS; i++)
    for (const kind of ['none', 'image']) {
      const adminPort = await freePort();
      const file = join(dir, `pod-${n}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          adminPort,
          outboundPort: await freePort(),
          inboundHost: '127.0.0.1',
          inboundPort: await freePort(),
          proxyEntry: join(apps[kind], 'proxy.mjs'),
          stateDir: join(dir, `pod-state-${n++}`),
          logLevel: 'warn',
          proxy: (({ adminPort: _a, outboundPort: _o, inboundHost: _h, inboundPort: _i, ...rest }) => rest)(oneRoute(0, 0, upPorts)),
        }),
      );
      const env = { ...process.env, ...(kind === 'image' ? { NODE_COMPILE_CACHE: join(apps[kind], 'compile-cache'), NODE_COMPILE_CACHE_PORTABLE: '1' } : {}) };
      const t0 = performance.now();
      const agent = run(['--max-semi-space-size=1', join(apps[kind], 'lego-agent.mjs'), '--config', file], { env });
      for (;;) {
        if (agent.exitCode !== null) throw new Error(`agent exited: ${agent.stderrText()}`);
        try {
          if ((await get(adminPort, '/readyz')).status === 200) break;
        } catch {
          /* not yet */
        }
        await sleep(2);
      }
      rows[kind].ms.push(performance.now() - t0);
      const up = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
      const proxyPid = JSON.parse((await get(adminPort, '/proxy')).text).pid;
      rows[kind].agentCpu.push(cpuMsOf(agent.pid));
      rows[kind].proxyCpu.push(cpuMsOf(proxyPid));
      // The proxy's age when the agent became ready: its own start-to-ready, to 10 ms (the
      // kernel's start time is in clock ticks).
      rows[kind].proxyMs.push(up - (Number(readFileSync(`/proc/${proxyPid}/stat`, 'utf8').split(') ')[1].split(' ')[19]) * 1000) / 100);
      agent.kill('SIGTERM');
      await new Promise((r) => (agent.exitCode !== null ? r() : agent.once('exit', r)));
    }
  for (const [kind, label] of [['none', 'no compile cache'], ['image', 'the compile cache the image ships']]) {
    const r = rows[kind];
    say(`- ${label}: agent spawn → /readyz ${median(r.ms).toFixed(0)} ms (${r.ms.map((x) => x.toFixed(0)).join(', ')}), of which the proxy child's fork → ready ${median(r.proxyMs).toFixed(0)} ms (${r.proxyMs.map((x) => x.toFixed(0)).join(', ')}); CPU until then: agent ${median(r.agentCpu).toFixed(0)} ms (${r.agentCpu.join(', ')}), proxy ${median(r.proxyCpu).toFixed(0)} ms (${r.proxyCpu.join(', ')})`);
  }
  say(`load average after the pod starts: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
upstream.kill();
const base2 = run(['-e', 'setInterval(() => {}, 1 << 30)']);
await sleep(1000);
say(`\nbaseline again at the end: bare node -e RSS ${MB(rssOf(base2.pid).rss)} MB`);
await stop(base2);
if (process.env.OUT) writeFileSync(process.env.OUT, `${out.join('\n')}\n`);
process.exit(0);
