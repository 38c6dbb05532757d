#!/usr/bin/env node
// Issuance rate of one octo-ca process (a real child process, HTTPS on loopback, bootstrap-token
// credential, JSON logs as in production) under N concurrent clients, and in the same run the
// baselines it should be read against: one ECDSA P-256 signature with node:crypto, the CA core
// (`CertificateAuthority.issue`: CSR check + leaf signing, no HTTP) in this process, and openssl
// issuing one leaf per `openssl x509 -req` process.
//   npx tsc -b packages/ca && node bench/ca/issuance.mjs [--clients 1,4,16,64] [--seconds 5] [--new-connections]
// Clients keep their TLS connections alive (what a rotator's renewals cost the CA is the request,
// not a handshake, only at very large fleets); --new-connections makes every request a new
// handshake instead. CSRs are made ahead of time so that the clients' key generation does not
// compete with the CA for the 2 cores more than the requests themselves do.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, createCsr, createRoot } from '../../packages/identity/dist/index.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const clientCounts = String(arg('clients', '1,4,16,64')).split(',').map(Number);
const seconds = Number(arg('seconds', 5));
const newConnections = process.argv.includes('--new-connections');
const dir = mkdtempSync(join(tmpdir(), 'bench-ca-'));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const fmt = (n, d = 1) => n.toFixed(d);

// --- baselines ----------------------------------------------------------------------------
function perSecond(fn, ms = 1500) {
  const end = performance.now() + ms;
  let n = 0;
  const start = performance.now();
  while (performance.now() < end) {
    fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const tbs = createHash('sha256').update('x').digest();
const signRate = perSecond(() => sign('sha256', tbs, privateKey));
const root = createRoot({ trustDomain: 'cluster.local', now: new Date() });
const core = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [{ name: 'r', ...root }], signing: 'r', defaultTtlSeconds: 3600, maxTtlSeconds: 3600 });
const csrs = Array.from({ length: 256 }, () => createCsr(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey));
let k = 0;
const coreRate = perSecond(() => core.issue(csrs[k++ % csrs.length], { namespace: 'bench', serviceAccount: 'w' }, 3600, new Date()));
writeFileSync(join(dir, 'root.pem'), root.certPem);
writeFileSync(join(dir, 'root.key'), root.keyPem);
writeFileSync(join(dir, 'leaf.csr'), csrs[0]);
const opensslN = 20;
const t0 = performance.now();
for (let i = 0; i < opensslN; i++) {
  execFileSync('openssl', ['x509', '-req', '-in', 'leaf.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', String(1000 + i), '-days', '1', '-sha256', '-out', 'leaf.pem'], { cwd: dir, stdio: 'ignore' });
}
const opensslRate = opensslN / ((performance.now() - t0) / 1000);

// --- the CA process -------------------------------------------------------------------------
const token = 'bench-token';
writeFileSync(join(dir, 'creds.json'), JSON.stringify({ tokens: [{ sha256: createHash('sha256').update(token).digest('hex'), namespace: 'bench', serviceAccount: 'w' }] }));
const child = spawn(process.execPath, ['packages/ca/dist/main.js', '--credentials', join(dir, 'creds.json'), '--state-dir', join(dir, 'state'), '--host', '127.0.0.1', '--port', '0', '--admin-host', '127.0.0.1', '--admin-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
    const m = /"message":"listening"[^\n]*"port":(\d+)|"port":(\d+)[^\n]*"message":"listening"/.exec(out);
    if (m) resolve(Number(m[1] ?? m[2]));
  });
  child.once('exit', (code) => reject(new Error(`octo-ca exited ${code}: ${out}`)));
});
child.stdout.resume();
const trust = readFileSync(join(dir, 'state/roots/generated/cert.pem'), 'utf8');

function issueOnce(agent, csr) {
  const body = JSON.stringify({ csr, ttlSeconds: 3600 });
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/certificates', ca: trust, servername: 'localhost', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function run(clients) {
  const agent = newConnections ? false : new Agent({ keepAlive: true, maxSockets: clients });
  const lat = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let i = c;
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await issueOnce(agent, csrs[i++ % csrs.length]);
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  if (agent) agent.destroy();
  lat.sort((a, b) => a - b);
  return { clients, rate: lat.length / elapsed, p50: pct(lat, 50), p99: pct(lat, 99), n: lat.length, errors };
}

try {
  await run(4); // warm-up (JIT, TLS session set-up)
  const rows = [];
  for (const c of clientCounts) rows.push(await run(c));
  console.log(`octo-ca issuance, ${cpus().length} cores, ${seconds} s per row, ${newConnections ? 'a new TLS connection per request' : 'keep-alive connections'}, node ${process.version}`);
  console.log('clients  certs/s   p50 ms   p99 ms   issued  errors');
  for (const r of rows) console.log(`${String(r.clients).padStart(7)}  ${fmt(r.rate).padStart(7)}  ${fmt(r.p50, 2).padStart(7)}  ${fmt(r.p99, 2).padStart(7)}  ${String(r.n).padStart(7)}  ${String(r.errors).padStart(6)}`);
  console.log('baselines (this process, one core):');
  console.log(`  ECDSA P-256 sign (node:crypto)          ${fmt(signRate, 0)} /s`);
  console.log(`  CertificateAuthority.issue (no HTTP)    ${fmt(coreRate, 0)} /s`);
  console.log(`  openssl x509 -req, one process per leaf ${fmt(opensslRate, 1)} /s`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
