import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { request, type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Service } from '@octo-mesh/api';
import { createLogger } from '@octo-mesh/runtime';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, startSidecar, stopChild, until } from './test-support/sidecar.js';

// Issue 21: what Pilot configures for a sidecar holding a mesh certificate carries HTTP/2 by ALPN
// and TCP over mTLS. A real pilot (ADS over mTLS), a real OCTO proxy (the built executable, a
// child process) as the caller's sidecar, and callees that are TLS servers with certificates
// from an openssl-made mesh PKI: an HTTP/2-capable one (as a sidecar's inbound: h2 and
// http/1.1), an HTTP/1.1-only one, a TCP echo server, and a TCP server whose certificate names
// another namespace than its service's. The callees see what the caller's sidecar negotiated.
// The callee's side of TCP: a second sidecar whose workload backs a TCP service serves it on its
// inbound port by SNI, to a TLS client with a mesh certificate (the two sidecars cannot be
// chained here: both would bind 127.0.0.1:<the service port>, the caller's TCP listener and the
// callee's application).

const TD = 'spiffe://cluster.local';
const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const WEB = `${TD}/ns/demo/sa/web`;

/** Adds the SDS files a rotator writes beside the PEM files (packages/identity/README.md). */
function withSdsFiles(dir: string): string {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  writeFileSync(
    join(dir, 'default.json'),
    JSON.stringify({ version_info: '1', resources: [{ '@type': SECRET, name: 'default', tls_certificate: { certificate_chain: { inline_string: read('cert-chain.pem') }, private_key: { inline_string: read('key.pem') } } }] }),
  );
  writeFileSync(join(dir, 'ROOTCA.json'), JSON.stringify({ version_info: '1', resources: [{ '@type': SECRET, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: read('root-cert.pem') } } }] }));
  return dir;
}

/** TLS options of a callee holding `dir`'s certificate and requiring a client certificate of the mesh. */
const serverTls = (dir: string) => ({
  cert: readFileSync(join(dir, 'cert-chain.pem')),
  key: readFileSync(join(dir, 'key.pem')),
  ca: readFileSync(join(dir, 'root-cert.pem')),
  requestCert: true,
  rejectUnauthorized: true,
});

const listen = (s: net.Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as net.AddressInfo).port)));

/** A port free on 127.0.0.1 now (the sidecar binds a TCP service's port on its loopback). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const p = await listen(s);
  await new Promise((r) => s.close(r));
  return p;
}

function get(port: number, host: string, path: string): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `send`, half-closes, resolves with all that came back before the close (and the error that ended it, if one did). */
function exchange(port: number, send: string): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(send));
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ data, ...(error ? { error } : {}) }));
  });
}

/** Exchanges once the sidecar has bound `port` (its TCP listener comes with a listener update). */
const exchangeWhenBound = (port: number, send: string) =>
  until(`a listener on 127.0.0.1:${port}`, async () => {
    const r = await exchange(port, send);
    return r.error === 'ECONNREFUSED' ? undefined : r;
  }, 30_000);

/** A TLS callee's view of one connection. */
interface Seen {
  alpn: string | false | null;
  peer: string | undefined;
}

