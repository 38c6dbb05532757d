import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@octo-mesh/runtime';
import { httpListener, routeConfig, staticCluster, tcpListener } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { TestPki, certificateSds, inboundListener, rootSds, sdsTlsContext, upstreamTransport, writeAtomic, type KeyPair } from '../test-support/pki.js';
import type { Proxy } from '../proxy.js';
import type { AccessLogEntry } from './http-proxy.js';

// mTLS between two real proxies over real sockets: A (outbound, UpstreamTlsContext) → B (inbound,
// tls_inspector + DownstreamTlsContext, STRICT and PERMISSIVE listeners) → app. Certificates from
// the openssl CLI, read by SDS from files in the contract's format (packages/identity/README.md).
const TD = 'spiffe://cluster.local/ns/default/sa';
const ID_A = `${TD}/a`;
const ID_B = `${TD}/b`;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One HTTPS request with a client certificate; resolves with the status, or the error that ended it. */
function tlsGet(port: number, ca: string, client: KeyPair | undefined, path = '/'): Promise<{ status?: number; error?: string; serverSerial?: string }> {
  return new Promise((resolve) => {
    let serverSerial: string | undefined;
    const req = https.request(
      { host: '127.0.0.1', port, path, ca, ...(client ? { cert: client.cert, key: client.key } : {}), agent: false, checkServerIdentity: () => undefined },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(serverSerial ? { serverSerial } : {}) }));
      },
    );
    req.on('socket', (s) => s.once('secureConnect', () => (serverSerial = (s as tls.TLSSocket).getPeerCertificate().serialNumber)));
    req.on('error', (err) => resolve({ error: err.message }));
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function counter(p: Proxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await p.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as { labels: Record<string, string>; value: number }[] | undefined)?.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('TLS and mTLS through standard xDS', () => {
  const pki = new TestPki();
  let rootA: KeyPair;
  let rootB: KeyPair;
  let certA: KeyPair;
  let certB: KeyPair;
  const dirA = mkdtempSync(join(tmpdir(), 'octo-sds-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'octo-sds-b-'));
  let app: Upstream;
  let a: Proxy & { port: number };
  let b: Proxy & { port: number };
  let strictPort: number;
  let permissivePort: number;
  const logB: AccessLogEntry[] = [];

  beforeAll(async () => {
    rootA = pki.root('mesh-root');
    rootB = pki.root('other-root');
    certA = pki.leaf(rootA, ID_A);
    certB = pki.leaf(rootA, ID_B);
    writeAtomic(join(dirA, 'default.json'), certificateSds(certA));
    writeAtomic(join(dirA, 'ROOTCA.json'), rootSds([rootA]));
    writeAtomic(join(dirB, 'default.json'), certificateSds(certB));
    writeAtomic(join(dirB, 'ROOTCA.json'), rootSds([rootA]));
    app = await httpUpstream('app');
    const plain = (name: string) => httpListener(name, { route_config: routeConfig(`${name}-routes`, [{ name: 'all', match: { prefix: '/' }, route: { cluster: 'app' } }]) });
    const tcp = (port: number) => ({ kind: 'bind' as const, address: { kind: 'tcp' as const, host: '127.0.0.1', port } });
    b = await startProxy(
      {
        listeners: [inboundListener('inbound', plain('inbound'), sdsTlsContext(dirB), 'STRICT'), inboundListener('permissive', plain('permissive'), sdsTlsContext(dirB), 'PERMISSIVE')],
        clusters: [staticCluster('app', [app.port])],
      },
      { sockets: [{ name: 'inbound', spec: tcp(0) }, { name: 'permissive', spec: tcp(0) }], accessLog: (e) => logB.push(e), registry: new Registry() },
    );
    const addr = (n: string) => {
      const x = b.addresses.get(n);
      return x?.kind === 'tcp' ? x.port : 0;
    };
    strictPort = addr('inbound');
    permissivePort = addr('permissive');
    const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    a = await startProxy({
      listeners: [
        httpListener('outbound', {
          route_config: routeConfig('out', [
            { name: 'h2', match: { prefix: '/h2/' }, route: { cluster: 'b-h2' } },
            { name: 'auto', match: { prefix: '/auto/' }, route: { cluster: 'b-auto' } },
            { name: 'wrong-san', match: { prefix: '/wrong-san/' }, route: { cluster: 'b-wrong-san' } },
            { name: 'b', match: { prefix: '/' }, route: { cluster: 'b' } },
          ]),
        }),
        tcpListener('tcp-to-tls', 'b'),
      ],
      clusters: [
        staticCluster('b', [strictPort], upstreamTransport(sdsTlsContext(dirA, ['h2', 'http/1.1'], { exact: ID_B }))),
        staticCluster('b-wrong-san', [strictPort], upstreamTransport(sdsTlsContext(dirA, ['h2', 'http/1.1'], { exact: `${TD}/someone-else` }))),
        // What Pilot serves for an HTTP port between sidecars: ALPN decides (translate/mtls.ts).
        staticCluster('b-auto', [strictPort], {
          ...upstreamTransport(sdsTlsContext(dirA, ['h2', 'http/1.1'], { prefix: 'spiffe://cluster.local/' })),
          typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, auto_config: { http_protocol_options: {}, http2_protocol_options: {} } } },
        }),
        staticCluster('b-h2', [strictPort], {
          ...upstreamTransport(sdsTlsContext(dirA, ['h2', 'http/1.1'], { prefix: 'spiffe://cluster.local/' })),
          typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicit_http_config: { http2_protocol_options: {} } } },
        }),
      ],
    }, { registry: new Registry() });
    await waitFor('both proxies ready', () => a.ready() === true && b.ready() === true);
  }, 60_000);

  afterAll(async () => {
    await a?.stop(100);
    await b?.stop(100);
    await app?.close();
  });

  it('carries HTTP/1.1 over mTLS when both identities verify, and the inbound side knows the caller by its SPIFFE ID', async () => {
    const before = logB.length;
    const r = await request(a.port, { path: '/hello' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('app');
    const e = logB.slice(before).find((x) => x.path === '/hello');
    expect(e?.protocol).toBe('HTTP/1.1');
    // peerPrincipal (data/peer.ts) of the verified client certificate, and its serial.
    expect(e?.downstream_peer).toEqual({ principal: ID_A, serial: certA.serial });
  });

  it('carries HTTP/2 over TLS when the cluster speaks HTTP/2 (ALPN h2)', async () => {
    const before = logB.length;
    const r = await request(a.port, { path: '/h2/x' });
    expect(r.status).toBe(200);
    expect(logB.slice(before).find((x) => x.path === '/h2/x')?.protocol).toBe('HTTP/2');
  });

  it('auto_config between two proxies: ALPN picks h2 with the inbound, and concurrent requests share one connection', async () => {
    const before = logB.length;
    const handshakes = await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result: 'success' });
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => request(a.port, { path: `/auto/${i}` })));
    expect(rs.map((r) => r.status)).toEqual(rs.map(() => 200));
    const seen = logB.slice(before).filter((x) => x.path.startsWith('/auto/'));
    expect(seen).toHaveLength(50);
    expect(new Set(seen.map((x) => x.protocol))).toEqual(new Set(['HTTP/2']));
    // One TLS connection from A to B carried all 50 (the negotiating one became the HTTP/2 session).
    expect(await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result: 'success' })).toBe(handshakes + 1);
  });

  it('answers HTTP/2 chosen by ALPN from a direct TLS client', async () => {
    const session = http2.connect(`https://127.0.0.1:${strictPort}`, { ca: rootA.cert, cert: certA.cert, key: certA.key, checkServerIdentity: () => undefined });
    try {
      const alpn = await new Promise<string | false | null | undefined>((resolve, reject) => {
        session.once('connect', () => resolve((session.socket as tls.TLSSocket).alpnProtocol));
        session.once('error', reject);
      });
      expect(alpn).toBe('h2');
      const status = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/direct-h2' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
        s.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('fails the upstream connection with 503 and its reason when the peer SAN matches no matcher', async () => {
    const before = await counter(a, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'fail_verify_san' });
    const r = await request(a.port, { path: '/wrong-san/x' });
    expect(r.status).toBe(503);
    expect(r.headers['x-octo-reason']).toBe('upstream-tls-fail-verify-san');
    expect(await counter(a, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'fail_verify_san' })).toBeGreaterThan(before);
  });

  it('closes a plaintext connection to a STRICT listener (no filter chain matches it) and counts it', async () => {
    const before = await counter(b, 'octo_proxy_no_filter_chain_total', { listener: 'inbound', transport: 'raw_buffer' });
    const got = await new Promise<string>((resolve) => {
      const s = net.connect(strictPort, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve(data));
    });
    expect(got).toBe('');
    expect(await counter(b, 'octo_proxy_no_filter_chain_total', { listener: 'inbound', transport: 'raw_buffer' })).toBe(before + 1);
  });

  it('TCP-proxies over mTLS to a STRICT inbound (the bytes arrive only through the TLS chain)', async () => {
    const port = Number(a.listening().find((l) => l.name === 'tcp-to-tls')?.address.split(':').pop());
    const before = await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result: 'success' });
    const got = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /over-tcp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve(data));
    });
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got).toContain('\r\n\r\n3\r\napp\r\n0\r\n\r\n');
    expect(await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result: 'success' })).toBe(before + 1);
  });

  it('PERMISSIVE accepts plaintext and mTLS on one port', async () => {
    expect((await request(permissivePort, { path: '/plain' })).status).toBe(200);
    expect((await tlsGet(permissivePort, rootA.cert, certA, '/tls')).status).toBe(200);
  });

  it.each<[string, () => KeyPair | undefined, string]>([
    // columns: what, the client certificate presented, the refusal counted
    ['an expired client certificate', () => pki.leaf(rootA, ID_A, -1), 'fail_verify_error'],
    ['a client certificate signed by another root', () => pki.leaf(rootB, ID_A), 'fail_verify_error'],
    ['no client certificate', () => undefined, 'fail_verify_no_cert'],
  ])('refuses %s', async (_what, make, result) => {
    const before = await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result });
    const hits = app.hits;
    const r = await tlsGet(strictPort, rootA.cert, make());
    expect(r.status).toBeUndefined();
    expect(r.error).toBeDefined();
    expect(app.hits).toBe(hits);
    expect(await counter(b, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result })).toBe(before + 1);
  });

  it('keeps the last good secret when an SDS file turns bad, and takes the next good one for new connections', async () => {
    const file = join(dirB, 'default.json');
    const rejected = await counter(b, 'octo_proxy_sds_updates_total', { result: 'rejected' });
    writeAtomic(file, '{"resources": [{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "default", "tls_certificate": {"certificate_chain": {"inline_string": "not a pem"}, "private_key": {"inline_string": "nope"}}}]}');
    await waitFor('the bad file to be rejected', async () => (await counter(b, 'octo_proxy_sds_updates_total', { result: 'rejected' })) > rejected);
    const status = b.secrets.status().find((s) => s.path === file);
    expect(status?.error).toMatch(/secret "default"/);
    expect(status?.version).toBe(certB.serial);
    const still = await tlsGet(strictPort, rootA.cert, certA);
    expect(still).toEqual({ status: 200, serverSerial: certB.serial });
    const next = pki.leaf(rootA, ID_B);
    writeAtomic(file, certificateSds(next));
    await waitFor('the new certificate', () => b.secrets.status().find((s) => s.path === file)?.version === next.serial);
    expect(await tlsGet(strictPort, rootA.cert, certA)).toEqual({ status: 200, serverSerial: next.serial });
    writeAtomic(file, certificateSds(certB));
    await waitFor('the first certificate back', () => b.secrets.status().find((s) => s.path === file)?.version === certB.serial);
  });

  it('holds a listener whose SDS secret is missing as warming (not ready, TLS refused), and serves once the file appears', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-sds-late-'));
    writeFileSync(join(dir, 'ROOTCA.json'), rootSds([rootA]));
    const late = await startProxy(
      {
        listeners: [inboundListener('inbound', httpListener('inbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) }), sdsTlsContext(dir), 'STRICT')],
        clusters: [staticCluster('app', [app.port])],
      },
      { sockets: [{ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }], registry: new Registry() },
    );
    try {
      const x = late.addresses.get('inbound');
      const port = x?.kind === 'tcp' ? x.port : 0;
      expect(late.ready()).toMatch(/^TLS warming: listener inbound: waiting for SDS secrets: default \(tls_certificate in .*default\.json\)/);
      expect((await tlsGet(port, rootA.cert, certA)).error).toBeDefined();
      expect(await counter(late, 'octo_proxy_tls_handshakes_total', { side: 'downstream', result: 'warming' })).toBe(1);
      expect(late.tlsWarming()).toEqual([expect.stringMatching(/^listener inbound: waiting for SDS secrets: default/)]);
      writeAtomic(join(dir, 'default.json'), certificateSds(certB));
      await waitFor('the listener to warm', () => late.ready() === true);
      expect(late.secrets.status().find((f) => f.path.endsWith('default.json'))).toMatchObject({ version: certB.serial, secrets: ['default'], error: null });
      expect(await tlsGet(port, rootA.cert, certA)).toEqual({ status: 200, serverSerial: certB.serial });
    } finally {
      await late.stop(100);
    }
  });
});

