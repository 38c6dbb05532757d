import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';
import { FAST_PARSE, heldWrites } from './lean-http.js';

// The lean downstream HTTP/1.1 server, spoken to over raw sockets.
function exchange(port: number, data: string, until: (s: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(buf);
    }, 3000);
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (until(buf)) {
        clearTimeout(t);
        s.destroy();
        resolve(buf);
      }
    });
    s.on('end', () => {
      clearTimeout(t);
      resolve(buf);
    });
    s.on('error', reject);
  });
}
const count = (s: string, sub: string) => s.split(sub).length - 1;

describe('downstream HTTP/1.1 server', () => {
  let up: Upstream;
  let proxy: Proxy & { port: number };
  beforeAll(async () => {
    up = await httpUpstream('up', (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'x-headers': String(Object.keys(req.headers).length) });
        res.end(`${req.method} ${req.url} ${body}`);
      });
    });
    proxy = await startProxy({
      listeners: [
        httpListener('outbound', {
          route_config: routeConfig('r', [
            { match: { prefix: '/local' }, direct_response: { status: 200, body: { inline_string: 'LOCAL' } } },
            { match: { prefix: '/' }, route: { cluster: 'up' } },
          ]),
        }),
      ],
      clusters: [staticCluster('up', [up.port])],
    });
  });
  afterAll(async () => {
    await proxy.stop(100);
    await up.close();
  });

  it('parses with the fast path unless OCTO_PROXY_FAST_PARSE=0 (the llhttp project)', () => {
    expect(FAST_PARSE).toBe(process.env['OCTO_PROXY_FAST_PARSE'] !== '0');
  });

  it('answers pipelined requests in order on one connection', async () => {
    const out = await exchange(proxy.port, 'GET /one HTTP/1.1\r\nHost: svc\r\n\r\nGET /two HTTP/1.1\r\nHost: svc\r\n\r\nGET /three HTTP/1.1\r\nHost: svc\r\n\r\n', (b) => b.includes('GET /three'));
    expect(count(out, 'HTTP/1.1 200')).toBe(3);
    expect(out.indexOf('GET /one')).toBeLessThan(out.indexOf('GET /two'));
    expect(out.indexOf('GET /two')).toBeLessThan(out.indexOf('GET /three'));
  });

  it.each([
    { hold: 'always', threshold: 0 },
    { hold: 'when busy', threshold: heldWrites.threshold },
  ])('keeps pipelined responses in order when proxied and local answers alternate (writes held $hold)', async ({ threshold }) => {
    // Held writes go out at the end of a batch of events (`Outbox.later`), other writes while it is
    // handled: each socket's bytes must still go out in order.
    const saved = heldWrites.threshold;
    heldWrites.threshold = threshold;
    try {
      const reqs = ['/p1', '/local', '/p2', '/local', '/local', '/p3'];
      const out = await exchange(proxy.port, reqs.map((p) => `GET ${p} HTTP/1.1\r\nHost: svc\r\n\r\n`).join(''), (b) => b.includes('GET /p3'));
      expect(count(out, 'HTTP/1.1 200')).toBe(reqs.length);
      const order = [...out.matchAll(/GET \/p\d|LOCAL/g)].map((m) => m[0]);
      expect(order).toEqual(['GET /p1', 'LOCAL', 'GET /p2', 'LOCAL', 'LOCAL', 'GET /p3']);
    } finally {
      heldWrites.threshold = saved;
    }
  });

  it('sends 100 Continue, then forwards the body', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect(proxy.port, '127.0.0.1', () => s.write('POST /e HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n'));
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString();
        if (buf === 'HTTP/1.1 100 Continue\r\n\r\n') s.write('data');
        if (buf.includes('POST /e data')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
    });
    expect(out.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200')).toBe(true);
  });

  it('closes after answering an HTTP/1.0 client', async () => {
    const out = await exchange(proxy.port, 'GET /old HTTP/1.0\r\nHost: svc\r\n\r\n', () => false);
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(out.toLowerCase()).toContain('connection: close');
    expect(out).toContain('GET /old');
  });

  it('answers 400 to a malformed request and closes', async () => {
    const out = await exchange(proxy.port, 'BREW / HTCPCP/1.0\r\n\r\n', () => false);
    expect(out).toMatch(/^HTTP\/1.1 400/);
  });

  it('reads requests with many headers (split across parser callbacks)', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 60; i++) headers[`x-h${i}`] = 'v'.repeat(100);
    const r = await request(proxy.port, { path: '/many', headers });
    expect(r.status).toBe(200);
    expect(Number(r.headers['x-headers'])).toBeGreaterThanOrEqual(60);
  });

  it('serves fast-path and llhttp-parsed requests alternating on one connection', async () => {
    // Plain heads take the fast path, chunked and HTTP/1.0-style ones llhttp; one write carries them all.
    const msgs = [
      'POST /a HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\none',
      'POST /b HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n',
      'GET /c HTTP/1.1\r\nHost: svc\r\n\r\n',
      'POST /d HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfour\r\n0\r\n\r\n',
      'POST /e HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\n\r\nfive',
    ];
    const out = await exchange(proxy.port, msgs.join(''), (b) => b.includes('POST /e five'));
    const seen = ['POST /a one', 'POST /b two', 'GET /c ', 'POST /d four', 'POST /e five'].map((x) => out.indexOf(x));
    expect(seen.every((i) => i >= 0)).toBe(true);
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });

  it('reads a fast-path body that arrives over several reads, and the next request after it', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const s = net.connect(proxy.port, '127.0.0.1');
      const parts = ['POST /slow HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\nab', 'cdef', 'ghij' + 'GET /after HTTP/1.1\r\nHo', 'st: svc\r\n\r\n'];
      let i = 0;
      const next = () => {
        if (i < parts.length) s.write(parts[i++]!, () => setTimeout(next, 20));
      };
      s.on('connect', next);
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        if (buf.includes('GET /after')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
    });
    expect(out).toContain('POST /slow abcdefghij');
    expect(out.indexOf('POST /slow')).toBeLessThan(out.indexOf('GET /after'));
  });

  it('answers the requests before a malformed one, then 400, then closes', async () => {
    const out = await exchange(proxy.port, 'GET /ok HTTP/1.1\r\nHost: svc\r\n\r\nGET /bad HTTP/1.1\r\nHost : svc\r\n\r\nGET /never HTTP/1.1\r\nHost: svc\r\n\r\n', () => false);
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(out).toContain('GET /ok');
    expect(out.indexOf('HTTP/1.1 400 Bad Request')).toBeGreaterThan(out.indexOf('GET /ok'));
    expect(out).not.toContain('/never');
  });
});
