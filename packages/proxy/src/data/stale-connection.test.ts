/**
 * A kept-alive upstream connection closed by the upstream just as a request goes out on it (the
 * app's idle close crossing the proxy's reuse, which a busy event loop notices late): a safe
 * request is sent again, once, on a new connection, and the client never sees it; an unsafe one
 * is not (the upstream may have acted on it) and fails as an upstream reset. Real sockets: the
 * upstream answers the first request of each connection and closes the connection, without a
 * byte, at the second.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { listenTracked, request } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

let upstream: { port: number; close: () => Promise<void> };
let proxy: Proxy & { port: number };
let connections = 0;
const seen: string[] = [];

beforeAll(async () => {
  const server = net.createServer((s) => {
    connections++;
    let requests = 0;
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        requests++;
        seen.push(`${head.split(' ', 2).join(' ')} #${requests} on connection ${connections}`);
        if (requests >= 2) return void s.destroy(); // the idle close, crossing the reuse
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
    s.on('error', () => undefined);
  });
  upstream = await listenTracked(server);
  proxy = await startProxy({ listeners: [httpListener('outbound', { route_config: routeConfig('outbound', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) })], clusters: [staticCluster('app', [upstream.port])] });
});
afterAll(async () => {
  await proxy.stop(100);
  await upstream.close();
});

const staleResends = async () => Number(/octo_proxy_upstream_stale_connection_retries_total\{cluster="app"\} (\d+)/.exec(await proxy.registry.metrics())?.[1] ?? 0);

describe('a kept-alive upstream connection found closed', () => {
  it('sends a GET again on a new connection, once, and the client gets the answer', async () => {
    expect(await request(proxy.port, { path: '/first' })).toMatchObject({ status: 200, body: 'ok' });
    const r = await request(proxy.port, { path: '/second' });
    expect(r).toMatchObject({ status: 200, body: 'ok' });
    expect(seen.slice(-2)).toEqual([`GET /second #2 on connection 1`, `GET /second #1 on connection 2`]);
    expect(await staleResends()).toBe(1);
  });

  it('does not send a POST again: it fails as an upstream reset', async () => {
    // Connection 2 carried one request; a POST on it is its second, and the upstream closes.
    const r = await request(proxy.port, { path: '/order', method: 'POST', body: 'x', headers: { 'content-length': '1' } });
    expect(r.status).toBe(503);
    expect(r.headers['x-octo-reason'] ?? r.body).toMatch(/upstream-reset/);
    expect(seen.at(-1)).toBe('POST /order #2 on connection 2');
    expect(await staleResends()).toBe(1);
  });
});