describe('mesh mTLS between sidecars: HTTP/2 by ALPN, HTTP/1.1 fallback, TCP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-mtls-protocols-'));
  const pki = meshTestPki(join(dir, 'pki'));
  const source = new MemoryMeshSource();
  let pilot: RunningPilot;
  let child: ChildProcess | undefined;
  const children: ChildProcess[] = [];
  let outbound = 0;
  let admin = 0;
  const servers: net.Server[] = [];
  const h2Conns: Seen[] = [];
  const h2Versions: string[] = [];
  const h1Conns: Seen[] = [];
  const h1Versions: string[] = [];
  const tcpConns: (Seen & { sni: string | false | null; bytes: string })[] = [];
  const ports = { ledger: 0, vault: 0, store: 0, storeInbound: 0 };
  const storeConns: string[] = [];

  const tcpEcho = (certDir: string) => {
    const s = tls.createServer({ ...serverTls(certDir), allowHalfOpen: true }, (c) => {
      const seen = { alpn: c.alpnProtocol, peer: c.getPeerCertificate().subjectaltname, sni: c.servername, bytes: '' };
      tcpConns.push(seen);
      c.on('data', (d: Buffer) => {
        seen.bytes += d.toString();
        c.write(d);
      });
      c.on('end', () => c.end('|eof'));
      c.on('error', () => undefined);
    });
    s.on('tlsClientError', () => undefined);
    return s;
  };

  beforeAll(async () => {
    buildProxy();
    // catalog: as a sidecar's inbound does, offers h2 and http/1.1.
    const catalog = http2.createSecureServer({ ...serverTls(pki.issue('catalog', `${TD}/ns/demo/sa/catalog`)), allowHTTP1: true }, (req, res) => {
      h2Versions.push(req.httpVersion);
      res.end('catalog');
    });
    catalog.on('secureConnection', (s: tls.TLSSocket) => h2Conns.push({ alpn: s.alpnProtocol, peer: s.getPeerCertificate().subjectaltname }));
    // legacy: HTTP/1.1 only.
    const legacy = https.createServer({ ...serverTls(pki.issue('legacy', `${TD}/ns/demo/sa/legacy`)), ALPNProtocols: ['http/1.1'] }, (req, res) => {
      h1Versions.push(req.httpVersion);
      res.end('legacy');
    });
    legacy.on('secureConnection', (s: tls.TLSSocket) => h1Conns.push({ alpn: s.alpnProtocol, peer: s.getPeerCertificate().subjectaltname }));
    const ledger = tcpEcho(pki.issue('ledger', `${TD}/ns/demo/sa/ledger`));
    // vault is a service of namespace demo, but this server's certificate is another namespace's.
    const vault = tcpEcho(pki.issue('impostor', `${TD}/ns/other/sa/vault`));
    servers.push(catalog, legacy, ledger, vault);
    const [pCatalog, pLegacy, pLedger, pVault] = [await listen(catalog), await listen(legacy), await listen(ledger), await listen(vault)];
    ports.ledger = await freePort();
    ports.vault = await freePort();

    const logger = createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
    pilot = await startPilot(
      pilotConfig.parse({
        xdsPort: 0,
        adminPort: 0,
        xdsHost: '127.0.0.1',
        adminHost: '127.0.0.1',
        debounceQuietMs: 20,
        debounceMaxMs: 100,
        shutdownGraceSeconds: 0.2,
        tlsDir: pki.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`),
        xdsMtls: 'true',
        mtlsMode: 'strict',
        h2Upgrade: 'true',
      }),
      logger,
      source,
    );
    const svc = (name: string, port: number, protocol: 'http' | 'tcp'): Service => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: protocol, port, protocol }] } });
    const at = (port: number) => [{ address: '127.0.0.1', port, labels: {}, healthy: true }];
    source.upsertService(svc('catalog', 8080, 'http'), at(pCatalog));
    source.upsertService(svc('legacy', 8080, 'http'), at(pLegacy));
    source.upsertService(svc('ledger', ports.ledger, 'tcp'), at(pLedger));
    source.upsertService(svc('vault', ports.vault, 'tcp'), at(pVault));

    // store: a plaintext TCP application behind its own sidecar (app_port: the service's port).
    const storeApp = net.createServer({ allowHalfOpen: true }, (c) => {
      const i = storeConns.push('') - 1;
      c.on('data', (d: Buffer) => {
        storeConns[i] += d.toString();
        c.write(d);
      });
      c.on('end', () => c.end('|eof'));
      c.on('error', () => undefined);
    });
    servers.push(storeApp);
    ports.store = await listen(storeApp);
    const store = await startSidecar(pilot.xdsPort, { nodeId: 'store-0', workload: 'store', args: ['--tls-dir', withSdsFiles(pki.issue('store', `${TD}/ns/demo/sa/store`)), '--app-port', String(ports.store)] });
    children.push(store.child);
    ports.storeInbound = Number(store.started.listeners.find((l) => l.name === 'inbound')!.address.split(':').pop());
    source.upsertService(svc('store', ports.store, 'tcp'), [{ address: '127.0.0.1', port: ports.storeInbound, labels: {}, healthy: true, workload: 'demo/store' }]);

    const s = await startSidecar(pilot.xdsPort, { nodeId: 'web-0', workload: 'web', dependencies: 'catalog,legacy,ledger,vault', args: ['--tls-dir', withSdsFiles(pki.issue('web', WEB))] });
    child = s.child;
    admin = s.started.adminPort;
    outbound = Number(s.started.listeners.find((l) => l.name === 'outbound')!.address.split(':').pop());
    await until('catalog reachable through the sidecar', async () => ((await get(outbound, 'catalog', '/warm')).status === 200 ? true : undefined), 30_000);
  }, 90_000);

  afterAll(async () => {
    await stopChild(child);
    for (const c of children) await stopChild(c);
    await pilot?.stop();
    for (const s of servers) s.close();
  });

  const stat = async (name: string, labels: Record<string, string>): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  it('negotiates h2 with an h2-capable callee and carries concurrent requests over one connection', async () => {
    const before = h2Versions.length;
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => get(outbound, 'catalog', `/items/${i}`)));
    expect(rs.map((r) => `${r.status} ${r.body}`)).toEqual(rs.map(() => '200 catalog'));
    expect(h2Versions.slice(before)).toEqual(rs.map(() => '2.0'));
    // One TLS connection from the sidecar ever (the warm-up's), ALPN h2, presenting the caller's SPIFFE ID.
    expect(h2Conns).toEqual([{ alpn: 'h2', peer: `URI:${WEB}` }]);
  });

  it('falls back to HTTP/1.1 with a callee that only speaks HTTP/1.1', async () => {
    for (let i = 0; i < 3; i++) expect(await get(outbound, 'legacy', `/old/${i}`)).toMatchObject({ status: 200, body: 'legacy' });
    expect(h1Versions).toEqual(['1.1', '1.1', '1.1']);
    expect(h1Conns.length).toBeGreaterThanOrEqual(1);
    for (const c of h1Conns) expect(c).toEqual({ alpn: 'http/1.1', peer: `URI:${WEB}` });
  });

  it('carries a TCP service over mTLS: the callee verifies the caller, no ALPN is offered', async () => {
    const n = tcpConns.length;
    expect(await exchangeWhenBound(ports.ledger, 'debit 10')).toEqual({ data: 'debit 10|eof' });
    expect(tcpConns.slice(n)).toEqual([{ alpn: false, peer: `URI:${WEB}`, sni: `outbound_.${ports.ledger}_._.ledger.demo.svc`, bytes: 'debit 10' }]);
  }, 40_000);

  it('refuses a TCP callee whose certificate is not of its service namespace: nothing sent, counted', async () => {
    const cluster = `outbound|${ports.vault}||vault.demo.svc`;
    const before = await stat('octo_proxy_tcp_connect_failures_total', { cluster, reason: 'upstream-tls-fail-verify-san' });
    const n = tcpConns.length;
    const r = await exchangeWhenBound(ports.vault, 'open sesame');
    expect(r.data).toBe('');
    expect(tcpConns.slice(n).map((c) => c.bytes).join('')).toBe('');
    expect(await stat('octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'fail_verify_san' })).toBeGreaterThan(0);
    expect(await stat('octo_proxy_tcp_connect_failures_total', { cluster, reason: 'upstream-tls-fail-verify-san' })).toBeGreaterThan(before);
  }, 40_000);

  it('serves a backed TCP service on the callee sidecar\'s inbound port by SNI, to mesh identities only', async () => {
    const web = pki.issue('web-client', WEB);
    const read = (f: string) => readFileSync(join(web, f));
    const sni = `outbound_.${ports.store}_._.store.demo.svc`;
    const viaTls = (cert: boolean) =>
      new Promise<{ data: string; error?: string }>((resolve) => {
        let data = '';
        let error: string | undefined;
        const s = tls.connect({ port: ports.storeInbound, host: '127.0.0.1', servername: sni, ca: read('root-cert.pem'), ...(cert ? { cert: read('cert-chain.pem'), key: read('key.pem') } : {}), checkServerIdentity: () => undefined }, () => s.end('put k v'));
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
        s.on('close', () => resolve({ data, ...(error ? { error } : {}) }));
      });
    // The store sidecar gets its TCP chain once pilot sees that its workload backs the service.
    expect(await until('the store TCP chain', async () => ((await viaTls(true)).data === 'put k v|eof' ? true : undefined), 30_000)).toBe(true);
    expect(storeConns.at(-1)).toBe('put k v');
    const n = storeConns.length;
    // No client certificate: refused by the inbound's TLS context, nothing reaches the application.
    expect((await viaTls(false)).data).toBe('');
    expect(storeConns.length).toBe(n);
  }, 40_000);
});
