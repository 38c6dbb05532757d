#!/usr/bin/env node
// Startup-snapshot experiment (issue 22, docs/footprint.md round 8; a benchmark, not a test): does
// starting the proxy from a V8 startup snapshot (`node --snapshot-blob X --build-snapshot entry`,
// then `node --snapshot-blob X`) get it to ready sooner than the bundle with the compile cache a
// package ships?
//
// What it does, in one run:
//   1. builds the proxy as one CommonJS script for the snapshot builder (esbuild, from
//      packages/proxy/dist/main.js like bundleProxy, but `format: 'cjs'`), in which:
//      - main.js's closing `main().catch(...)` becomes the snapshot's deserialize main function
//        (v8.startupSnapshot.setDeserializeMainFunction): the top level only defines modules and
//        everything that opens handles (config load, logger, metrics, admin server, listeners)
//        runs after deserialization;
//      - node:http, node:https, node:http2 and node:tls are required lazily (a Proxy that loads
//        the module on first use, and throws if that happens while the snapshot is built): Node
//        24 cannot serialize their bindings (HTTPParser, nghttp2: `CheckGlobalAndEternalHandles
//        failed`), and grpc-js, the admin server and the data plane require them at top level;
//      - `navigator` is defined as `undefined`: zod probes it once (allowsEval) while a schema is
//        built at top level, and Node's `navigator` getter loads node:http;
//      - prom-client's process start time, taken when its module loads, is taken after
//        deserialization (v8.startupSnapshot.addDeserializeCallback) instead;
//   2. builds the blob (`--random-seed=1`), and with REPRO=1 builds it three times as it is and
//      three times pinned (pid namespace, no ASLR, --predictable --hash-seed=1; root) to see
//      whether the same script gives the same bytes;
//   3. starts, alternating (same load for both), STARTS times each: the bundle from a package
//      unpacked into a new directory with its shipped compile cache (as the LEGO agent starts a
//      version's first proxy; the baseline), and the snapshot; prints spawn → /ready 200 and the
//      CPU the process used until then (medians), checks that each start serves a request through
//      its outbound listener, and reads RSS, Pss and Uss of the last start of each once its idle GC
//      has run (idleGcMs 5 s); plus a bare `node -e 0` for scale. Load average before and after.
//
// Usage: npm run build first (tsc -b packages/proxy packages/proxy-package), then, under the bench lock:
//   flock /tmp/octo-bench.lock node_modules/.bin/node bench/footprint/snapshot.mjs   (env: STARTS=5 REPRO=1)
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { oneRoute } from './configs.mjs';
import { cpuMsOf, freePort, get, rssOf, smapsOf } from './proc.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = process.execPath;
const STARTS = Number(process.env.STARTS ?? 5);
const VERSION = '0.0.0-snapshot';
const SNAPSHOT_FLAGS = ['--random-seed=1'];
const { bundleProxy, makePackage, LEFT_OUT } = await import(join(ROOT, 'packages/proxy-package/dist/build.js'));
const { PackageStore } = await import(join(ROOT, 'packages/proxy-package/dist/store.js'));

