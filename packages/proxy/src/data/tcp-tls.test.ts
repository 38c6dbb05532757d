import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@octo-mesh/runtime';
import { httpListener, routeConfig, staticCluster, tcpListener } from '../test-support/resources.js';
import { httpUpstream, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { DOWNSTREAM_TLS, TLS_INSPECTOR, TestPki, certificateSds, rootSds, sdsTlsContext, upstreamTransport, writeAtomic, type KeyPair } from '../test-support/pki.js';
import type { Proxy } from '../proxy.js';

// tcp_proxy to a cluster with a TLS transport socket (issue 21): the proxy originates mTLS with
// the cluster's UpstreamTlsContext (client certificate by SDS from files, trust bundle, SAN
// matcher) and pipes the bytes. Real sockets: a TLS echo server that requires and verifies a
// client certificate, certificates from the openssl CLI.
const TD = 'spiffe://cluster.local/ns/default/sa';
const ID_PROXY = `${TD}/caller`;
const ID_ECHO = `${TD}/echo`;

async function counter(p: Proxy, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await p.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as { labels: Record<string, string>; value: number }[] | undefined)?.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

/** Writes `send` to `port`, half-closes, and resolves with everything read until the connection closed. */
function exchange(port: number, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(send));
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve(data));
    s.setTimeout(20_000, () => reject(new Error(`no close from the proxy; read so far ${JSON.stringify(data)}`)));
  });
}

describe('tcp_proxy to a TLS cluster', () => {
  const pki = new TestPki();
  const dir = mkdtempSync(join(tmpdir(), 'octo-sds-tcp-'));
  let root: KeyPair;
  let echoServer: tls.Server;
  /** What the echo server saw: the verified client's SAN per connection, and the bytes it got. */
  const seen: { peer: string | undefined; alpn: string | false | null; bytes: string }[] = [];
  let proxy: Proxy;
  const port = (name: string) => Number(proxy.listening().find((l) => l.name === name)?.address.split(':').pop());

  beforeAll(async () => {
    root = pki.root('tcp-root');
    const client = pki.leaf(root, ID_PROXY);
    const server = pki.leaf(root, ID_ECHO);
    writeAtomic(join(dir, 'default.json'), certificateSds(client));
    writeAtomic(join(dir, 'ROOTCA.json'), rootSds([root]));
    // Echoes every byte, and after the client's FIN answers `|eof` and closes: the half-close passes both ways.
    echoServer = tls.createServer({ cert: server.cert, key: server.key, ca: root.cert, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true }, (s) => {
      const entry = { peer: s.getPeerCertificate().subjectaltname, alpn: s.alpnProtocol, bytes: '' };
      seen.push(entry);
      s.on('data', (d: Buffer) => {
        entry.bytes += d.toString();
        s.write(d);
      });
      s.on('end', () => s.end('|eof'));
      s.on('error', () => undefined);
    });
    echoServer.on('tlsClientError', () => undefined);
    const echoPort = await new Promise<number>((r) => echoServer.listen(0, '127.0.0.1', () => r((echoServer.address() as net.AddressInfo).port)));
    proxy = await startProxy(
      {
        listeners: [tcpListener('to-echo', 'echo'), tcpListener('to-wrong-san', 'echo-wrong-san'), tcpListener('to-missing-sds', 'echo-missing-sds')],
        clusters: [
          staticCluster('echo', [echoPort], upstreamTransport(sdsTlsContext(dir, [], { exact: ID_ECHO }), 'echo.default.svc')),
          staticCluster('echo-wrong-san', [echoPort], upstreamTransport(sdsTlsContext(dir, [], { exact: `${TD}/someone-else` }))),
          staticCluster('echo-missing-sds', [echoPort], upstreamTransport(sdsTlsContext(join(dir, 'absent'), [], { exact: ID_ECHO }))),
        ],
      },
      { sockets: [], registry: new Registry() },
    );
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop(100);
    echoServer?.close();
  });

  it('handshakes with the client certificate and the SAN check, then pipes both ways with the half-close', async () => {
    const before = await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'success' });
    expect(await exchange(port('to-echo'), 'hello over mTLS')).toBe('hello over mTLS|eof');
    // The echo server verified the proxy's certificate against the root and saw its SPIFFE ID; no ALPN was offered.
    expect(seen.at(-1)).toEqual({ peer: `URI:${ID_PROXY}`, alpn: false, bytes: 'hello over mTLS' });
    expect(await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'success' })).toBe(before + 1);
  });

  it('carries a larger stream intact (backpressure on both sides)', async () => {
    const big = 'x'.repeat(4 * 1024 * 1024);
    expect(await exchange(port('to-echo'), big)).toBe(`${big}|eof`);
  }, 30_000);

  it('refuses a server whose SAN matches no matcher: counted, nothing sent, the downstream closed', async () => {
    const tlsBefore = await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'fail_verify_san' });
    const tcpBefore = await counter(proxy, 'octo_proxy_tcp_connect_failures_total', { listener: 'to-wrong-san', cluster: 'echo-wrong-san', reason: 'upstream-tls-fail-verify-san' });
    const n = seen.length;
    expect(await exchange(port('to-wrong-san'), 'secret')).toBe('');
    expect(seen.slice(n).map((e) => e.bytes).join('')).toBe('');
    expect(await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'fail_verify_san' })).toBe(tlsBefore + 1);
    expect(await counter(proxy, 'octo_proxy_tcp_connect_failures_total', { listener: 'to-wrong-san', cluster: 'echo-wrong-san', reason: 'upstream-tls-fail-verify-san' })).toBe(tcpBefore + 1);
  });

  it('closes a connection to a cluster whose SDS secrets are missing (warming) without a byte sent, and counts it', async () => {
    const before = await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'warming' });
    const n = seen.length;
    expect(await exchange(port('to-missing-sds'), 'secret')).toBe('');
    expect(seen.length).toBe(n);
    expect(await counter(proxy, 'octo_proxy_tls_handshakes_total', { side: 'upstream', result: 'warming' })).toBe(before + 1);
  });
});

