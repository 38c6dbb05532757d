import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

// Real sockets end to end: client → proxy (TCP, Unix socket; HTTP/1.1 and HTTP/2) → upstream.
describe('HTTP data path', () => {
  let v1: Upstream;
  let v2: Upstream;
  let app: http.Server;
  let proxy: Proxy & { port: number };
  const dir = mkdtempSync(join(tmpdir(), 'octo-proxy-'));
  const sock = join(dir, 'outbound.sock');
  const appSock = join(dir, 'app.sock');

  beforeAll(async () => {
    v1 = await httpUpstream('v1', (req, res, u) => {
      req.resume();
      req.on('end', () => {
        if (req.url?.startsWith('/trailers')) {
          res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
          res.write('part1,');
          res.write('part2');
          res.addTrailers({ 'x-checksum': 'abc' });
          res.end();
          return;
        }
        res.writeHead(200, { 'x-upstream': u.name, 'x-path': req.url ?? '' });
        res.end(`${u.name} ${req.method} ${req.url}`);
      });
    });
    v2 = await httpUpstream('v2');
    // The local application behind the inbound side, on a Unix socket.
    app = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'x-upstream': 'uds-app' });
      res.end(`app ${req.url}`);
    });
    await new Promise<void>((r) => app.listen(appSock, r));
    const routes = routeConfig(
      'outbound',
      [
        { name: 'health', match: { path: '/healthz' }, direct_response: { status: 200, body: { inline_string: 'proxy-ok' } } },
        { name: 'post-only', match: { prefix: '/', headers: [{ name: ':method', exact_match: 'POST' }] }, route: { cluster: 'v2' } },
        { name: 'canary', match: { prefix: '/', headers: [{ name: 'x-canary', exact_match: 'yes' }] }, route: { cluster: 'v2' } },
        { name: 'beta', match: { prefix: '/', query_parameters: [{ name: 'beta', present_match: true }] }, route: { cluster: 'v2' } },
        { name: 'rx', match: { safe_regex: { regex: '/items/[0-9]+' } }, route: { cluster: 'v2' } },
        {
          name: 'rewrite',
          match: { prefix: '/old/' },
          route: { cluster: 'v1', prefix_rewrite: '/new/' },
          request_headers_to_add: [{ header: { key: 'x-added', value: 'yes' } }],
          request_headers_to_remove: ['x-secret'],
          response_headers_to_add: [{ header: { key: 'x-route', value: 'rewrite' } }],
        },
        { name: 'uds-app', match: { prefix: '/app/' }, route: { cluster: 'app' } },
        { name: 'split', match: { prefix: '/split' }, route: { weighted_clusters: { clusters: [{ name: 'v1', weight: 90 }, { name: 'v2', weight: 10 }] } } },
        { name: 'default', match: { prefix: '/' }, route: { cluster: 'v1' } },
      ],
      ['svc', 'svc.default.svc.cluster.local'],
    );
    proxy = await startProxy(
      { listeners: [httpListener('outbound', { route_config: routes })], clusters: [
          staticCluster('v1', [v1.port]),
          staticCluster('v2', [v2.port]),
          { name: 'app', type: 'STATIC', load_assignment: { cluster_name: 'app', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: appSock } } } }] }] } },
        ],
      },
      {
        sockets: [
          { name: 'outbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } },
          { name: 'outbound', spec: { kind: 'bind', address: { kind: 'pipe', path: sock } } },
        ],
      },
    );
  });
  afterAll(async () => {
    await proxy.stop(100);
    await v1.close();
    await v2.close();
    app.close();
  });

  // columns: description, request options, expected upstream (or status)
  it.each([
    ['default route', { path: '/a' }, 'v1'],
    ['method matcher', { path: '/a', method: 'POST', body: 'x' }, 'v2'],
    ['header matcher', { path: '/a', headers: { 'x-canary': 'yes' } }, 'v2'],
    ['query matcher', { path: '/a?beta=1' }, 'v2'],
    ['regex path', { path: '/items/42' }, 'v2'],
    ['regex is a full match', { path: '/items/42/x' }, 'v1'],
    ['authority with port', { path: '/a', host: 'svc:8080' }, 'v1'],
  ] as const)('routes: %s', async (_d, opts, want) => {
    const r = await request(proxy.port, opts);
    expect(r.status).toBe(200);
    expect(r.headers['x-upstream']).toBe(want);
  });

  it('takes the destination from an absolute-form request (app configured with an HTTP proxy)', async () => {
    const r = await request(proxy.port, { path: 'http://svc.default.svc.cluster.local/old/abs?q=1', host: 'ignored' });
    expect(r.headers['x-upstream']).toBe('v1');
    expect(r.headers['x-path']).toBe('/new/abs?q=1');
  });

  it('answers 400 and closes an HTTP/1.1 request without Host, before anything goes upstream (RFC 9112 §3.2)', async () => {
    // Absolute-form names a routable destination, so only the missing Host can stop it.
    const before = v1.hits + v2.hits;
    for (const head of ['GET http://svc/abs HTTP/1.1\r\n\r\n', 'POST http://svc/abs HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi']) {
      const raw = await new Promise<string>((resolve, reject) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => s.write(head));
        let buf = '';
        s.on('data', (c: Buffer) => (buf += c.toString('latin1')));
        s.on('close', () => resolve(buf));
        s.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    }
    // The same request with a Host is served (absolute-form wins over the Host for routing).
    expect((await request(proxy.port, { path: 'http://svc/abs', host: 'x' })).headers['x-upstream']).toBe('v1');
    expect(v1.hits + v2.hits).toBe(before + 1);
  });

  it('answers 404 with a reason for an unknown service and serves direct responses', async () => {
    const r = await request(proxy.port, { host: 'unknown' });
    expect(r.status).toBe(404);
    expect(r.headers['x-octo-reason']).toBe('no-route');
    expect((await request(proxy.port, { path: '/healthz' })).body).toBe('proxy-ok');
  });

  it('rewrites the path and headers', async () => {
    const r = await request(proxy.port, { path: '/old/thing', headers: { 'x-secret': 's' } });
    expect(r.headers['x-path']).toBe('/new/thing');
    expect(r.headers['x-route']).toBe('rewrite');
    expect(v1.lastHeaders?.['x-added']).toBe('yes');
    expect(v1.lastHeaders?.['x-secret']).toBeUndefined();
  });

  it('propagates W3C traceparent, starting a trace when absent', async () => {
    await request(proxy.port, { path: '/t' });
    expect(v1.lastHeaders?.['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await request(proxy.port, { path: '/t', headers: { traceparent: incoming } });
    const tp = String(v1.lastHeaders?.['traceparent']);
    expect(tp.slice(0, 36)).toBe(incoming.slice(0, 36));
    expect(tp).not.toBe(incoming);
  });

  it('serves the Unix socket listener too', async () => {
    const r = await request(sock, { path: '/uds' });
    expect(r.headers['x-upstream']).toBe('v1');
  });

  it('reaches an application listening on a Unix socket', async () => {
    const r = await request(proxy.port, { path: '/app/x' });
    expect(r.body).toBe('app /app/x');
  });

  it('keeps upstream connections alive across requests (HTTP/1.1 pool)', async () => {
    const before = v1.connections;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 20; i++) expect((await request(proxy.port, { path: `/k${i}`, agent })).status).toBe(200);
    agent.destroy();
    expect(v1.connections - before).toBeLessThanOrEqual(1);
  });

  it('forwards chunked bodies and trailers over HTTP/1.1', async () => {
    const r = await request(proxy.port, { path: '/trailers' });
    expect(r.body).toBe('part1,part2');
    expect(r.trailers['x-checksum']).toBe('abc');
  });

  it('speaks HTTP/2 (prior knowledge) to the client', async () => {
    const s = http2.connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const results = await Promise.all(
        [1, 2, 3].map(
          (i) =>
            new Promise<{ status: number; body: string; up: string }>((resolve, reject) => {
              const st = s.request({ ':path': `/h2/${i}`, ':authority': 'svc' });
              let body = '';
              let status = 0;
              let up = '';
              st.on('response', (h) => {
                status = Number(h[':status']);
                up = String(h['x-upstream']);
              });
              st.on('data', (c: Buffer) => (body += c.toString()));
              st.on('end', () => resolve({ status, body, up }));
              st.on('error', reject);
              st.end();
            }),
        ),
      );
      for (const [i, r] of results.entries()) {
        expect(r.status).toBe(200);
        expect(r.up).toBe('v1');
        expect(r.body).toBe(`v1 GET /h2/${i + 1}`);
      }
    } finally {
      s.close();
    }
  });

  it('splits traffic 90/10 within ±2% over 10,000 requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const counts: Record<string, number> = {};
    const N = 10_000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < N) {
          next++;
          const r = await request(proxy.port, { path: '/split', agent });
          const up = String(r.headers['x-upstream']);
          counts[up] = (counts[up] ?? 0) + 1;
        }
      }),
    );
    agent.destroy();
    expect((counts['v1'] ?? 0) + (counts['v2'] ?? 0)).toBe(N);
    expect(Math.abs((counts['v2'] ?? 0) / N - 0.1)).toBeLessThanOrEqual(0.02);
  }, 60_000);

  it('passes an HTTP/1.1 Upgrade through only when the listener or route allows it', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(proxy.port, '127.0.0.1', () => {
        s.write('GET /ws HTTP/1.1\r\nHost: svc\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      });
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString();
        if (buf.includes('\r\n\r\n')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1.1 403/);
    expect(raw).toContain('x-octo-reason: upgrade-not-allowed');
  });
});
