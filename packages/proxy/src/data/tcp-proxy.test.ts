import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { startProxy } from '../test-support/proxy.js';
import { listenTracked } from '../test-support/upstreams.js';
import { freePort } from '@octo-mesh/runtime';
import type { Proxy } from '../proxy.js';

/**
 * An upstream that (after a pause) reads until the client's FIN, then answers with everything it read and closes
 * (after a pause, so the reply flows back over a half-closed connection): what it saw before the
 * FIN is recorded per connection.
 */
async function collectingUpstream(): Promise<{ port: number; received: string[]; close: () => Promise<void> }> {
  const received: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    // A slow reader: it starts reading only after a while, so the proxy has to hold on to what it is sending.
    s.pause();
    setTimeout(() => s.resume(), 50);
    replyWithAllAtEnd(s, [], received);
  });
  return { received, ...(await listenTracked(server)) };
}

/** Reads until the FIN, records what came, then answers `got:` and (after a pause, over the half-closed connection) all of it, and closes. */
function replyWithAllAtEnd(s: net.Socket, got: Buffer[], received: string[]): void {
  s.on('error', () => undefined);
  s.on('data', (c: Buffer) => got.push(c));
  s.on('end', () => {
    const all = Buffer.concat(got);
    received.push(all.toString());
    s.write('got:');
    setTimeout(() => s.end(all), 20);
  });
}

/** Connects to `port`, runs `send` on the socket, and resolves with everything read until the proxy closes. */
function exchange(port: number, send: (s: net.Socket) => void): Promise<{ reply: string; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    let error: string | undefined;
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', (e) => (error = e.message));
    s.on('close', () => resolve({ reply: Buffer.concat(got).toString(), ...(error ? { error } : {}) }));
    send(s);
  });
}

const tcpProxyListener = (name: string, cluster: string, maxConnectAttempts: number) => ({
  name,
  address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: name, cluster, max_connect_attempts: maxConnectAttempts },
        },
      ],
    },
  ],
});

// `direct`: the upstream connects at once. `retried`: the first host refuses, so the upstream
// connection is made only on the second attempt — by then the client's bytes and FIN have surely arrived.
describe.each(['direct', 'retried'] as const)('tcp_proxy (%s upstream connect): bytes and a half-close sent early', (mode) => {
  let up: Awaited<ReturnType<typeof collectingUpstream>>;
  let proxy: Proxy & { port: number };
  let port: number;

  beforeAll(async () => {
    up = await collectingUpstream();
    const ports = mode === 'direct' ? [up.port] : [await freePort(), up.port];
    proxy = await startProxy(
      { listeners: [tcpProxyListener('tcp-in', 'up', ports.length)], clusters: [staticCluster('up', ports, { lb_policy: 'RANDOM' })] },
      // RANDOM with random() = 0 picks the first host first: the refused one.
      { random: () => 0 },
    );
    port = Number(proxy.listening().find((l) => l.name === 'tcp-in')!.address.split(':').pop());
  });
  afterAll(async () => {
    await proxy.stop(100);
    await up.close();
  });

  it('delivers bytes written and half-closed at once (socket.end(data)), then the whole reply', async () => {
    const payload = 'hello, early bytes';
    // end() before the client's connection is even established: data and FIN leave together.
    const r = await exchange(port, (s) => s.end(payload));
    expect(up.received.at(-1)).toBe(payload);
    expect(r).toEqual({ reply: `got:${payload}` });
  });

  it('delivers several writes (more than a socket buffers) and the half-close, in order', async () => {
    const big = 'b'.repeat(8 * 1024 * 1024);
    const r = await exchange(port, (s) =>
      s.once('connect', () => {
        s.write('a');
        s.write(big);
        s.end('c');
      }),
    );
    expect(up.received.at(-1)?.length).toBe(big.length + 2);
    expect(up.received.at(-1) === `a${big}c`).toBe(true);
    expect(r.reply.length).toBe(4 + big.length + 2);
    expect(r.reply === `got:a${big}c`).toBe(true);
  });

  it('delivers bytes and a half-close that come later, then the whole reply', async () => {
    const r = await exchange(port, (s) => s.once('connect', () => setTimeout(() => s.end('late'), 50)));
    expect(up.received.at(-1)).toBe('late');
    expect(r).toEqual({ reply: 'got:late' });
  });
});

/** An upstream taking `Upgrade` requests: after the 101 it reads until the FIN, then answers with what it read (after a pause) and closes. */
async function upgradeUpstream(): Promise<{ port: number; received: string[]; close: () => Promise<void> }> {
  const received: string[] = [];
  const server = http.createServer();
  server.on('upgrade', (req: http.IncomingMessage, s: net.Socket, head: Buffer) => {
    s.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\n\r\n`);
    replyWithAllAtEnd(s, [head], received);
  });
  return { received, ...(await listenTracked(server)) };
}

describe('Upgrade splicing: bytes and a half-close sent with the request', () => {
  let up: Awaited<ReturnType<typeof upgradeUpstream>>;
  let proxy: Proxy & { port: number };

  beforeAll(async () => {
    up = await upgradeUpstream();
    proxy = await startProxy({
      listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'ws' } }]) }, { upgrades: ['websocket'] })],
      clusters: [staticCluster('ws', [up.port])],
    });
  });
  afterAll(async () => {
    await proxy.stop(100);
    await up.close();
  });

  const HEAD = 'GET /chat HTTP/1.1\r\nhost: ws\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n';

  it('delivers the bytes after the request head and the FIN, then the whole reply', async () => {
    const r = await exchange(proxy.port, (s) => s.end(`${HEAD}early bytes`));
    expect(up.received.at(-1)).toBe('early bytes');
    expect(r.reply).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n[^]*\r\n\r\ngot:early bytes$/);
  });

  it('delivers bytes and a FIN sent right after the request, then the whole reply', async () => {
    const big = 'w'.repeat(4 * 1024 * 1024);
    const r = await exchange(proxy.port, (s) =>
      s.once('connect', () => {
        s.write(HEAD);
        s.write(big);
        s.end('!');
      }),
    );
    expect(up.received.at(-1)?.length).toBe(big.length + 1);
    expect(r.reply.endsWith(`\r\n\r\ngot:${big}!`)).toBe(true);
  });
});
