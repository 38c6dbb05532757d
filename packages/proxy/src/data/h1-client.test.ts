import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';
import { H1Pool } from './h1-client.js';
import type { UpstreamResponse } from './upstream.js';

// The lean upstream HTTP/1.1 client at its edges: framing, pooling, streaming, odd servers.
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const BIG = Buffer.alloc(5 * 1024 * 1024, 'abcdefghij');

describe('upstream HTTP/1.1 client', () => {
  let up: Upstream;
  let raw: net.Server;
  let proxy: Proxy & { port: number };

  beforeAll(async () => {
    up = await httpUpstream('up', (req, res) => {
      if (req.url === '/early') {
        res.writeHead(413, { connection: 'keep-alive' });
        res.end('too large');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        // A slow reader: the proxy must hold back (backpressure) without losing bytes.
        if (req.url === '/slow-reader') {
          req.pause();
          setTimeout(() => req.resume(), 1);
        }
      });
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/big') return void res.end(BIG);
        if (req.url === '/no-content') {
          res.writeHead(204);
          return void res.end();
        }
        if (req.url === '/close') {
          res.writeHead(200, { connection: 'close' });
          return void res.end('closing');
        }
        if (req.url === '/slow') return void setTimeout(() => res.end('slow'), 100);
        if (req.url === '/slow-reader') return void res.end(sha(body));
        res.writeHead(200, { 'x-method': req.method ?? '', 'x-body-sha': sha(body), 'x-te': String(req.headers['transfer-encoding'] ?? ''), 'content-length': 5 });
        res.end(req.method === 'HEAD' ? undefined : 'hello');
      });
    });
    // A server that answers HTTP/1.0 style: no length, body ends when the connection closes.
    raw = net.createServer((s) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil-close body'));
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const routes = routeConfig('r', [
      { match: { prefix: '/raw' }, route: { cluster: 'raw' } },
      { match: { prefix: '/one/' }, route: { cluster: 'one', prefix_rewrite: '/' } },
      { match: { prefix: '/two/' }, route: { cluster: 'two', prefix_rewrite: '/' } },
      { match: { prefix: '/' }, route: { cluster: 'up' } },
    ]);
    proxy = await startProxy({
      listeners: [httpListener('outbound', { route_config: routes })],
      clusters: [
        staticCluster('up', [up.port]),
        staticCluster('one', [up.port], { circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 10 }] } }),
        staticCluster('raw', [(raw.address() as AddressInfo).port]),
        staticCluster('two', [up.port], { max_requests_per_connection: 2 }),
      ],
    });
  });
  afterAll(async () => {
    await proxy.stop(100);
    await up.close();
    raw.close();
  });

  it('answers HEAD without waiting for a body', async () => {
    const r = await request(proxy.port, { method: 'HEAD', path: '/h' });
    expect(r.status).toBe(200);
    expect(r.headers['x-method']).toBe('HEAD');
    expect(r.body).toBe('');
  });

  it('passes 204 with no body, and a response delimited by the connection closing', async () => {
    expect((await request(proxy.port, { path: '/no-content' })).status).toBe(204);
    expect((await request(proxy.port, { path: '/raw' })).body).toBe('until-close body');
  });

  it('streams a 5 MB response and a 2 MB chunked upload intact', async () => {
    const big = await request(proxy.port, { path: '/big' });
    expect(sha(big.body)).toBe(sha(BIG.toString()));
    const upload = Buffer.alloc(2 * 1024 * 1024, 'xyz');
    const r = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/upload', headers: { host: 'svc' } }, resolve);
      req.on('error', reject);
      for (let i = 0; i < upload.length; i += 64 * 1024) req.write(upload.subarray(i, i + 64 * 1024));
      req.end();
    });
    r.resume();
    expect(r.headers['x-te']).toBe('chunked');
    expect(r.headers['x-body-sha']).toBe(sha(upload));
  });

  it('holds back an upload for a slow reader, then reuses both connections', async () => {
    const upload = Buffer.alloc(8 * 1024 * 1024, 'q');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const r = await request(proxy.port, { method: 'POST', path: '/slow-reader', body: upload.toString(), agent, headers: { 'content-length': upload.length } });
    expect(r.body).toBe(sha(upload));
    const again = await request(proxy.port, { path: '/after', agent });
    expect(again.body).toBe('hello');
    agent.destroy();
  });

  it('does not reuse a connection whose upload was cut short by an early response', async () => {
    // /early answers 413 as soon as the headers arrive, while the client is still sending.
    const early = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/early', headers: { host: 'svc' } }, resolve);
      req.on('error', reject);
      req.write(Buffer.alloc(1024, 'a'));
      setTimeout(() => req.end(Buffer.alloc(1024, 'b')), 100);
    });
    early.resume();
    expect(early.statusCode).toBe(413);
    for (let i = 0; i < 5; i++) expect((await request(proxy.port, { path: `/next${i}` })).body).toBe('hello');
  });

  it('keeps every byte of a large response a slow client reads in small steps', async () => {
    // The proxy's writes queue up while the client does not read; what they hold must not be
    // overwritten by later reads from the upstream connection.
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: '/big', headers: { host: 'svc' } }, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        const step = () => {
          let c: Buffer | null;
          while ((c = res.read(16 * 1024) as Buffer | null) !== null) chunks.push(c);
          if (res.readableEnded) return resolve(Buffer.concat(chunks));
          setTimeout(step, 2);
        };
        res.on('end', () => resolve(Buffer.concat(chunks)));
        setTimeout(step, 50);
      });
      req.on('error', reject);
      req.end();
    });
    expect(body.length).toBe(BIG.length);
    expect(sha(body)).toBe(sha(BIG));
  });

  it('forwards a content-length body as is', async () => {
    const r = await request(proxy.port, { method: 'PUT', path: '/put', body: 'payload', headers: { 'content-length': 7 } });
    expect(r.headers['x-te']).toBe('');
    expect(r.headers['x-body-sha']).toBe(sha('payload'));
  });

  it('queues requests beyond max_connections on one kept-alive connection', async () => {
    const before = up.connections;
    const rs = await Promise.all(Array.from({ length: 5 }, () => request(proxy.port, { path: '/one/slow' })));
    expect(rs.map((r) => r.body)).toEqual(['slow', 'slow', 'slow', 'slow', 'slow']);
    expect(up.connections - before).toBe(1);
  });

  it('retires a connection after max_requests_per_connection', async () => {
    const before = up.connections;
    for (let i = 0; i < 6; i++) expect((await request(proxy.port, { path: `/two/r${i}` })).body).toBe('hello');
    expect(up.connections - before).toBe(3);
  });

  it('opens a new connection after the upstream closes one', async () => {
    expect((await request(proxy.port, { path: '/close' })).body).toBe('closing');
    expect((await request(proxy.port, { path: '/after-close' })).body).toBe('hello');
  });
});

