import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { unlinkSync } from 'node:fs';
import type { Logger } from '@octo-mesh/runtime';
import type { ProxySnapshot, SocketAddr } from '../model.js';
import { addrKey } from '../model.js';
import { handleHttp, localReply, type DownstreamResponse, type HttpContext } from './http-proxy.js';
import { handleTcp, handleUpgrade } from './tcp-proxy.js';
import { LeanConnection, type LeanServerHooks } from './h1-server.js';
import { LEAN_CODEC } from './lean-http.js';

/** `node`: serve HTTP/1.1 with `node:http` instead of the lean server (h1-server.ts). */
const NODE_SERVER = process.env['OCTO_PROXY_DOWNSTREAM_CODEC'] === 'node' || !LEAN_CODEC;

/**
 * Where a listening socket comes from. The proxy binds it itself, or — under the LEGO agent,
 * which owns the sockets so that a new proxy version takes them over without dropping a
 * connection — it is an inherited file descriptor or a `net.Server` handle sent over the IPC
 * channel (`process.send({type: 'octo.listener', name}, server)`).
 */
export type SocketSpec = { kind: 'bind'; address: SocketAddr } | { kind: 'fd'; fd: number } | { kind: 'ipc' };

/** A socket listening for one named listener. */
interface Attachment {
  name: string;
  /** The bound address. */
  key: string;
  /** The address the config asked for (port 0 binds any free port), for xDS listeners. */
  wanted?: string;
  server: net.Server;
  /** Whether this process bound it (and so closes and unlinks it). */
  owned: boolean;
  pipePath?: string;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

/** Waits for a listening socket handed over by the parent process (the LEGO agent). */
export function receiveFromParent(name: string, timeoutMs = 10_000): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error(`listener ${name}: no IPC channel to receive the socket from`));
    const onMessage = (msg: unknown, handle: unknown) => {
      const m = msg as { type?: string; name?: string };
      if (m?.type === 'octo.listener' && m.name === name && handle instanceof net.Server) {
        clearTimeout(t);
        process.off('message', onMessage);
        resolve(handle);
      }
    };
    const t = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`listener ${name}: no socket from the parent within ${timeoutMs} ms`));
    }, timeoutMs);
    process.on('message', onMessage);
    process.send({ type: 'octo.listener.request', name });
  });
}

/**
 * The listening side of the data path. Connections are dispatched by listener name to whatever
 * the current snapshot says that listener is (HTTP, sniffing HTTP/1.1 vs. HTTP/2 prior knowledge,
 * or TCP), so a config update never rebinds a socket.
 */
export class ListenerManager {
  private readonly attachments: Attachment[] = [];
  private readonly h1 = new Map<string, http.Server>();
  private readonly h2 = new Map<string, http2.Http2Server>();
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.Http2Session>();
  private readonly lean = new Set<LeanConnection>();
  private readonly leanHooks = new Map<string, LeanServerHooks>();
  private draining = false;

  constructor(
    private readonly ctx: HttpContext,
    private readonly logger: Logger,
  ) {}

