import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Metadata, Server, ServerCredentials, credentials, makeGenericClientConstructor, status, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { httpListener, routeConfig, staticCluster, tcpListener } from '../test-support/resources.js';
import { tcpEchoUpstream, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

// Long-lived streams through the proxy: gRPC (HTTP/2, both directions, trailers), WebSocket
// (HTTP/1.1 Upgrade) and plain TCP.
const pass = (b: Buffer) => b;
const ECHO: ServiceDefinition = {
  Chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: pass, requestDeserialize: pass, responseSerialize: pass, responseDeserialize: pass },
  Fail: { path: '/test.Echo/Fail', requestStream: false, responseStream: false, requestSerialize: pass, requestDeserialize: pass, responseSerialize: pass, responseDeserialize: pass },
};
const EchoClient = makeGenericClientConstructor(ECHO, 'Echo');
type Client = InstanceType<typeof EchoClient> & Record<string, (...a: unknown[]) => unknown>;

/** A minimal real WebSocket echo server (RFC 6455 handshake and unmasking of short frames). */
function wsEchoServer(): Promise<{ port: number; close: () => void }> {
  const server = http.createServer();
  server.on('upgrade', (req, socket: net.Socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('data', (f: Buffer) => {
      const op = f[0]! & 0x0f;
      const len = f[1]! & 0x7f;
      if (op === 8 || len > 125) return socket.end();
      const mask = f.subarray(2, 6);
      const payload = Buffer.from(f.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
      const out = Buffer.from(`echo:${payload.toString()}`);
      socket.write(Buffer.concat([Buffer.from([0x80 | op, out.length]), out]));
    });
    socket.on('error', () => undefined);
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () =>
      r({
        port: (server.address() as AddressInfo).port,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

describe('streams through the proxy', () => {
  let grpcServer: Server;
  let grpcPort: number;
  let ws: { port: number; close: () => void };
  let tcp: Upstream;
  let proxy: Proxy & { port: number };

  beforeAll(async () => {
    grpcServer = new Server();
    grpcServer.addService(ECHO, {
      Chat: (call: ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (d: Buffer) => call.write(Buffer.from(`echo:${d.toString()}`)));
        call.on('end', () => {
          const md = new Metadata();
          md.set('x-summary', 'done');
          call.end(md);
        });
      },
      Fail: (_call: unknown, cb: (e: { code: number; details: string }) => void) => cb({ code: status.FAILED_PRECONDITION, details: 'nope' }),
    });
    grpcPort = await new Promise<number>((res, rej) => grpcServer.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    ws = await wsEchoServer();
    tcp = await tcpEchoUpstream('tcp');
    const routes = routeConfig('r', [
      { match: { prefix: '/test.Echo/', grpc: {} }, route: { cluster: 'grpc', timeout: '0s' } },
      { match: { prefix: '/ws' }, route: { cluster: 'ws' } },
    ]);
    proxy = await startProxy({
      listeners: [httpListener('outbound', { route_config: routes }, { upgrades: ['websocket'] }), tcpListener('tcp-out', 'tcp')],
      clusters: [staticCluster('grpc', [grpcPort], { http2_protocol_options: {} }), staticCluster('ws', [ws.port]), staticCluster('tcp', [tcp.port])],
    });
  });
  afterAll(async () => {
    await proxy.stop(100);
    grpcServer.forceShutdown();
    ws.close();
    await tcp.close();
  });

  const client = () => new EchoClient(`127.0.0.1:${proxy.port}`, credentials.createInsecure(), { 'grpc.default_authority': 'echo' }) as Client;

  it('passes a bidirectional gRPC stream, with trailers', async () => {
    const c = client();
    const call = c['Chat']!() as ReturnType<InstanceType<typeof EchoClient>['makeBidiStreamRequest']>;
    const got: string[] = [];
    const trailers = new Promise<Metadata>((r) => call.on('status', (s: { metadata: Metadata }) => r(s.metadata)));
    call.on('data', (d: Buffer) => {
      got.push(d.toString());
      if (got.length < 3) call.write(Buffer.from(`m${got.length + 1}`));
      else call.end();
    });
    call.write(Buffer.from('m1'));
    const md = await trailers;
    expect(got).toEqual(['echo:m1', 'echo:m2', 'echo:m3']);
    expect(md.get('x-summary')).toEqual(['done']);
    c.close();
  });

  it('forwards an upstream gRPC error status', async () => {
    const c = client();
    const err = await new Promise<{ code: number; details: string }>((r) => c['Fail']!(Buffer.from('x'), (e: { code: number; details: string }) => r(e)));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe('nope');
    c.close();
  });

  it('answers a gRPC client with grpc-status when the proxy itself fails the call', async () => {
    const c = new EchoClient(`127.0.0.1:${proxy.port}`, credentials.createInsecure(), { 'grpc.default_authority': 'echo' }) as Client;
    // A method outside every route: the proxy's 404 becomes UNIMPLEMENTED, as Envoy maps it.
    const NoRoute = makeGenericClientConstructor({ X: { ...ECHO['Fail']!, path: '/other.Svc/X' } }, 'Other');
    const o = new NoRoute(`127.0.0.1:${proxy.port}`, credentials.createInsecure()) as Client;
    const err = await new Promise<{ code: number }>((r) => o['X']!(Buffer.from('x'), (e: { code: number }) => r(e)));
    expect(err.code).toBe(status.UNIMPLEMENTED);
    o.close();
    c.close();
  });

  it('passes a WebSocket through (HTTP/1.1 Upgrade)', async () => {
    const sock = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws`);
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      sock.onopen = () => sock.send('hello');
      sock.onmessage = (e) => {
        messages.push(String(e.data));
        if (messages.length === 1) sock.send('again');
        else {
          sock.close();
          resolve();
        }
      };
      sock.onerror = () => reject(new Error('websocket error'));
    });
    expect(messages).toEqual(['echo:hello', 'echo:again']);
  });

  it('proxies plain TCP on a listener bound from its xDS address', async () => {
    const l = proxy.listening().find((x) => x.name === 'tcp-out');
    expect(l).toBeDefined();
    const port = Number(l!.address.split(':').pop());
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('ping'));
      let buf = '';
      s.on('data', (c: Buffer) => {
        buf += c.toString();
        if (buf.length >= 'tcp:ping'.length) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on('error', reject);
    });
    expect(reply).toBe('tcp:ping');
  });
});