const dir = mkdtempSync(join(tmpdir(), 'octo-snapshot-'));
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
const say = (s) => process.stdout.write(`${s}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const MB = (b) => (b / 1048576).toFixed(1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// ---- the snapshot's script ---------------------------------------------------------------------
/** Modules whose bindings Node cannot put in a snapshot: required on first use instead. */
const LAZY_IDS = '(?:node:)?(?:http|http2|https|tls)';
const LAZY_SHIM = `var __octoLazyCache = Object.create(null);
function __octoLazy(id, esm, member) {
  const load = () => {
    if (require("node:v8").startupSnapshot.isBuildingSnapshot()) throw new Error("snapshot: " + id + " used while the snapshot is built");
    const m = __octoLazyCache[id] ??= require(id);
    return member ? m[member] : m;
  };
  return new Proxy(member ? function () {} : Object.create(null), {
    apply: (_, self, args) => Reflect.apply(load(), self, args),
    construct: (_, args) => Reflect.construct(load(), args),
    get: (_, k) => (esm && k === "default" ? load() : load()[k]),
    has: (_, k) => k in load(),
    set: (_, k, v) => ((load()[k] = v), true),
  });
}
`;

/** The proxy as one CommonJS script whose top level only defines modules; main() runs after deserialization. */
async function bundleProxyForSnapshot(version) {
  const tail = /main\(\)\.catch\(/;
  const r = await build({
    entryPoints: [join(ROOT, 'packages/proxy/dist/main.js')],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    write: false,
    define: { __OCTO_PROXY_VERSION__: JSON.stringify(version), navigator: 'undefined' },
    legalComments: 'none',
    logLevel: 'error',
    external: [...LEFT_OUT],
    plugins: [
      {
        name: 'main-after-deserialize',
        setup(b) {
          b.onLoad({ filter: /packages[\\/]proxy[\\/]dist[\\/]main\.js$/ }, async (a) => {
            const src = await readFile(a.path, 'utf8');
            if (!tail.test(src)) throw new Error('main.js: no `main().catch(` to defer');
            return { contents: `${src.replace(tail, 'const __octoMain = () => main().catch(')}\nrequire('node:v8').startupSnapshot.setDeserializeMainFunction(__octoMain);\n`, loader: 'js' };
          });
        },
      },
    ],
  });
  const id = `"(${LAZY_IDS})"`;
  let text = r.outputFiles[0].text
    .replace(/^#!.*\n/, '')
    .replace(new RegExp(`__toESM\\(require\\(${id}\\), 1\\)`, 'g'), (_, m) => `__octoLazy("${m}", true)`)
    .replace(new RegExp(`require\\(${id}\\)`, 'g'), (_, m) => `__octoLazy("${m}")`)
    .replace(new RegExp(`var \\{ (\\w+) \\} = process\\.getBuiltinModule\\(${id}\\);`, 'g'), (_, n, m) => `var ${n} = __octoLazy("${m}", false, "${n}");`)
    .replace(new RegExp(`\\(\\{ ([\\w, ]+) \\} = process\\.getBuiltinModule\\(${id}\\)\\)`, 'g'), (_, ns, m) => `(${ns.split(', ').map((n) => `${n} = __octoLazy("${m}", false, "${n}")`).join(', ')})`)
    .replace(new RegExp(`process\\.getBuiltinModule\\(${id}\\)`, 'g'), (_, m) => `__octoLazy("${m}")`);
  // prom-client's process_start_time_seconds is taken when its module loads: at build time, in a snapshot.
  const startTime = 'var startInSeconds = Math.round(Date.now() / 1e3 - process.uptime());';
  if (!text.includes(startTime)) throw new Error("prom-client's start time line changed");
  text = text.replace(startTime, 'var startInSeconds; require("node:v8").startupSnapshot.addDeserializeCallback(() => { startInSeconds = Math.round(Date.now() / 1e3 - process.uptime()); });');
  if (/process\.getBuiltinModule\(\{/.test(text)) throw new Error('a getBuiltinModule pattern this script does not rewrite');
  // As bundleProxy: ASCII only, so V8 holds the source as one-byte strings.
  return LAZY_SHIM + text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Builds the blob at `blob` from `script`; returns the build's wall time in ms. `pinned`: as far as
 * V8 and Node allow a reproducible build: in a new PID namespace (Node stores the builder's pid),
 * without address-space randomization (setarch -R), `--predictable --hash-seed=1` (root, util-linux).
 */
function buildSnapshot(script, blob, pinned = false) {
  const node = [...SNAPSHOT_FLAGS, ...(pinned ? ['--predictable', '--hash-seed=1'] : []), '--no-warnings', '--snapshot-blob', blob, '--build-snapshot', script];
  const [cmd, args] = pinned ? ['unshare', ['--pid', '--fork', 'setarch', '-R', NODE, ...node]] : [NODE, node];
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`--build-snapshot failed (${r.status ?? r.signal}): ${(r.stderr ?? r.error?.message ?? '').slice(0, 2000)}`);
  return performance.now() - t0;
}

// ---- proxy runs --------------------------------------------------------------------------------
const memOf = (pid) => ({ ...rssOf(pid), ...smapsOf(pid) });
/** One request through the proxy's outbound listener to svc-0 (fetch cannot set Host). */
function throughProxy(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/hello', headers: { host: 'svc-0' }, timeout: 2000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out'))).on('error', reject);
  });
}

/** Spawns `node ...args --config FILE`; resolves with spawn → /ready 200 and the CPU used until then. */
async function startProxy(args, env, upPort, attempt = 1) {
  const [adminPort, outboundPort] = [await freePort(), await freePort()];
  const file = join(dir, `proxy-${adminPort}.json`);
  writeFileSync(file, JSON.stringify(oneRoute(adminPort, outboundPort, [upPort])));
  const t0 = performance.now();
  const proc = spawn(NODE, [...args, '--config', file], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  children.add(proc);
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  for (;;) {
    if (proc.exitCode !== null) {
      if (attempt < 3 && err.includes('EADDRINUSE')) return startProxy(args, env, upPort, attempt + 1);
      throw new Error(`proxy exited: ${err}`);
    }
    try {
      if ((await get(adminPort, '/ready')).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(2);
  }
  const readyMs = performance.now() - t0;
  const readyCpuMs = cpuMsOf(proc.pid);
  const served = await throughProxy(outboundPort);
  if (served.status !== 200 || served.text !== 'upstream /hello') throw new Error(`request through the proxy: ${served.status} ${served.text}`);
  return { proc, adminPort, readyMs, readyCpuMs, stderr: () => err };
}
async function stop(proc) {
  proc.kill('SIGKILL');
  await new Promise((r) => (proc.exitCode !== null || proc.signalCode ? r() : proc.once('exit', r)));
  children.delete(proc);
}
/** Memory once the proxy's idle GC has run (octo_proxy_idle_gc_total done ≥ 1; at most 15 s). */
async function idleMem(p) {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    const { text } = await get(p.adminPort, '/metrics');
    if (Number(/^octo_proxy_idle_gc_total\{result="done"\} (\d+)/m.exec(text)?.[1] ?? 0) >= 1) break;
    await sleep(250);
  }
  await sleep(200);
  return memOf(p.proc.pid);
}

// ---- the run -----------------------------------------------------------------------------------
say(`# startup snapshot vs the bundle with its shipped compile cache (one route), ${new Date().toISOString()}, ${NODE} ${process.version}`);
say(`load average at the start: ${load()}`);
const bundle = await bundleProxy(VERSION);
const script = await bundleProxyForSnapshot(VERSION);
const scriptPath = join(dir, 'proxy-snapshot.cjs');
writeFileSync(scriptPath, script);
const blob = join(dir, 'proxy.blob');
const buildMs = buildSnapshot(scriptPath, blob);
const blobBytes = readFileSync(blob);
say(`bundle (ESM) ${(bundle.length / 1024).toFixed(0)} KiB; snapshot script (CJS) ${(script.length / 1024).toFixed(0)} KiB; blob ${MB(blobBytes.length)} MB (${MB(gzipSync(blobBytes, { level: 9 }).length)} MB gzipped), built in ${buildMs.toFixed(0)} ms (${SNAPSHOT_FLAGS.join(' ')})`);
if (process.env.REPRO === '1') {
  // Same script, same output path (the blob's own path is in it, in process.execArgv), one build
  // per second: prom-client keeps its process start time (whole seconds) from module load.
  for (const pinned of [false, true]) {
    const sums = [];
    for (let i = 0; i < 3; i++) {
      buildSnapshot(scriptPath, join(dir, 'repro.blob'), pinned);
      sums.push(sha256(readFileSync(join(dir, 'repro.blob'))).slice(0, 12));
      await sleep(1100);
    }
    say(`reproducible? three builds${pinned ? ' pinned (pid namespace, setarch -R, --predictable --hash-seed=1)' : ''}: ${new Set(sums).size === 1 ? 'same bytes' : `${new Set(sums).size} different sha256`} (${sums.join(', ')})`);
  }
}
const pkg = await makePackage({ version: VERSION, bundle });
const pkgFile = join(dir, 'package.tgz');
writeFileSync(pkgFile, pkg.bytes);
let n = 0;
const unpackFresh = () => new PackageStore({ root: join(dir, `store-${n++}`) }).install(pkgFile, { version: VERSION, sha256: pkg.sha256 });

const upstream = http.createServer((req, res) => res.end(`upstream ${req.url}`)).listen(0, '127.0.0.1');
await new Promise((r) => upstream.once('listening', r));
const upPort = upstream.address().port;

const bare = [];
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  spawnSync(NODE, ['-e', '0']);
  bare.push(performance.now() - t0);
}
const kinds = {
  'bundle + shipped compile cache (baseline)': async () => {
    const p = await unpackFresh();
    return { args: [p.entry], env: { NODE_COMPILE_CACHE: join(p.dir, 'compile-cache'), NODE_COMPILE_CACHE_PORTABLE: '1' } };
  },
  'startup snapshot': async () => ({ args: ['--snapshot-blob', blob, 'octo-proxy'], env: {} }),
};
const results = Object.fromEntries(Object.keys(kinds).map((k) => [k, { ms: [], cpu: [], mem: undefined, startSkew: NaN }]));
for (let i = 0; i < STARTS; i++)
  for (const [k, how] of Object.entries(kinds)) {
    const { args, env } = await how();
    const p = await startProxy(args, env, upPort);
    results[k].ms.push(p.readyMs);
    results[k].cpu.push(p.readyCpuMs);
    if (i === STARTS - 1) {
      // prom-client computes process_start_time_seconds when its module loads: in a snapshot, at build time.
      const { text } = await get(p.adminPort, '/metrics');
      results[k].startSkew = Date.now() / 1000 - p.readyMs / 1000 - Number(/^process_start_time_seconds (\d+)/m.exec(text)?.[1]);
      results[k].mem = await idleMem(p);
    }
    if (p.stderr().trim()) say(`  (${k} wrote to stderr: ${p.stderr().trim().slice(0, 300)})`);
    await stop(p.proc);
  }
upstream.close();
say(`\n## spawn → /ready 200, CPU until ready (median of ${STARTS}, alternating); memory of the last start once idle (after its idle GC)`);
say(`- bare \`node -e 0\`: ${median(bare).toFixed(0)} ms`);
for (const [k, r] of Object.entries(results))
  say(`- ${k}: ${median(r.ms).toFixed(0)} ms (${r.ms.map((x) => x.toFixed(0)).join(', ')}); CPU ${median(r.cpu).toFixed(0)} ms (${r.cpu.join(', ')}); idle RSS ${MB(r.mem.rss)} MB (anon ${MB(r.mem.anon)}), Pss ${MB(r.mem.pss)}, Uss ${MB(r.mem.uss)}; process_start_time_seconds − spawn ${(-r.startSkew).toFixed(0)} s`);
say(`load average at the end: ${load()}`);