describe('TCP between two proxies over mTLS: the callee picks the TCP chain by SNI on its inbound', () => {
  const pki = new TestPki();
  const dirA = mkdtempSync(join(tmpdir(), 'octo-sds-sni-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'octo-sds-sni-b-'));
  const SNI = 'outbound_.5432_._.db.demo.svc';
  let app: net.Server;
  let http: Upstream;
  let a: Proxy;
  let b: Proxy;
  let inboundPort = 0;
  let root: KeyPair;
  const appConns: string[] = [];

  beforeAll(async () => {
    root = pki.root('sni-root');
    writeAtomic(join(dirA, 'default.json'), certificateSds(pki.leaf(root, ID_PROXY)));
    writeAtomic(join(dirA, 'ROOTCA.json'), rootSds([root]));
    writeAtomic(join(dirB, 'default.json'), certificateSds(pki.leaf(root, ID_ECHO)));
    writeAtomic(join(dirB, 'ROOTCA.json'), rootSds([root]));
    // The callee's application: a plaintext TCP server on its loopback, and an HTTP one.
    app = net.createServer({ allowHalfOpen: true }, (s) => {
      const i = appConns.push('') - 1;
      s.on('data', (d: Buffer) => {
        appConns[i] += d.toString();
        s.write(d);
      });
      s.on('end', () => s.end('|eof'));
      s.on('error', () => undefined);
    });
    const appPort = await new Promise<number>((r) => app.listen(0, '127.0.0.1', () => r((app.address() as net.AddressInfo).port)));
    http = await httpUpstream('http-app');
    const hcm = (httpListener('inbound', { route_config: routeConfig('in', [{ match: { prefix: '/' }, route: { cluster: 'inbound-http' } }]) }) as { filter_chains: { filters: unknown[] }[] }).filter_chains[0]!.filters;
    const tcp = (tcpListener('x', 'inbound-db') as { filter_chains: { filters: unknown[] }[] }).filter_chains[0]!.filters;
    const downstream = { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS, require_client_certificate: true, common_tls_context: sdsTlsContext(dirB, ['h2', 'http/1.1'], { prefix: 'spiffe://cluster.local/' }) } };
    b = await startProxy(
      {
        listeners: [
          {
            name: 'inbound',
            listener_filters: [TLS_INSPECTOR],
            filter_chains: [
              { filter_chain_match: { transport_protocol: 'tls' }, filters: hcm, transport_socket: downstream },
              { filter_chain_match: { transport_protocol: 'tls', server_names: [SNI] }, filters: tcp, transport_socket: downstream },
            ],
          },
        ],
        clusters: [staticCluster('inbound-http', [http.port]), staticCluster('inbound-db', [appPort])],
      },
      { sockets: [{ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }], registry: new Registry() },
    );
    const x = b.addresses.get('inbound');
    inboundPort = x?.kind === 'tcp' ? x.port : 0;
    a = await startProxy(
      {
        listeners: [tcpListener('to-db', 'db'), tcpListener('to-db-no-sni', 'db-no-sni')],
        clusters: [
          staticCluster('db', [inboundPort], upstreamTransport(sdsTlsContext(dirA, [], { exact: ID_ECHO }), SNI)),
          staticCluster('db-no-sni', [inboundPort], upstreamTransport(sdsTlsContext(dirA, [], { exact: ID_ECHO }))),
        ],
      },
      { sockets: [], registry: new Registry() },
    );
  }, 60_000);

  afterAll(async () => {
    await a?.stop(100);
    await b?.stop(100);
    app?.close();
    await http?.close();
  });

  const portOf = (p: Proxy, name: string) => Number(p.listening().find((l) => l.name === name)?.address.split(':').pop());

  it('carries the bytes and the half-close from a TCP listener through both proxies to the application', async () => {
    const n = appConns.length;
    expect(await exchange(portOf(a, 'to-db'), 'select 1')).toBe('select 1|eof');
    expect(appConns.slice(n)).toEqual(['select 1']);
    expect(await counter(b, 'octo_proxy_tcp_connections_total', { listener: 'inbound', cluster: 'inbound-db' })).toBe(1);
  });

  it('serves HTTP on the same port to a TLS client that sends no (or another) server name', async () => {
    const n = appConns.length;
    // Without SNI the connection reaches the HTTP chain (the request is written without a half-close: HTTP/1.1 takes a FIN as the end).
    const got = await new Promise<string>((resolve) => {
      let data = '';
      const s = net.connect(portOf(a, 'to-db-no-sni'), '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve(data));
    });
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(appConns.length).toBe(n);
  });
});