  /** Attaches a socket from `spec` to the listener `name`; resolves with its address. */
  async attach(name: string, spec: SocketSpec, wanted?: string): Promise<SocketAddr | undefined> {
    let server: net.Server;
    let owned = true;
    let pipePath: string | undefined;
    if (spec.kind === 'ipc') {
      server = await receiveFromParent(name);
      owned = false;
    } else {
      server = net.createServer({ noDelay: true, pauseOnConnect: false });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        if (spec.kind === 'fd') {
          owned = false;
          server.listen({ fd: spec.fd }, () => resolve());
        } else if (spec.address.kind === 'pipe') {
          pipePath = spec.address.path;
          try {
            unlinkSync(pipePath);
          } catch {
            // not there: fine
          }
          server.listen(pipePath, () => resolve());
        } else server.listen(spec.address.port, spec.address.host, () => resolve());
      });
    }
    server.on('connection', (s: net.Socket) => this.onConnection(name, s));
    server.on('error', (err) => this.logger.error('listener error', { listener: name, error: err.message }));
    const addr = server.address();
    const sockAddr: SocketAddr | undefined =
      typeof addr === 'string' ? { kind: 'pipe', path: addr } : addr ? { kind: 'tcp', host: addr.address, port: addr.port } : undefined;
    this.attachments.push({
      name,
      key: sockAddr ? addrKey(sockAddr) : `${name}#${this.attachments.length}`,
      server,
      owned,
      ...(wanted ? { wanted } : {}),
      ...(pipePath ? { pipePath } : {}),
    });
    this.logger.info('listening', { listener: name, address: sockAddr ? addrKey(sockAddr) : '(inherited)' });
    return sockAddr;
  }

  /** Binds listeners the snapshot names with an address, and closes those it no longer has. */
  sync(s: ProxySnapshot, fixed: ReadonlySet<string>): Promise<void> {
    // Serialised: two quick updates must not bind the same listener twice.
    this.syncing = this.syncing.then(() => this.syncNow(s, fixed));
    return this.syncing;
  }

  private syncing: Promise<void> = Promise.resolve();

  private async syncNow(s: ProxySnapshot, fixed: ReadonlySet<string>): Promise<void> {
    if (this.draining) return;
    for (const l of s.listeners.values()) {
      if (!l.address || fixed.has(l.name)) continue;
      const key = addrKey(l.address);
      if (this.attachments.some((a) => a.name === l.name && a.wanted === key)) continue;
      try {
        await this.attach(l.name, { kind: 'bind', address: l.address }, key);
      } catch (err) {
        this.logger.error('cannot bind listener', { listener: l.name, error: (err as Error).message });
      }
    }
    for (const a of [...this.attachments]) {
      if (fixed.has(a.name)) continue;
      const l = s.listeners.get(a.name);
      if (!l || !l.address || addrKey(l.address) !== a.wanted) this.detach(a);
    }
  }

  private detach(a: Attachment): void {
    this.attachments.splice(this.attachments.indexOf(a), 1);
    a.server.close();
    this.logger.info('listener removed', { listener: a.name });
  }

  addresses(): { name: string; address: string }[] {
    return this.attachments.map((a) => ({ name: a.name, address: a.key }));
  }

  private onConnection(name: string, socket: net.Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const l = this.ctx.snapshot().listeners.get(name);
    if (l?.filter.kind === 'tcp') {
      void handleTcp(this.ctx.clusters, this.ctx.stats, name, l.filter, socket, this.ctx.random);
      return;
    }
    // HTTP: HTTP/2 with prior knowledge starts with the connection preface, anything else is 1.x.
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const isH2 = chunk.subarray(0, H2_PREFACE.length).equals(H2_PREFACE.subarray(0, Math.min(chunk.length, H2_PREFACE.length)));
      if (!isH2 && !NODE_SERVER) {
        const conn = new LeanConnection(socket, this.hooksFor(name));
        this.lean.add(conn);
        socket.once('close', () => this.lean.delete(conn));
        socket.resume();
        return;
      }
      const server = isH2 ? this.h2Server(name) : this.h1Server(name);
      server.emit('connection', socket);
      // The HTTP/2 session reads the buffered preface itself and then consumes the socket natively.
      if (!isH2) socket.resume();
    });
  }

  private hooksFor(name: string): LeanServerHooks {
    let h = this.leanHooks.get(name);
    if (h) return h;
    h = {
      onRequest: (req, res) => {
        handleHttp(this.ctx, name, req, res).catch((err: Error) => {
          this.logger.error('request failed', { listener: name, error: err.stack });
          localReply(req, res, false, 500, 'internal-error');
        });
      },
      onUpgrade: (req, socket, head) => {
        handleUpgrade(this.ctx, name, req, socket, head).catch(() => socket.destroy());
      },
    };
    this.leanHooks.set(name, h);
    return h;
  }

  private h1Server(name: string): http.Server {
    let s = this.h1.get(name);
    if (s) return s;
    s = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      handleHttp(this.ctx, name, req, res).catch((err: Error) => {
        this.logger.error('request failed', { listener: name, error: err.stack });
        localReply(req, res, false, 500, 'internal-error');
      });
    });
    s.keepAliveTimeout = 60_000;
    s.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
      handleUpgrade(this.ctx, name, req, socket, head).catch(() => socket.destroy());
    });
    s.on('clientError', (_err, socket) => socket.destroy());
    this.h1.set(name, s);
    return s;
  }

  private h2Server(name: string): http2.Http2Server {
    let s = this.h2.get(name);
    if (s) return s;
    s = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, (req, h2res) => {
      const res = h2res as unknown as DownstreamResponse;
      handleHttp(this.ctx, name, req, res).catch((err: Error) => {
        this.logger.error('request failed', { listener: name, error: err.stack });
        localReply(req, res, String(req.headers['content-type'] ?? '').startsWith('application/grpc'), 500, 'internal-error');
      });
    });
    s.on('sessionError', () => undefined);
    s.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
    });
    this.h2.set(name, s);
    return s;
  }

  /**
   * Graceful drain: stop accepting, tell idle keep-alive and HTTP/2 clients to go away, let
   * in-flight requests finish for up to `timeoutMs`, then close what is left.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    for (const a of this.attachments) {
      a.server.close();
    }
    for (const s of this.h1.values()) {
      s.closeIdleConnections();
      s.close();
    }
    for (const s of this.h2.values()) s.close();
    // GOAWAY: HTTP/2 clients open no new streams; the session closes once its streams finish.
    for (const s of this.sessions) s.close();
    for (const c of this.lean) c.close();
    const deadline = Date.now() + timeoutMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      for (const s of this.h1.values()) s.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of this.sockets) s.destroy();
    for (const a of this.attachments) {
      if (a.owned && a.pipePath) {
        try {
          unlinkSync(a.pipePath);
        } catch {
          // already gone
        }
      }
    }
  }
}
