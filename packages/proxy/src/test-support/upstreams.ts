import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Real upstream servers for tests: each answers with its name so a test sees who served it. */
export interface Upstream {
  port: number;
  name: string;
  /** Requests seen, and distinct TCP connections accepted. */
  hits: number;
  connections: number;
  lastHeaders?: http.IncomingHttpHeaders;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, u: Upstream) => void;

const defaultHandler: Handler = (req, res, u) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': u.name });
    res.end(u.name);
  });
};

export async function httpUpstream(name: string, handler: Handler = defaultHandler): Promise<Upstream> {
  const u: Upstream = { port: 0, name, hits: 0, connections: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    u.hits++;
    u.lastHeaders = req.headers;
    handler(req, res, u);
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => u.connections++);
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    u.hits++;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\nx-upstream: ${name}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket); // echo
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

export async function h2Upstream(name: string, onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void): Promise<Upstream & { server: http2.Http2Server }> {
  const server = http2.createServer();
  const u = { port: 0, name, hits: 0, connections: 0, server, close: async () => undefined } as Upstream & { server: http2.Http2Server };
  server.on('stream', (s, h) => {
    u.hits++;
    onStream(s, h);
  });
  server.on('session', () => u.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  u.close = () =>
    new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    });
  return u;
}

/**
 * Listens on a free loopback port and keeps track of the server's sockets (`connection`, which
 * `Upgrade` sockets come through too): `close` destroys them and closes the server.
 */
export async function listenTracked(server: net.Server): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return { port, close };
}

export async function tcpEchoUpstream(name: string): Promise<Upstream> {
  const u: Upstream = { port: 0, name, hits: 0, connections: 0, close: async () => undefined };
  const server = net.createServer((s) => {
    u.connections++;
    s.write(`${name}:`);
    s.pipe(s);
  });
  Object.assign(u, await listenTracked(server));
  return u;
}

/** An HTTP/1.1 client with a keep-alive agent; resolves status, headers and body. */
export function request(
  port: number | string,
  opts: { path?: string; host?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; trailers: NodeJS.Dict<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...(typeof port === 'number' ? { host: '127.0.0.1', port } : { socketPath: port }),
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host: opts.host ?? 'svc', ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), trailers: res.trailers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
