#!/usr/bin/env node
// The demo workload of the cluster end-to-end test, packed into its own image (no deps, one file).
// Every instance answers GET / with who it is. GET /run?target=catalog&n=2000&concurrency=8
// makes n requests to `target` through the sidecar's outbound Unix socket ($OCTO_OUTBOUND_SOCKET,
// set by the injector) and answers with the counts per version and the failures;
// GET /run?…&durationMs=15000&rps=100 keeps a fixed rate for that long instead of n requests.
// With MODE=job it makes REQUESTS requests to TARGET once and exits 0 only if all succeeded.
import { createServer, request } from 'node:http';

const { SERVICE = 'demo', VERSION = 'v0', HOSTNAME = 'unknown', PORT = '8080', OCTO_OUTBOUND_SOCKET: socket, LISTEN_SOCKET } = process.env;

function call(target) {
  return new Promise((resolve) => {
    const started = Date.now();
    const req = request({ socketPath: socket, path: '/', headers: { host: target }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve({ ok: false, error: `HTTP ${res.statusCode} ${body.slice(0, 120)}` });
        try {
          const reply = JSON.parse(body);
          resolve({ ok: true, version: reply.version, via: reply.via, ms: Date.now() - started });
        } catch {
          resolve({ ok: false, error: `not JSON: ${body.slice(0, 120)}` });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ ok: false, error: err.message }));
    req.end();
  });
}

async function run({ target, n, concurrency, durationMs, rps }) {
  const result = { ok: 0, failed: 0, byVersion: {}, byVia: {}, errors: [] };
  const record = (r) => {
    if (r.ok) {
      result.ok++;
      result.byVersion[r.version] = (result.byVersion[r.version] ?? 0) + 1;
      result.byVia[r.via] = (result.byVia[r.via] ?? 0) + 1;
    } else {
      result.failed++;
      if (result.errors.length < 10) result.errors.push(r.error);
    }
  };
  if (durationMs > 0) {
    const pending = [];
    const end = Date.now() + durationMs;
    for (let i = 0; Date.now() < end; i++) {
      pending.push(call(target).then(record));
      const next = i * (1000 / rps);
      await new Promise((r) => setTimeout(r, Math.max(0, next - (Date.now() - (end - durationMs)))));
    }
    await Promise.all(pending);
    return result;
  }
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      record(await call(target));
    }
  }));
  return result;
}

if (process.env.MODE === 'job') {
  const r = await run({ target: process.env.TARGET ?? 'catalog', n: Number(process.env.REQUESTS ?? 10), concurrency: 1, durationMs: 0 });
  console.log(JSON.stringify(r));
  process.exit(r.failed === 0 && r.ok > 0 ? 0 : 1);
}

// Every reply says how it was reached: the TCP port (probes, or a sidecar pointed at the port) or
// the Unix socket LISTEN_SOCKET (a sidecar pointed at it with sidecar.octo.io/app-socket).
const handler = (via) => async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/run') {
    const q = (k, d) => Number(url.searchParams.get(k) ?? d);
    const r = await run({ target: url.searchParams.get('target') ?? 'catalog', n: q('n', 100), concurrency: q('concurrency', 8), durationMs: q('durationMs', 0), rps: q('rps', 50) });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
    return;
  }
  // A health-check path that fails for one version: /unhealthy-if/<version> (the central
  // health checker's step of the cluster e2e).
  if (url.pathname.startsWith('/unhealthy-if/')) {
    const sick = url.pathname.slice('/unhealthy-if/'.length) === VERSION;
    res.writeHead(sick ? 503 : 200, { 'content-type': 'text/plain' }).end(sick ? 'sick\n' : 'ok\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ service: SERVICE, version: VERSION, instance: HOSTNAME, via }));
};
const server = createServer(handler('tcp'));
server.listen(Number(PORT), '0.0.0.0');
const unix = LISTEN_SOCKET ? createServer(handler('unix')) : undefined;
unix?.listen(LISTEN_SOCKET);
process.on('SIGTERM', () => {
  unix?.close();
  server.close(() => process.exit(0));
});