describe('upstream HTTP/1.1 client on one kept-alive connection', () => {
  // A raw upstream answering each request on the same connection with a different framing: the
  // fast path (content-length) and llhttp (chunked, 204, 1xx) take turns on one parser state.
  let raw: net.Server;
  let proxy: Proxy & { port: number };
  let connections = 0;
  const answers = [
    (s: net.Socket) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst'),
    (s: net.Socket) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n'),
    (s: net.Socket) => {
      // A content-length body in three writes, the head split from it.
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
      setTimeout(() => s.write('th'), 10);
      setTimeout(() => s.write('ird'), 20);
    },
    (s: net.Socket) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfourth'),
    (s: net.Socket) => s.write('HTTP/1.1 204 No Content\r\n\r\n'),
    (s: net.Socket) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nsixth'),
  ];
  beforeAll(async () => {
    raw = net.createServer((s) => {
      connections++;
      let n = 0;
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        while (buf.includes('\r\n\r\n')) {
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          answers[n++ % answers.length]!(s);
        }
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    proxy = await startProxy({
      listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'raw' } }]) })],
      clusters: [staticCluster('raw', [(raw.address() as AddressInfo).port], { circuit_breakers: { thresholds: [{ max_connections: 1 }] } })],
    });
  });
  afterAll(async () => {
    await proxy.stop(100);
    raw.close();
  });

  it('reads every framing in turn and reuses the connection', async () => {
    const got: [number, string][] = [];
    for (let i = 0; i < 12; i++) {
      const r = await request(proxy.port, { path: `/r${i}` });
      got.push([r.status, r.body]);
    }
    const want: [number, string][] = [
      [200, 'first'],
      [200, 'second'],
      [200, 'third'],
      [200, 'fourth'],
      [204, ''],
      [200, 'sixth'],
    ];
    expect(got).toEqual([...want, ...want]);
    expect(connections).toBe(1);
  });
});

describe('upstream HTTP/1.1 client, one pooled connection', () => {
  it("keeps a response's trailers when its body is read after the connection carried the next request", async () => {
    // A raw upstream: the first response is chunked with a trailer, the second has none.
    let n = 0;
    const server = net.createServer((s) => {
      s.on('data', () => {
        n++;
        if (n === 1) s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n2\r\nhi\r\n0\r\nx-checksum: first\r\n\r\n');
        else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = { kind: 'tcp' as const, host: '127.0.0.1', port: (server.address() as AddressInfo).port };
    const pool = new H1Pool(1, 1000);
    const get = () =>
      new Promise<UpstreamResponse>((resolve, reject) => {
        const a = pool.request('h', addr, { method: 'GET', path: '/', authority: 'up', headers: {}, framing: 'none' });
        a.body.end();
        a.settle((res, err) => (res ? resolve(res) : reject(err)));
      });
    const first = await get();
    // The first body is left unread; the connection (max 1) goes back to the pool once the
    // response is complete and carries the second request.
    const second = await get();
    expect(second.trailers()).toBeUndefined();
    const body = await new Promise<string>((resolve) => {
      let s = '';
      first.body.on('data', (c: Buffer) => (s += c.toString()));
      first.body.on('end', () => resolve(s));
    });
    expect(body).toBe('hi');
    expect(first.trailers()).toEqual({ 'x-checksum': 'first' });
    second.body.resume();
    pool.close();
    server.close();
  });
});

describe('upstream HTTP/1.1 client after a stall', () => {
  it('sees a connect that completed in time before its connect timeout that passed meanwhile', async () => {
    // Issue 18: a proxy preempted on a machine short of CPU comes back with its connect timeout past
    // and the connection made (the kernel completes a loopback handshake without us); Node runs due
    // timers before it polls, so a plain setTimeout failed the connect ('upstream-connect-failure').
    const server = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = { kind: 'tcp' as const, host: '127.0.0.1', port: (server.address() as AddressInfo).port };
    const pool = new H1Pool(1, 15);
    try {
      const outcome = new Promise<string>((resolve) => {
        const a = pool.request('h', addr, { method: 'GET', path: '/', authority: 'up', headers: {}, framing: 'none' });
        a.body.end();
        a.settle((res, err) => resolve(res ? `status ${res.status}` : `failed: ${(err as Error).message}`));
      });
      const until = performance.now() + 60;
      while (performance.now() < until); // the stall: the connect timeout passes, the connection waits to be seen
      expect(await outcome).toBe('status 200');
    } finally {
      pool.close();
      server.close();
    }
  });
});