describe('auto_config: HTTP/2 or HTTP/1.1 to each upstream as ALPN agrees', () => {
  const pki = new TestPki();
  const dir = mkdtempSync(join(tmpdir(), 'octo-sds-auto-'));
  let root: KeyPair;
  let proxy: Proxy & { port: number };
  const seen: string[] = [];
  const servers: { close(): void }[] = [];

  beforeAll(async () => {
    root = pki.root('auto-root');
    const client = pki.leaf(root, ID_A);
    const server = pki.leaf(root, ID_B);
    writeAtomic(join(dir, 'default.json'), certificateSds(client));
    writeAtomic(join(dir, 'ROOTCA.json'), rootSds([root]));
    const opts = { cert: server.cert, key: server.key, ca: root.cert, requestCert: true, rejectUnauthorized: true };
    // One upstream that speaks h2 (and 1.1), one that only speaks HTTP/1.1 over TLS.
    const h2 = http2.createSecureServer({ ...opts, allowHTTP1: true }, (req, res) => {
      seen.push(`h2-server ${req.httpVersion} ${req.url}`);
      res.end('ok');
    });
    const h1 = https.createServer(opts, (req, res) => {
      seen.push(`h1-server ${req.httpVersion} ${req.url}`);
      res.end('ok');
    });
    const listen = (srv: net.Server) => new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
    const [p2, p1] = [await listen(h2), await listen(h1)];
    servers.push(h2, h1);
    const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    const auto = { typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, auto_config: { http_protocol_options: {}, http2_protocol_options: {} } } } };
    proxy = await startProxy(
      {
        listeners: [
          httpListener('outbound', {
            route_config: routeConfig('out', [
              { match: { prefix: '/to-h2/' }, route: { cluster: 'speaks-h2' } },
              { match: { prefix: '/to-h1/' }, route: { cluster: 'speaks-h1' } },
            ]),
          }),
        ],
        clusters: [
          staticCluster('speaks-h2', [p2], { ...upstreamTransport(sdsTlsContext(dir, [], { exact: ID_B })), ...auto }),
          staticCluster('speaks-h1', [p1], { ...upstreamTransport(sdsTlsContext(dir, [], { exact: ID_B })), ...auto }),
        ],
      },
      { registry: new Registry() },
    );
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop(100);
    for (const s of servers) s.close();
  });

  it('speaks HTTP/2 to the upstream that agrees to h2 and HTTP/1.1 to the one that does not, each time', async () => {
    for (const path of ['/to-h2/1', '/to-h1/1', '/to-h2/2', '/to-h1/2']) expect((await request(proxy.port, { path })).status).toBe(200);
    expect(seen).toEqual(['h2-server 2.0 /to-h2/1', 'h1-server 1.1 /to-h1/1', 'h2-server 2.0 /to-h2/2', 'h1-server 1.1 /to-h1/2']);
  });
});

