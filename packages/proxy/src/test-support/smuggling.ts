import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { httpListener, routeConfig, staticCluster } from './resources.js';
import { startProxy } from './proxy.js';
import type { Proxy } from '../proxy.js';

/**
 * The request-smuggling table (issue 17), run against whichever downstream HTTP/1.1 server the
 * importing test file selected (the lean one, or `node:http` with OCTO_PROXY_DOWNSTREAM_CODEC=node).
 * Each malformed or ambiguously framed request is sent in one write on a real socket; the proxy
 * must answer 400 (431 for an oversized head) and close, and the upstream must not have received
 * a single byte: a proxy that forwards the head of a request whose framing it cannot trust lets
 * the upstream read the rest differently (RFC 9112 §6.3, §11.2).
 */

const HEAD = 'POST / HTTP/1.1\r\nHost: svc\r\n';
const TE = 'Transfer-Encoding: chunked\r\n';

/** name, the bytes sent, the statuses accepted */
export const SMUGGLING_SHAPES: [string, string, number[]][] = [
  ['invalid chunk size', `${HEAD}${TE}\r\nzz\r\nhello\r\n0\r\n\r\n`, [400]],
  ['negative chunk size', `${HEAD}${TE}\r\n-5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['hex-prefixed chunk size', `${HEAD}${TE}\r\n0x5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['chunk size overflowing 64 bits', `${HEAD}${TE}\r\nfffffffffffffffffff5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['chunk data longer than its size', `${HEAD}${TE}\r\n3\r\nhello\r\n0\r\n\r\n`, [400]],
  ['chunk size line ended by a bare LF', `${HEAD}${TE}\r\n5\nhello\r\n0\r\n\r\n`, [400]],
  ['two Host fields', 'GET / HTTP/1.1\r\nHost: svc\r\nHost: evil\r\n\r\n', [400]],
  ['two identical Host fields', 'GET / HTTP/1.1\r\nHost: svc\r\nHost: svc\r\n\r\n', [400]],
  ['Host with two values', 'GET / HTTP/1.1\r\nHost: svc, evil\r\n\r\n', [400]],
  // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field.
  ['HTTP/1.1 request without Host', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', [400]],
  ['HTTP/1.1 request without Host, with a body', 'POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', [400]],
  ['HTTP/1.1 chunked request without Host', `POST / HTTP/1.1\r\n${TE}\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['Upgrade request with two Host fields', 'GET / HTTP/1.1\r\nHost: svc\r\nHost: evil\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', [400]],
  ['HTTP/1.1 Upgrade request without Host', 'GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', [400]],
  ['Content-Length and Transfer-Encoding (CL.TE)', `${HEAD}Content-Length: 6\r\n${TE}\r\n0\r\n\r\nG`, [400]],
  ['Transfer-Encoding and Content-Length (TE.CL)', `${HEAD}${TE}Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`, [400]],
  ['two differing Content-Length', `${HEAD}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, [400]],
  ['two equal Content-Length', `${HEAD}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, [400]],
  ['Content-Length list', `${HEAD}Content-Length: 5, 5\r\n\r\nhello`, [400]],
  ['Content-Length with a sign', `${HEAD}Content-Length: +5\r\n\r\nhello`, [400]],
  ['negative Content-Length', `${HEAD}Content-Length: -1\r\n\r\n`, [400]],
  ['hex Content-Length', `${HEAD}Content-Length: 0x5\r\n\r\nhello`, [400]],
  ['Content-Length with inner space', `${HEAD}Content-Length: 1 2\r\n\r\nhello hello!`, [400]],
  ['Transfer-Encoding not ending in chunked', `${HEAD}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['Transfer-Encoding gzip only', `${HEAD}Transfer-Encoding: gzip\r\n\r\nhello`, [400]],
  ['two Transfer-Encoding, the last not chunked (TE.TE)', `${HEAD}${TE}Transfer-Encoding: cow\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['Transfer-Encoding xchunked', `${HEAD}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['space before the colon', `${HEAD}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['vertical tab before chunked', `${HEAD}Transfer-Encoding:\x0bchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['obs-fold of Transfer-Encoding', `${HEAD}Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['Transfer-Encoding in an HTTP/1.0 request', `POST / HTTP/1.0\r\nHost: svc\r\n${TE}\r\n5\r\nhello\r\n0\r\n\r\n`, [400]],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\x00b\r\n\r\n', [400]],
  ['bare CR in a header value', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\rb\r\n\r\n', [400]],
  ['head lines ended by bare LF', 'GET / HTTP/1.1\nHost: svc\n\n', [400]],
  ['space in a header name', 'GET / HTTP/1.1\r\nHost: svc\r\nX A: b\r\n\r\n', [400]],
  ['header line without a colon', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A\r\n\r\n', [400]],
  ['space in the request target', 'GET /a b HTTP/1.1\r\nHost: svc\r\n\r\n', [400]],
  ['unknown HTTP version', 'GET / HTTP/1.7\r\nHost: svc\r\n\r\n', [400, 505]],
  ['head over 80 KiB', `GET / HTTP/1.1\r\nHost: svc\r\nX-Big: ${'a'.repeat(80 * 1024)}\r\n\r\n`, [400, 431]],
];

/** Sends `data` in one write; resolves with everything read until the proxy closes (or 15 s pass). */
function exchange(port: number, data: string | string[], gapMs = 0): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const parts = Array.isArray(data) ? data : [data];
    const s = net.connect(port, '127.0.0.1', async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!s.destroyed) s.write(p, 'latin1');
      }
    });
    let text = '';
    const done = (closed: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const t = setTimeout(() => done(false), 15_000);
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('end', () => done(true));
    s.on('close', () => done(true));
    s.on('error', () => done(true));
  });
}
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

/**
 * `splitAnswer`: what the client gets when the invalid chunk comes in a later read than the head
 * (already forwarded): the lean server answers 400; `node:http` has handed the response object to
 * the data path by then, so it closes the connection without an answer.
 */
export function describeSmuggling(server: string, splitAnswer: number[]): void {
  describe(`request smuggling shapes (${server} downstream server)`, () => {
    let upstream: http.Server;
    /** Bytes the upstream received since the last reset, and whole requests it served. */
    const seen = { bytes: 0, requests: 0 };
    let proxy: Proxy & { port: number };
    beforeAll(async () => {
      upstream = http.createServer((req, res) => {
        seen.requests++;
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
      });
      upstream.on('connection', (s: net.Socket) => s.on('data', (d: Buffer) => (seen.bytes += d.length)));
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      const upPort = (upstream.address() as AddressInfo).port;
      proxy = await startProxy({
        listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'up', timeout: '30s' } }]) })],
        clusters: [staticCluster('up', [upPort])],
      });
    });
    afterAll(async () => {
      await proxy.stop(100);
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    });

    // columns: shape, bytes sent, statuses accepted
    it.each(SMUGGLING_SHAPES)('%s: answered 400 and closed, nothing forwarded', async (_name, data, accepted) => {
      seen.bytes = 0;
      seen.requests = 0;
      const r = await exchange(proxy.port, data);
      await new Promise((res) => setTimeout(res, 50));
      expect(statuses(r.text)).toHaveLength(1);
      expect(accepted).toContain(statuses(r.text)[0]);
      expect(r.closed).toBe(true);
      // At once, not after an upstream timeout (30 s here; the defect answered after it): a bound
      // far below it and far above a busy machine's scheduling delays.
      expect(r.ms).toBeLessThan(10_000);
      expect(seen).toEqual({ bytes: 0, requests: 0 });
    });

    it.each([
      ['a chunked body', `${HEAD}${TE}\r\n5\r\nhello\r\n0\r\n\r\n`, 'POST / hello'],
      ['a content-length body', `${HEAD}Content-Length: 5\r\n\r\nhello`, 'POST / hello'],
      ['a chunked body with an extension and trailers', `${HEAD}${TE}\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n`, 'POST / hello'],
      // Host is required of HTTP/1.1 only (RFC 9112 §3.2); an HTTP/1.0 request may lack it.
      ['an HTTP/1.0 request without Host', 'POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello', 'POST / hello'],
    ])('still serves %s', async (_name, data, body) => {
      seen.requests = 0;
      const r = await exchange(proxy.port, `${data.replace('POST / HTTP/1.1\r\n', 'POST / HTTP/1.1\r\nConnection: close\r\n')}`);
      expect(statuses(r.text)).toEqual([200]);
      expect(r.text).toContain(body);
      expect(seen.requests).toBe(1);
    });

    it(`an invalid chunk size after the head was forwarded: ${splitAnswer.length ? 'one 400' : 'closed'}, the upstream request is abandoned`, async () => {
      seen.requests = 0;
      const r = await exchange(proxy.port, [`${HEAD}${TE}\r\n5\r\nhello\r\n`, 'zz\r\nworld\r\n0\r\n\r\n'], 100);
      expect(statuses(r.text)).toEqual(splitAnswer);
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(10_000);
      await new Promise((res) => setTimeout(res, 50));
      expect(r.text).not.toContain('POST / hello');
    });
  });
}
