// Load generator for bench/proxy-tls/run.sh (wrk cannot present a client certificate).
// Usage: node load.mjs <mode> <url> <seconds> [rate|connections]
//   sat        closed loop on N keep-alive connections (default 32): throughput
//   rate       R requests/s on keep-alive connections: latency p50/p99 (µs)
//   handshake  closed loop, one new connection per request (N at a time, default 16): handshakes/s
// TLS client certificate, key and CA from CERT, KEY, CA (file paths) when the URL is https.
// Prints one JSON line: {requests, errors, seconds, rps, p50_us, p99_us}.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';

const [mode, url, secondsArg, nArg] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 10);
const u = new URL(url);
const secure = u.protocol === 'https:';
const lib = secure ? https : http;
const tlsOpts = secure
  ? { ca: readFileSync(process.env.CA), cert: readFileSync(process.env.CERT), key: readFileSync(process.env.KEY), checkServerIdentity: () => undefined }
  : {};
const keepAlive = new lib.Agent({ keepAlive: true, maxSockets: mode === 'rate' ? 64 : Number(nArg ?? 32), ...tlsOpts });
const lat = [];
let requests = 0;
let errors = 0;
const end = Date.now() + seconds * 1000;

function one(agent) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = lib.request({ host: u.hostname, port: u.port, path: u.pathname, agent, headers: { host: 'bench', ...(agent ? {} : { connection: 'close' }) }, ...(agent ? {} : tlsOpts) }, (res) => {
      res.resume();
      res.on('end', () => {
        requests++;
        if (res.statusCode !== 200) errors++;
        lat.push(Number(process.hrtime.bigint() - t0) / 1000);
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end();
  });
}

const started = Date.now();
if (mode === 'rate') {
  const rate = Number(nArg ?? 1000);
  let sent = 0;
  const inflight = new Set();
  await new Promise((resolve) => {
    const t = setInterval(() => {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      while (sent < due && Date.now() < end) {
        sent++;
        const p = one(keepAlive).then(() => inflight.delete(p));
        inflight.add(p);
      }
      if (Date.now() >= end) {
        clearInterval(t);
        resolve();
      }
    }, 1);
  });
  await Promise.all(inflight);
} else {
  const n = Number(nArg ?? (mode === 'handshake' ? 16 : 32));
  const agent = mode === 'handshake' ? false : keepAlive;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (Date.now() < end) await one(agent);
    }),
  );
}
const took = (Date.now() - started) / 1000;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]) : 0);
keepAlive.destroy();
process.stdout.write(`${JSON.stringify({ requests, errors, seconds: took, rps: Math.round(requests / took), p50_us: pct(50), p99_us: pct(99) })}\n`);
