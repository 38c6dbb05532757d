import { describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { containedErrors, reportContainedErrors } from './contain.js';
import { H1Pool } from './h1-client.js';
import { LeanConnection } from './h1-server.js';
import type { UpstreamResponse } from './upstream.js';

// An exception thrown while one connection's bytes are handled closes that connection only: it is
// counted and reported, the process (here: the test worker, which fails on an uncaught exception)
// serves on, and the next connection is served.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an exception in one connection callback', () => {
  it('downstream: closes that connection, counts it, and serves the next one', async () => {
    const reported: string[] = [];
    reportContainedErrors((side, err) => reported.push(`${side}: ${(err as Error).message}`));
    const before = containedErrors();
    const server = net.createServer((socket) => {
      new LeanConnection(socket, {
        onRequest: (req, res) => {
          if (req.url === '/boom') {
            // A bug in a body consumer: it throws from inside the socket's read callback.
            req.on('data', () => {
              throw new Error('boom in a body callback');
            });
            return;
          }
          res.writeHead(200, { 'content-length': 2 });
          res.end('ok');
        },
        onUpgrade: (_req, s) => s.destroy(),
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const bad = net.connect(port, '127.0.0.1');
    bad.on('error', () => undefined);
    const closed = new Promise((r) => bad.on('close', r));
    bad.write('POST /boom HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n');
    await sleep(50);
    bad.write('hello');
    await closed;
    expect(containedErrors()).toBe(before + 1);
    expect(reported).toEqual(['downstream: boom in a body callback']);
    const text = await new Promise<string>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let t = '';
      c.on('data', (d: Buffer) => (t += d.toString()));
      c.on('close', () => resolve(t));
    });
    expect(text).toMatch(/^HTTP\/1\.1 200[\s\S]*ok$/);
    server.close();
  });

  // columns: where the body consumer throws — on bytes queued before it listened (a microtask),
  // or on bytes handed to it straight from the socket's read callback
  it.each([['on queued bytes', '/queued'], ['inside the read callback', '/later']])('upstream, %s: closes that connection (the request fails as a reset), counts it, and the pool serves on', async (_name, path) => {
    const before = containedErrors();
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': 4 });
      if (req.url === '/later') res.flushHeaders();
      else res.write('ab');
      setTimeout(() => res.end(req.url === '/later' ? 'abcd' : 'cd'), 30);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = { kind: 'tcp' as const, host: '127.0.0.1', port: (server.address() as AddressInfo).port };
    const pool = new H1Pool(2, 1000);
    const get = (p = '/queued') =>
      new Promise<UpstreamResponse>((resolve, reject) => {
        const a = pool.request('h', addr, { method: 'GET', path: p, authority: 'up', headers: {}, framing: 'none' });
        a.body.end();
        a.settle((res, err) => (res ? resolve(res) : reject(err)));
      });
    const first = await get(path);
    const failed = new Promise<string>((resolve) => {
      first.body.on('data', () => {
        throw new Error('boom in a response body callback');
      });
      first.body.on('error', () => resolve('failed'));
      first.body.on('close', () => resolve('closed'));
    });
    expect(await failed).toMatch(/failed|closed/);
    expect(containedErrors()).toBe(before + 1);
    const second = await get();
    const body = await new Promise<string>((resolve) => {
      let s = '';
      second.body.on('data', (c: Buffer) => (s += c.toString()));
      second.body.on('end', () => resolve(s));
    });
    expect(body).toBe('abcd');
    pool.close();
    server.closeAllConnections();
    server.close();
  });
});
