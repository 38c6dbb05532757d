/**
 * The agent's workload certificate from a real mesh CA (issue 21): a real octo-ca in this
 * process (HTTPS, bootstrap credentials file), the built agent as a child process running a real
 * proxy child. The agent obtains the token's identity before the proxy starts, publishes the
 * files the identity contract names, renews in the background without touching the proxy, and is
 * not ready — saying why, counting it — while it has no valid certificate (wrong token, a CA
 * that is down until the certificate expires); it recovers by itself.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { startCa, type RunningCa } from '@octo-mesh/ca/server.js';
import { tokenHash } from '@octo-mesh/identity';
import { createLogger, freePort, waitFor } from '@octo-mesh/runtime';
import { AGENT_MAIN, alive, buildAgent, get1, proxySection, startAgent, upstreams, type RunningAgent, type Upstreams } from './test-support/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'octo-lego-identity-'));
const quiet = createLogger('ca', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const SPIFFE = 'spiffe://cluster.local/ns/shop/sa/cart';
const cleanups: (() => Promise<void>)[] = [];
let up: Upstreams;

beforeAll(async () => {
  buildAgent();
  writeFileSync(join(dir, 'credentials.json'), JSON.stringify({ tokens: [{ sha256: tokenHash('token-cart'), namespace: 'shop', serviceAccount: 'cart' }] }));
  up = await upstreams();
}, 180_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A CA on 127.0.0.1 whose root lives in `<dir>/ca-state` (a restart keeps it). */
async function startTestCa(port = 0): Promise<RunningCa> {
  const ca = await startCa({ host: '127.0.0.1', port, adminHost: '127.0.0.1', adminPort: 0, stateDir: join(dir, 'ca-state'), credentials: join(dir, 'credentials.json'), maxTtlSeconds: 3600, defaultTtlSeconds: 600 }, { logger: quiet });
  let stopped = false;
  const stop = ca.stop.bind(ca);
  ca.stop = async () => {
    if (stopped) return;
    stopped = true;
    await stop();
  };
  cleanups.push(() => ca.stop());
  return ca;
}

