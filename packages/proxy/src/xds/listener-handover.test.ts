import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { TYPE_URL, type DeltaDiscoveryRequest, type DiscoveryRequest } from '@octo-mesh/proto';
import { XdsServerFixture } from '../test-support/xds-server.js';
import { pack, staticCluster, tcpListener } from '../test-support/resources.js';
import { tcpEchoUpstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { freePort } from '@octo-mesh/runtime';

// LDS updates that move an address from one Listener to another, and ones that cannot be bound,
// against a real ADS server (a test fixture) and real sockets.
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

type Req = DiscoveryRequest & DeltaDiscoveryRequest;

/** A client connection through the proxy: `say` writes and resolves with the next bytes read. */
async function open(port: number): Promise<{ say: (m: string) => Promise<string>; greeting: string; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const next = () =>
    new Promise<string>((resolve, reject) => {
      socket.once('data', (c: Buffer) => resolve(c.toString()));
      socket.once('close', () => reject(new Error('closed')));
    });
  const greeting = await next(); // the echo upstream says its name first
  return { greeting, socket, say: (m) => Promise.all([next(), socket.write(m)]).then(([r]) => r) };
}

async function setup(mode: 'sotw' | 'delta') {
  const a = await tcpEchoUpstream('a');
  const b = await tcpEchoUpstream('b');
  const xds = new XdsServerFixture();
  await xds.start();
  cleanup.push(async () => {
    await xds.stop();
    await a.close();
    await b.close();
  });
  const proxy = await startProxy(
    { clusters: [staticCluster('a', [a.port]), staticCluster('b', [b.port])] },
    { xds: { address: `127.0.0.1:${xds.port}`, mode }, xdsBackoff: { initialMs: 50, maxMs: 200 } },
  );
  cleanup.push(() => proxy.stop(100));
  /** Pushes listeners and resolves with the proxy's answer to that push (ACK or NACK). */
  const push = async (version: string, listeners: unknown[]): Promise<Req> => {
    const from = xds.requests.length;
    xds.set(TYPE_URL.listener, version, listeners.map((l) => pack(TYPE_URL.listener, l)));
    return xds.waitFor<Req>((r) => xds.requests.indexOf(r) >= from && r.typeUrl === TYPE_URL.listener && r.responseNonce !== '');
  };
  return { proxy, push };
}

describe.each(['sotw', 'delta'] as const)('listener address handover (%s)', (mode) => {
  it('moves an address from a Listener that goes to one that comes in one update, keeping the open connections', async () => {
    const { proxy, push } = await setup(mode);
    const port = await freePort();
    expect((await push('l1', [tcpListener('tcp-a', 'a', port)])).errorDetail).toBeUndefined();
    const old = await open(port);
    expect(old.greeting).toBe('a:');

    const ack = await push('l2', [tcpListener('tcp-b', 'b', port)]);
    expect(ack.errorDetail).toBeUndefined();
    if (mode === 'sotw') expect(ack.versionInfo).toBe('l2');
    // Bound by the time of the ACK: the very next connection reaches the new listener.
    expect((await open(port)).greeting).toBe('b:');
    expect(proxy.listening().filter((l) => l.address === `127.0.0.1:${port}`).map((l) => l.name)).toEqual(['tcp-b']);
    // The connection accepted by the old listener goes on.
    expect(await old.say('still here')).toBe('still here');
    old.socket.destroy();
  });

  it('NACKs an update whose listener cannot be bound, naming it and the address, and keeps the listeners in force', async () => {
    const { proxy, push } = await setup(mode);
    const port = await freePort();
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const takenPort = (taken.address() as AddressInfo).port;
    cleanup.push(() => new Promise((r) => taken.close(() => r())));
    expect((await push('l1', [tcpListener('tcp-a', 'a', port)])).errorDetail).toBeUndefined();

    // tcp-a's address goes to tcp-b, and tcp-c wants an address someone else holds: nothing changes.
    const nack = await push('l2', [tcpListener('tcp-b', 'b', port), tcpListener('tcp-c', 'b', takenPort)]);
    expect(nack.errorDetail?.message).toContain('"tcp-c"');
    expect(nack.errorDetail?.message).toContain(`127.0.0.1:${takenPort}`);
    if (mode === 'sotw') expect(nack.versionInfo).toBe('l1');
    expect((await open(port)).greeting).toBe('a:');
    expect(proxy.listening().filter((l) => l.name.startsWith('tcp-')).map((l) => l.name)).toEqual(['tcp-a']);
    expect(proxy.snapshot.listeners.has('tcp-b')).toBe(false);

    // The next good update is taken.
    const other = await freePort();
    const ack = await push('l3', [tcpListener('tcp-a', 'a', port), tcpListener('tcp-d', 'b', other)]);
    expect(ack.errorDetail).toBeUndefined();
    expect((await open(other)).greeting).toBe('b:');
    expect((await open(port)).greeting).toBe('a:');
  });
});
