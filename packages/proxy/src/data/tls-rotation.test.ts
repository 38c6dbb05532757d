import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import tls from 'node:tls';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@octo-mesh/runtime';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { TestPki, certificateSds, inboundListener, rootSds, sdsTlsContext, upstreamTransport, writeAtomic, type KeyPair } from '../test-support/pki.js';
import type { Proxy } from '../proxy.js';
import type { AccessLogEntry } from './http-proxy.js';

// Certificate rotation under load: ~1,000 requests/s of HTTP/1.1 through proxy A (outbound,
// UpstreamTlsContext) → proxy B (inbound, STRICT mTLS) → app, while both proxies' SDS files are
// replaced (atomic rename, as the CertificateRotator writes them) several times. No request may
// fail, and connections made after a rotation must carry the new certificates.
const ID_A = 'spiffe://cluster.local/ns/default/sa/a';
const ID_B = 'spiffe://cluster.local/ns/default/sa/b';
const RATE = 1000;
const ROTATIONS = 4;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The serial of the certificate B presents to a new connection. */
function serverSerial(port: number, ca: string, client: KeyPair): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, cert: client.cert, key: client.key, checkServerIdentity: () => undefined }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('certificate rotation under load', () => {
  const pki = new TestPki();
  const dirA = mkdtempSync(join(tmpdir(), 'octo-rot-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'octo-rot-b-'));
  let root: KeyPair;
  let certsA: KeyPair[];
  let certsB: KeyPair[];
  let app: Upstream;
  let a: Proxy & { port: number };
  let b: Proxy & { port: number };
  let inboundPort: number;
  const logB: AccessLogEntry[] = [];

  beforeAll(async () => {
    root = pki.root('mesh-root');
    // Made before the run, so openssl does not compete with the load for the CPU.
    certsA = Array.from({ length: ROTATIONS + 1 }, () => pki.leaf(root, ID_A));
    certsB = Array.from({ length: ROTATIONS + 1 }, () => pki.leaf(root, ID_B));
    for (const [dir, first] of [[dirA, certsA[0]!], [dirB, certsB[0]!]] as const) {
      writeAtomic(join(dir, 'default.json'), certificateSds(first));
      writeAtomic(join(dir, 'ROOTCA.json'), rootSds([root]));
    }
    app = await httpUpstream('app');
    b = await startProxy(
      {
        listeners: [inboundListener('inbound', httpListener('inbound', { route_config: routeConfig('in', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) }), sdsTlsContext(dirB), 'STRICT')],
        clusters: [staticCluster('app', [app.port])],
      },
      { sockets: [{ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }], accessLog: (e) => logB.push(e), registry: new Registry() },
    );
    const x = b.addresses.get('inbound');
    inboundPort = x?.kind === 'tcp' ? x.port : 0;
    a = await startProxy(
      {
        listeners: [httpListener('outbound', { route_config: routeConfig('out', [{ match: { prefix: '/' }, route: { cluster: 'b' } }]) })],
        // A new upstream TLS connection every 50 requests, so handshakes keep happening across the rotations.
        clusters: [staticCluster('b', [inboundPort], { ...upstreamTransport(sdsTlsContext(dirA, ['http/1.1'], { exact: ID_B })), max_requests_per_connection: 50 })],
      },
      { registry: new Registry() },
    );
    await waitFor('both proxies ready', () => a.ready() === true && b.ready() === true);
  }, 60_000);

  afterAll(async () => {
    await a?.stop(100);
    await b?.stop(100);
    await app?.close();
  });

  it(`fails no request at ~${RATE} rps while both proxies' certificates rotate ${ROTATIONS} times, and new connections use the new certificates`, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const failures: string[] = [];
    let sent = 0;
    let done = 0;
    let stop = false;
    const fire = () => {
      sent++;
      const req = http.request({ host: '127.0.0.1', port: a.port, path: `/r${sent}`, agent, headers: { host: 'svc' } }, (res) => {
        res.resume();
        res.on('end', () => {
          done++;
          if (res.statusCode !== 200) failures.push(`status ${res.statusCode} ${String(res.headers['x-octo-reason'] ?? '')}`);
        });
      });
      req.on('error', (err) => {
        done++;
        failures.push(err.message);
      });
      req.end();
    };
    // Paced: every 10 ms, as many requests as keep the rate at RATE since the start.
    const start = Date.now();
    const pacer = setInterval(() => {
      if (stop) return;
      const due = Math.floor(((Date.now() - start) / 1000) * RATE);
      while (sent < due && sent - done < 256) fire();
    }, 10);
    try {
      for (let i = 1; i <= ROTATIONS; i++) {
        await new Promise((r) => setTimeout(r, 700));
        const nextA = certsA[i]!;
        const nextB = certsB[i]!;
        const rotatedAt = logB.length;
        writeAtomic(join(dirA, 'default.json'), certificateSds(nextA));
        writeAtomic(join(dirB, 'default.json'), certificateSds(nextB));
        await waitFor(`rotation ${i} read by both proxies`, () =>
          a.secrets.status().some((s) => s.version === nextA.serial) && b.secrets.status().some((s) => s.version === nextB.serial),
        );
        // B presents its new certificate to a new connection ...
        expect(await serverSerial(inboundPort, root.cert, certsA[0]!)).toBe(nextB.serial);
        // ... and A's new connections to B (one every 50 requests) present A's new one.
        await waitFor(`B to see A's certificate ${i}`, () => logB.slice(rotatedAt).some((e) => e.downstream_peer?.serial === nextA.serial));
        expect(logB.slice(rotatedAt).every((e) => e.downstream_peer?.principal === ID_A)).toBe(true);
      }
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      stop = true;
      clearInterval(pacer);
    }
    await waitFor('the last responses', () => done === sent, 30_000);
    agent.destroy();
    const seconds = (Date.now() - start) / 1000;
    // A figure for the report: the rate the run reached on this machine.
    process.stdout.write(`tls-rotation: ${sent} requests in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)} rps), ${ROTATIONS} rotations, ${failures.length} failed\n`);
    expect(failures).toEqual([]);
    // Load was really there through the rotations (the pacer asks for RATE; a busy 2-core machine may give less).
    expect(sent).toBeGreaterThan(1000);
    // Every B-side entry of the run came over a verified connection from A's identity.
    expect(new Set(logB.map((e) => e.downstream_peer?.serial)).size).toBeGreaterThanOrEqual(ROTATIONS + 1);
  }, 120_000);
});