/** Writes a file as a kubelet rewrites a projected token: a new file renamed over the old. */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.new`, content);
  renameSync(`${path}.new`, path);
}

/** The agent's settings for `ca`: trust bundle and token files written under `name`. */
function caConfig(ca: RunningCa, name: string, token: string): Record<string, unknown> {
  writeFileSync(join(dir, `${name}-ca.pem`), ca.trustBundle().join(''));
  replaceFile(join(dir, `${name}-token`), `${token}\n`);
  return { caUrl: ca.url, caTrustBundleFile: join(dir, `${name}-ca.pem`), caTokenFile: join(dir, `${name}-token`), proxy: proxySection(up.h1Port, up.h2Port) };
}

async function launch(name: string, config: Record<string, unknown>): Promise<RunningAgent> {
  const agent = await startAgent(dir, name, config);
  cleanups.push(() => agent.stop());
  return agent;
}

/** Sum of a metric's samples whose labels include `labels`, from the agent's /metrics. */
async function metric(agent: RunningAgent, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await agent.get('/metrics')).body;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const certDirOf = (name: string) => join(dir, `${name}-state`, 'certs');

describe('the agent obtains and rotates its workload certificate', () => {
  it('gets the token\'s identity before the proxy starts, publishes the contract\'s files, renews in the background with the proxy untouched', async () => {
    const ca = await startTestCa();
    const agent = await launch('rotate', { ...caConfig(ca, 'rotate', 'token-cart'), certTtlSeconds: 20 });
    const certs = certDirOf('rotate');

    // started = the proxy child runs: the certificate was there first.
    const first = (await agent.status()).identity!;
    expect(first).toMatchObject({ spiffeId: SPIFFE, ready: true, lastError: null });
    const leaf = new X509Certificate(readFileSync(join(certs, 'cert-chain.pem')));
    expect(leaf.subjectAltName).toBe(`URI:${SPIFFE}`);
    expect(leaf.serialNumber).toBe(first.serialNumber);
    expect(new Date(leaf.validTo).getTime()).toBe(Date.parse(first.expiresAt!));
    expect(leaf.checkPrivateKey(createPrivateKey(readFileSync(join(certs, 'key.pem'))))).toBe(true);
    expect(execFileSync('/usr/bin/openssl', ['verify', '-CAfile', 'root-cert.pem', 'cert-chain.pem'], { cwd: certs, encoding: 'utf8' })).toBe('cert-chain.pem: OK\n');
    expect(statSync(certs).mode & 0o777).toBe(0o700);
    expect(statSync(join(certs, 'key.pem')).mode & 0o777).toBe(0o600);
    // The SDS files as the identity contract states them.
    const sds = JSON.parse(readFileSync(join(certs, 'default.json'), 'utf8'));
    expect(sds.resources).toHaveLength(1);
    expect(sds.resources[0]['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    expect(sds.resources[0].name).toBe('default');
    expect(sds.resources[0].tls_certificate.certificate_chain.inline_string).toBe(readFileSync(join(certs, 'cert-chain.pem'), 'utf8'));
    expect(sds.resources[0].tls_certificate.private_key.inline_string).toBe(readFileSync(join(certs, 'key.pem'), 'utf8'));
    const roots = JSON.parse(readFileSync(join(certs, 'ROOTCA.json'), 'utf8'));
    expect(roots.resources[0].name).toBe('ROOTCA');
    expect(roots.resources[0].validation_context.trusted_ca.inline_string).toBe(ca.trustBundle().join(''));
    // Renewal planned at 50–70 % of the lifetime (issued = notBefore + the CA's 60 s backdating; whole seconds).
    const issued = Date.parse(leaf.validFrom) + 60_000;
    expect(Date.parse(first.expiresAt!) - issued).toBe(20_000);
    expect(Date.parse(first.renewAt!) - issued).toBeGreaterThanOrEqual(10_000 - 1000);
    expect(Date.parse(first.renewAt!) - issued).toBeLessThanOrEqual(14_000 + 2000);

    await agent.waitStatus('proxy ready', (s) => s.ready);
    expect(await agent.get('/readyz')).toEqual({ status: 200, body: 'ok\n' });
    // The proxy child was told where the files are (it watches them itself).
    const argv = readFileSync(`/proc/${(await agent.proxy()).pid}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('--tls-dir') + 1]).toBe(certs);
    expect(await metric(agent, 'octo_identity_rotations_total', { result: 'ok', via: 'credential' })).toBe(1);
    expect(await metric(agent, 'octo_lego_identity_ready')).toBe(1);
    expect(await metric(agent, 'octo_identity_certificate_expiry_seconds', { spiffe_id: SPIFFE })).toBe(Math.floor(Date.parse(first.expiresAt!) / 1000));

    // Through the renewal: requests through the proxy, and readers of the SDS file, never fail.
    const { pid } = await agent.proxy();
    const inodes = Object.fromEntries(['cert-chain.pem', 'key.pem', 'default.json', 'ROOTCA.json'].map((f) => [f, statSync(join(certs, f)).ino]));
    let done = false;
    const reads = { ok: 0, failed: [] as string[] };
    const reader = (async () => {
      while (!done) {
        try {
          const d = JSON.parse(await readFile(join(certs, 'default.json'), 'utf8'));
          new X509Certificate(d.resources[0].tls_certificate.certificate_chain.inline_string);
          createPrivateKey(d.resources[0].tls_certificate.private_key.inline_string);
          reads.ok++;
        } catch (err) {
          reads.failed.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const requests = { ok: 0, failed: [] as string[] };
    const load = (async () => {
      while (!done) {
        try {
          const r = await get1(agent.outboundPort, '/during-renewal');
          if (r.status === 200) requests.ok++;
          else requests.failed.push(`status ${r.status}`);
        } catch (err) {
          requests.failed.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const renewed = await agent.waitStatus('a renewed certificate', (s) => !!s.identity?.serialNumber && s.identity.serialNumber !== first.serialNumber, 45_000);
    // A moment of traffic on the new files too.
    await waitFor('requests after the renewal', () => requests.ok, (n) => n >= 5, { timeoutMs: 10_000, intervalMs: 20 });
    const before = requests.ok;
    await waitFor('more requests after the renewal', () => requests.ok, (n) => n >= before + 5, { timeoutMs: 10_000, intervalMs: 20 });
    done = true;
    await Promise.all([reader, load]);

    expect(renewed.identity).toMatchObject({ spiffeId: SPIFFE, ready: true, lastError: null });
    expect(Date.parse(renewed.identity!.expiresAt!)).toBeGreaterThan(Date.parse(first.expiresAt!));
    expect((await agent.proxy()).pid).toBe(pid);
    expect(alive(pid!)).toBe(true);
    expect(reads.failed).toEqual([]);
    expect(reads.ok).toBeGreaterThan(0);
    expect(requests.failed).toEqual([]);
    // Replaced by rename (a new file each), no temporary file left behind.
    for (const [f, ino] of Object.entries(inodes)) expect(statSync(join(certs, f)).ino).not.toBe(ino);
    expect(readdirSync(certs).sort()).toEqual(['ROOTCA.json', 'cert-chain.pem', 'default.json', 'key.pem', 'root-cert.pem']);
    const next = new X509Certificate(readFileSync(join(certs, 'cert-chain.pem')));
    expect(next.serialNumber).toBe(renewed.identity!.serialNumber);
    expect(next.subjectAltName).toBe(`URI:${SPIFFE}`);
    expect(execFileSync('/usr/bin/openssl', ['verify', '-CAfile', 'root-cert.pem', 'cert-chain.pem'], { cwd: certs, encoding: 'utf8' })).toBe('cert-chain.pem: OK\n');
    expect(await metric(agent, 'octo_identity_rotations_total', { result: 'ok', via: 'renewal' })).toBe(1);
    expect(await agent.get('/readyz')).toEqual({ status: 200, body: 'ok\n' });
  }, 120_000);

  it('without a valid certificate (wrong token, CA down past expiry) it serves plaintext but is not ready, says why and counts it; it recovers by itself', async () => {
    const port = await freePort();
    let ca = await startTestCa(port);
    const cfg = caConfig(ca, 'refused', 'not-a-token');
    const agent = await launch('refused', { ...cfg, certTtlSeconds: 12, certWaitMs: 1500, caRetryMaxMs: 1000 });
    const certs = certDirOf('refused');

    // The proxy was started after certWaitMs anyway: plaintext service goes on.
    await agent.waitStatus('proxy ready', (s) => s.ready);
    expect((await get1(agent.outboundPort, '/plain')).body).toBe('ok /plain');
    const readyz = await agent.get('/readyz');
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(new RegExp(`^not ready\\nidentity: no certificate yet from https://127\\.0\\.0\\.1:${port}; last attempt \\(.+\\) failed: .*401 .*not a known bootstrap token\\n$`));
    const s = (await agent.status()).identity!;
    expect(s).toMatchObject({ spiffeId: null, ready: false });
    expect(s.lastError!.message).toContain('401');
    expect(await metric(agent, 'octo_identity_rotations_total', { result: 'refused', via: 'credential' })).toBeGreaterThanOrEqual(1);
    expect(await metric(agent, 'octo_errors_total', { where: 'identity rotation' })).toBeGreaterThanOrEqual(1);
    expect(await metric(agent, 'octo_lego_identity_ready')).toBe(0);
    expect(existsSync(join(certs, 'cert-chain.pem'))).toBe(false);

    // The token file is read at each attempt: the right token, and the agent becomes ready.
    replaceFile(cfg['caTokenFile'] as string, 'token-cart\n');
    await waitFor('ready with a certificate', () => agent.get('/readyz'), (r) => r.status === 200, { timeoutMs: 20_000, intervalMs: 50, retryErrors: true });
    const got = (await agent.status()).identity!;
    expect(got).toMatchObject({ spiffeId: SPIFFE, ready: true, lastError: null });
    const { pid } = await agent.proxy();

    // The CA goes away: the certificate serves until it expires, then the agent is not ready.
    await ca.stop();
    const expiresAt = Date.parse(got.expiresAt!);
    const unready = await waitFor('not ready after the certificate expired', () => agent.get('/readyz'), (r) => r.status === 503, { timeoutMs: expiresAt - Date.now() + 20_000, intervalMs: 50, retryErrors: true });
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(unready.body).toContain(`identity: certificate ${got.serialNumber} of ${SPIFFE} expired at ${new Date(expiresAt).toISOString()}; last attempt`);
    expect(unready.body).toContain('ECONNREFUSED');
    expect((await agent.status()).identity!.ready).toBe(false);
    expect(await metric(agent, 'octo_identity_rotations_total', { result: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(await metric(agent, 'octo_lego_identity_ready')).toBe(0);
    expect((await get1(agent.outboundPort, '/still-serving')).body).toBe('ok /still-serving');

    // The CA comes back on its address (same root): a new certificate within the retry cap, no restart.
    ca = await startTestCa(port);
    await waitFor('ready again', () => agent.get('/readyz'), (r) => r.status === 200, { timeoutMs: 20_000, intervalMs: 50, retryErrors: true });
    const back = (await agent.status()).identity!;
    expect(back).toMatchObject({ spiffeId: SPIFFE, ready: true, lastError: null });
    expect(back.serialNumber).not.toBe(got.serialNumber);
    expect(new X509Certificate(readFileSync(join(certs, 'cert-chain.pem'))).serialNumber).toBe(back.serialNumber);
    expect((await agent.proxy()).pid).toBe(pid);
  }, 120_000);

  it('waits for the first certificate with no proxy started, says so in /readyz, and exits 0 on SIGTERM meanwhile', async () => {
    const ca = await startTestCa();
    const cfg = caConfig(ca, 'waiting', 'token-cart');
    await ca.stop(); // nothing answers there now
    const adminPort = await freePort();
    const file = join(dir, 'waiting.yaml');
    writeFileSync(file, stringify({ ...cfg, adminPort, outboundPort: 0, inboundPort: 0, inboundHost: '127.0.0.1', stateDir: join(dir, 'waiting-state'), logLevel: 'warn', certWaitMs: 60_000, caRetryMaxMs: 1000 }));
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${adminPort}${path}`);
      return { status: r.status, body: await r.text() };
    };
    const readyz = await waitFor('readyz naming the CA', () => get('/readyz'), (r) => r.body.includes('ECONNREFUSED'), { timeoutMs: 20_000, intervalMs: 50, retryErrors: true, detail: () => stderr });
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatch(new RegExp(`^not ready\nproxy: not started\nidentity: no certificate yet from ${ca.url.replaceAll('.', '\\.')}; last attempt .* failed: .*ECONNREFUSED[^\n]*\n$`));
    expect(JSON.parse((await get('/proxy')).body).pid).toBeNull();
    const began = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(stderr).toBe('');
  }, 60_000);
});
