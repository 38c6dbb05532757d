import type * as HttpT from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { unlinkSync } from 'node:fs';
import type { Logger } from '@octo-mesh/runtime';
import type { ProxySnapshot, SocketAddr } from '../model.js';
import { addrKey } from '../model.js';
import { handleHttp, localReply, type DownstreamRequest, type DownstreamResponse, type HttpContext } from './http-proxy.js';
import { handleTcp, handleUpgrade } from './tcp-proxy.js';
import { LeanConnection, LeanResponse, type LeanServerHooks } from './h1-server.js';
import { LEAN_CODEC } from './lean-http.js';
import { requestFramingError } from './h1-strict.js';
import { reportContainedErrors } from './contain.js';
import { DEFAULT_OVERLOAD, OverloadMonitor, type OverloadThresholds } from './overload.js';
import { deadline } from './timer-list.js';
import { boundH2Session, boundH2Stream } from './h2-hygiene.js';
import { DEFAULT_HTTP_TIMEOUTS, type DownstreamTlsModel, type HttpTimeouts, type ListenerModel, type ListenerTransport } from '../model.js';
import { handshakeFailure, isWarming, sansMatch, type ReadyTls, type TlsContexts } from './tls.js';

// node:http as its CommonJS object, not an ESM import (see lego-agent/src/admin.ts: an ESM import
// of node:http makes Node 24 load undici through its lazy WebSocket getters, ~5 MB per proxy).
const http = process.getBuiltinModule('node:http');

/** tls.Servers by the TLS context they serve (a new context after a rotation gets a new one). */
const tlsServers = new WeakMap<ReadyTls, Map<string, tls.Server>>();
/** Raw sockets in a TLS handshake: cancels the handshake's deadline. */
const tlsHandshaking = new WeakMap<net.Socket, () => void>();
/** Lean HTTP/1.1 connections over TLS: a handover drain closes them instead of moving them. */
const tlsLean = new WeakSet<LeanConnection>();

/**
 * Bounds on downstream connections (the settings `listenerConnectionLimit` and `overload*`; see
 * overload.ts for the overload rule).
 */
export interface ListenerLimits {
  /** Open downstream connections per listener name; the next one is closed as it is accepted. 0: no limit. */
  connectionsPerListener?: number;
  overload?: OverloadThresholds;
  /** Tests: where the overload pressure comes from, and how often it is sampled. */
  pressure?: () => number;
  overloadIntervalMs?: number;
  /** A private listener set (self-test.ts): contained errors stay reported by the proxy's own. */
  isolated?: boolean;
}

/** `node`: serve HTTP/1.1 with `node:http` instead of the lean server (h1-server.ts). */
let NODE_SERVER = process.env['OCTO_PROXY_DOWNSTREAM_CODEC'] === 'node' || !LEAN_CODEC;
/** Which server takes HTTP/1.1 connections accepted from now on. */
export const downstreamH1Codec = (): 'lean' | 'node' => (NODE_SERVER ? 'node' : 'lean');
/** From now on HTTP/1.1 connections are served by `node:http` (the start-up self-test's fallback, self-test.ts). */
export function serveH1WithNode(): void {
  NODE_SERVER = true;
}

/**
 * Where a listening socket comes from. The proxy binds it itself, or — under the LEGO agent,
 * which owns the sockets so that a new proxy version takes them over without dropping a
 * connection — it is an inherited file descriptor or a `net.Server` handle sent over the IPC
 * channel (`process.send({type: 'octo.listener', name}, server)`).
 */
export type SocketSpec = { kind: 'bind'; address: SocketAddr } | { kind: 'fd'; fd: number } | { kind: 'ipc'; id?: string };

/** Whether an attachment's socket and `address` would clash (same path; same port on the same or a wildcard host). */
function overlaps(a: Attachment, address: SocketAddr): boolean {
  const mine = a.addr;
  if (!mine) return false;
  if (mine.kind === 'pipe' || address.kind === 'pipe') return mine.kind === 'pipe' && address.kind === 'pipe' && mine.path === address.path;
  if (address.port === 0 || mine.port !== address.port) return false;
  const any = (h: string) => h === '0.0.0.0' || h === '::' || h === '';
  return mine.host === address.host || any(mine.host) || any(address.host);
}

/** A socket listening for one named listener. */
interface Attachment {
  name: string;
  /** The bound address. */
  key: string;
  /** The bound address (its actual port, for one that asked for port 0). */
  addr?: SocketAddr;
  /** The address the config asked for (port 0 binds any free port), for xDS listeners. */
  wanted?: string;
  server: net.Server;
  /** Whether this process bound it (and so closes and unlinks it). */
  owned: boolean;
  pipePath?: string;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const HEAD_TOO_LARGE = 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/**
 * How a proxy drains. `shutdown` (SIGTERM), as Istio drains a sidecar: `inbound` stops accepting
 * and closes its idle connections at once; `outbound` keeps serving the application until its
 * connections end or the drain timeout (see `drainForShutdown`).
 * `handover` (the LEGO agent starts a new version on the same sockets): an idle kept-alive
 * HTTP/1.1 connection stays open and its next request is answered with `connection: close`, so a
 * client never races the close with a request; those still idle at the drain timeout are closed.
 */
export type DrainMode = 'shutdown' | 'handover';

/**
 * Gives an idle kept-alive connection of listener `listener` to the proxy taking over (through
 * the LEGO agent); the socket has stopped reading and no longer belongs to this process's data path.
 */
export type HandOff = (listener: string, socket: net.Socket) => Promise<void>;

/**
 * Waits for a listening socket handed over by the parent process (the LEGO agent): a
 * `net.Server` already listening, or a raw bound TCP/Pipe handle (the agent keeps the socket
 * without accepting on it itself), on which this process listens.
 */
/** A socket from the parent: a server to attach, and `accept` to start accepting on it (once). */
export interface ParentSocket {
  server: net.Server;
  /**
   * Starts accepting. A raw handle (how the agent holds its sockets) is listened on only here, so
   * a proxy the agent starts beside a serving one takes no connection before it is configured:
   * until then the kernel gives every connection to the proxy that accepts already.
   */
  accept(): Promise<void>;
}

export function receiveFromParent(name: string, timeoutMs = 10_000, id = name): Promise<ParentSocket> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error(`listener ${name}: no IPC channel to receive the socket from`));
    const onMessage = (msg: unknown, handle: unknown) => {
      const m = msg as { type?: string; name?: string; id?: string };
      if (m?.type !== 'octo.listener' || m.name !== name || (m.id ?? m.name) !== id || !handle) return;
      clearTimeout(t);
      process.off('message', onMessage);
      if (handle instanceof net.Server) return resolve({ server: handle, accept: async () => {} });
      const server = net.createServer({ noDelay: true });
      let accepting: Promise<void> | undefined;
      const accept = () =>
        (accepting ??= new Promise<void>((ok, fail) => {
          server.once('error', fail);
          server.listen(handle as net.ListenOptions, 511, () => {
            server.off('error', fail);
            ok();
          });
        }));
      resolve({ server, accept });
    };
    const t = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`listener ${name}: no socket from the parent within ${timeoutMs} ms`));
    }, timeoutMs);
    process.on('message', onMessage);
    // `id` tells two sockets of one listener apart (`outbound` over TCP and `outbound-unix`).
    process.send({ type: 'octo.listener.request', name, id });
  });
}

/**
 * The listening side of the data path. Connections are dispatched by listener name to whatever
 * the current snapshot says that listener is (HTTP, sniffing HTTP/1.1 vs. HTTP/2 prior knowledge,
 * or TCP), so a config update never rebinds a socket.
 */
export class ListenerManager {
  private readonly attachments: Attachment[] = [];
  private readonly h1 = new Map<string, HttpT.Server>();
  private readonly h2 = new Map<string, http2.Http2Server>();
  private readonly sockets = new Set<net.Socket>();
  /** HTTP/2 sessions, by the listener that accepted them. */
  private readonly sessions = new Map<http2.Http2Session, string>();
  /** The listener's timeouts for the HTTP/2 session being created (set around its `connection` emit). */
  private h2Timeouts: HttpTimeouts | undefined;
  /** Lean HTTP/1.1 connections, by the listener that accepted them. */
  private readonly lean = new Map<LeanConnection, string>();
  /**
   * Connections that have not sent their first byte yet (the protocol sniff waits for it): in a
   * handover drain they move to the next proxy too — one adopted in a swap and left idle by its
   * client until the next swap is such a connection.
   */
  private readonly sniffing = new Map<net.Socket, { name: string; onFirst: (chunk: Buffer) => void; silent?: { cancel(): void } }>();
  private readonly leanHooks = new Map<string, LeanServerHooks>();
  private draining = false;
  /**
   * Set while draining for a handover: what happens to an HTTP connection of this process. One
   * whose first bytes arrive only after the drain began (accepted just before it) gets the same
   * treatment, or it would sit here until the deadline and close under its client.
   */
  private retireLean: ((c: LeanConnection, name: string) => void) | undefined;
  private retireSilent: ((socket: net.Socket) => void) | undefined;
  private retireH2: ((s: http2.Http2Session) => void) | undefined;
  /** Sockets from the parent not accepted on yet (see {@link acceptParentSockets}). */
  private readonly parked: { attachment: Attachment; accept: () => Promise<void> }[] = [];
  /** Open downstream connections by listener name (for `connectionsPerListener`). */
  private readonly open = new Map<string, number>();
  private readonly connectionLimit: number;
  readonly overload: OverloadMonitor;
  /** While a shutdown drains: the listeners that still accept (see {@link drainForShutdown}). */
  private stillAccepting: ((listener: string) => boolean) | undefined;
  /** node:http connections past `max_connection_duration`: their next response closes them. */
  private readonly expiring = new WeakSet<net.Socket>();
  /** Warming TLS chains already logged (listener and reason). */
  private readonly warnedWarming = new Set<string>();

  constructor(
    private readonly ctx: HttpContext,
    private readonly logger: Logger,
    limits: ListenerLimits = {},
  ) {
    this.connectionLimit = limits.connectionsPerListener ?? 0;
    this.overload = new OverloadMonitor(limits.overload ?? DEFAULT_OVERLOAD, limits.pressure, limits.overloadIntervalMs, (level, pressure) =>
      this.logger.warn('overload level changed', { level, action: ['none', 'stop accepting', 'no keep-alive', 'answer 503'][level], pressure: Math.round(pressure * 1000) / 1000 }),
    );
    this.overload.start();
    if (limits.isolated) return;
    reportContainedErrors((side, err) => {
      this.ctx.stats.containedErrors.inc({ side });
      const e = err instanceof Error ? err : new Error(String(err));
      this.logger.error('exception while handling a connection; that connection was closed', { side, error: e.message, stack: e.stack?.split('\n').slice(0, 8).join('\n') });
    });
  }

  /** Attaches a socket from `spec` to the listener `name`; resolves with its address. */
  async attach(name: string, spec: SocketSpec, wanted?: string): Promise<SocketAddr | undefined> {
    let server: net.Server;
    let owned = true;
    let pipePath: string | undefined;
    let parked: (() => Promise<void>) | undefined;
    if (spec.kind === 'ipc') {
      const received = await receiveFromParent(name, 10_000, spec.id ?? name);
      server = received.server;
      parked = received.accept;
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
    const attachment: Attachment = {
      name,
      key: sockAddr ? addrKey(sockAddr) : `${name}#${this.attachments.length}`,
      server,
      owned,
      ...(sockAddr ? { addr: sockAddr } : {}),
      ...(wanted ? { wanted } : {}),
      ...(pipePath ? { pipePath } : {}),
    };
    this.attachments.push(attachment);
    if (parked && !server.listening) {
      this.parked.push({ attachment, accept: parked });
      this.logger.info('socket from the agent held until the config is in force', { listener: name });
      return undefined;
    }
    this.logger.info('listening', { listener: name, address: sockAddr ? addrKey(sockAddr) : '(inherited)' });
    return sockAddr;
  }

  /** Whether sockets from the parent wait for {@link acceptParentSockets}. */
  get holdingParentSockets(): boolean {
    return this.parked.length > 0;
  }

  /** Starts accepting on the sockets from the parent (idempotent); resolves with their addresses. */
  async acceptParentSockets(): Promise<{ name: string; addr: SocketAddr }[]> {
    const out: { name: string; addr: SocketAddr }[] = [];
    for (const p of this.parked.splice(0)) {
      await p.accept();
      const addr = p.attachment.server.address();
      const sockAddr: SocketAddr | undefined = typeof addr === 'string' ? { kind: 'pipe', path: addr } : addr ? { kind: 'tcp', host: addr.address, port: addr.port } : undefined;
      if (sockAddr) {
        p.attachment.addr = sockAddr;
        p.attachment.key = addrKey(sockAddr);
        out.push({ name: p.attachment.name, addr: sockAddr });
      }
      this.logger.info('listening', { listener: p.attachment.name, address: sockAddr ? addrKey(sockAddr) : '(inherited)' });
    }
    return out;
  }

  /**
   * Binds listeners the snapshot names with an address, and closes those it no longer has. All or
   * nothing (unless `bestEffort`): a listener that cannot be bound rejects with an error naming it
   * and its address, and the listeners are as before. Listeners that go and whose address a coming
   * one takes are closed (stop accepting; their connections go on) before it is bound; the other
   * ones that go are closed once every new one is bound.
   */
  sync(s: ProxySnapshot, fixed: ReadonlySet<string>, bestEffort = false): Promise<void> {
    // Serialised: two quick updates must not bind the same listener twice.
    const run = this.syncing.then(() => this.syncNow(s, fixed, bestEffort));
    this.syncing = run.catch(() => undefined);
    return run;
  }

  private syncing: Promise<void> = Promise.resolve();
  /** The snapshot being put in force while its listeners are bound (connections on those may come first). */
  private pending: ProxySnapshot | undefined;

  private async syncNow(s: ProxySnapshot, fixed: ReadonlySet<string>, bestEffort: boolean): Promise<void> {
    if (this.draining) return;
    const going = this.attachments.filter((a) => {
      if (fixed.has(a.name)) return false;
      const l = s.listeners.get(a.name);
      return !l || !l.address || addrKey(l.address) !== a.wanted;
    });
    const coming = [...s.listeners.values()].filter(
      (l) => l.address && !fixed.has(l.name) && !this.attachments.some((a) => a.name === l.name && a.wanted === addrKey(l.address!)),
    );
    const bound: Attachment[] = [];
    const handedOver: Attachment[] = [];
    this.pending = s;
    try {
      for (const l of coming) {
        const address = l.address!;
        const key = addrKey(address);
        // A listener that goes and holds this address lets go of it first.
        const holders = going.filter((g) => overlaps(g, address));
        for (const a of holders) {
          if (handedOver.includes(a)) continue;
          this.detach(a);
          handedOver.push(a);
        }
        try {
          bound.push(await this.bindRetrying(l.name, address, key, holders.length > 0));
        } catch (err) {
          const error = new Error(`listener ${JSON.stringify(l.name)}: cannot bind ${key}: ${(err as Error).message}`);
          if (!bestEffort) throw error;
          this.logger.error('cannot bind listener', { listener: l.name, address: key, error: (err as Error).message });
        }
      }
    } catch (err) {
      // Back to the listeners as they were: the new ones closed, the handed-over ones bound again.
      for (const a of bound) this.detach(a);
      for (const a of handedOver) {
        if (!a.addr) continue;
        try {
          await this.bindRetrying(a.name, a.addr, a.wanted ?? a.key, true);
        } catch (e) {
          this.logger.error('cannot bind listener again', { listener: a.name, address: a.key, error: (e as Error).message });
        }
      }
      throw err;
    } finally {
      this.pending = undefined;
    }
    for (const a of going) if (!handedOver.includes(a)) this.detach(a);
  }

  /**
   * Binds one listener; when an address was just let go by a listener that goes (`handover`),
   * EADDRINUSE is retried for a short while (its close may still be under way).
   */
  private async bindRetrying(name: string, address: SocketAddr, wanted: string, handover: boolean): Promise<Attachment> {
    for (let i = 0; ; i++) {
      try {
        await this.attach(name, { kind: 'bind', address }, wanted);
        return this.attachments[this.attachments.length - 1]!;
      } catch (err) {
        if (!handover || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
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
    if (this.draining && !this.stillAccepting?.(name)) {
      socket.destroy();
      return;
    }
    // Shed at accept: a connection over the listener's limit, or any while overloaded, is closed
    // before it costs a parser or a buffer (Envoy's connection_limit filter and overload action
    // stop_accepting_connections do the same).
    const open = this.open.get(name) ?? 0;
    if (this.overload.level >= 1 || (this.connectionLimit > 0 && open >= this.connectionLimit)) {
      this.ctx.stats.refusedConnections.inc({ listener: name, reason: this.overload.level >= 1 ? 'overload' : 'connection_limit' });
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    this.open.set(name, open + 1);
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.open.set(name, (this.open.get(name) ?? 1) - 1);
    });
    socket.on('error', () => undefined);
    const l = this.ctx.snapshot().listeners.get(name) ?? this.pending?.listeners.get(name);
    if (l?.transport && this.ctx.tls) {
      this.inspect(name, socket, l.transport, l.filter.kind === 'http' ? l.filter.timeouts : DEFAULT_HTTP_TIMEOUTS, this.ctx.tls);
      return;
    }
    this.dispatch(name, socket, l);
  }

  /**
   * The TLS inspector: the first byte tells a TLS ClientHello (a handshake record, 0x16; RFC 8446
   * §5.1) from plaintext, which picks the filter chain (Envoy's `transport_protocol` match). No
   * chain for it: closed and counted (STRICT refuses plaintext). A TLS connection is terminated
   * with the chain's current context (a rotated certificate serves new connections; open ones
   * keep theirs) and then served as a plaintext one is.
   */
  private inspect(name: string, socket: net.Socket, t: ListenerTransport, timeouts: HttpTimeouts, contexts: TlsContexts): void {
    this.onFirstBytes(name, socket, timeouts, true, (chunk) => {
      socket.pause();
      socket.unshift(chunk);
      const current = this.ctx.snapshot().listeners.get(name) ?? this.pending?.listeners.get(name);
      const transport = current?.transport ?? t;
      if (chunk[0] !== 0x16) {
        if (!transport.plaintext) {
          this.ctx.stats.noFilterChain.inc({ listener: name, transport: 'raw_buffer' });
          socket.destroy();
          return;
        }
        this.dispatch(name, socket, current);
        if (current?.filter.kind !== 'tcp') socket.resume();
        return;
      }
      if (!transport.tls) {
        this.ctx.stats.noFilterChain.inc({ listener: name, transport: 'tls' });
        socket.destroy();
        return;
      }
      const ready = contexts.resolve(transport.tls);
      if (isWarming(ready)) {
        this.ctx.stats.tlsHandshakes.inc({ side: 'downstream', result: 'warming' });
        // Once per listener and reason: a warming listener may refuse many connections.
        const key = `${name}\0${ready.warming}`;
        if (!this.warnedWarming.has(key)) {
          this.warnedWarming.add(key);
          this.logger.warn('TLS connections closed while the filter chain is warming (counted in octo_proxy_tls_handshakes_total{result="warming"})', { listener: name, why: ready.warming });
        }
        socket.destroy();
        return;
      }
      this.tlsServer(name, ready, transport.tls).emit('connection', socket);
      // The handshake is bounded like a silent connection.
      const hs = timeouts.headersMs > 0 ? deadline(timeouts.headersMs, () => socket.destroy()) : undefined;
      if (hs) socket.once('close', () => hs.cancel());
      tlsHandshaking.set(socket, () => hs?.cancel());
    });
  }

  /** One `tls.Server` per listener and TLS context in force; it never listens, connections are handed to it. */
  private tlsServer(name: string, ready: ReadyTls, model: DownstreamTlsModel): tls.Server {
    let byName = tlsServers.get(ready);
    if (!byName) tlsServers.set(ready, (byName = new Map()));
    let server = byName.get(name);
    if (server) return server;
    server = tls.createServer({
      ...ready.options,
      requestCert: ready.verify,
      // Verified below, so that each refusal is counted by its reason.
      rejectUnauthorized: false,
      ...(ready.alpn.length ? { ALPNProtocols: ready.alpn } : {}),
    });
    server.on('secureConnection', (ts: tls.TLSSocket) => {
      const raw = (ts as unknown as { _parent?: net.Socket })._parent;
      if (raw) tlsHandshaking.get(raw)?.();
      const fail = (result: string, detail: string) => {
        this.ctx.stats.tlsHandshakes.inc({ side: 'downstream', result });
        this.logger.warn('downstream TLS refused', { listener: name, result, detail });
        ts.destroy();
      };
      if (ready.verify) {
        const cert = ts.getPeerCertificate();
        const presented = cert && Object.keys(cert).length > 0;
        if (!presented) {
          if (model.requireClientCertificate) return fail('fail_verify_no_cert', 'no client certificate');
        } else if (!ts.authorized) return fail('fail_verify_error', String(ts.authorizationError));
        else if (!sansMatch(ready.sans, cert.subjectaltname)) return fail('fail_verify_san', `SANs ${cert.subjectaltname ?? '(none)'} match no matcher`);
      }
      this.ctx.stats.tlsHandshakes.inc({ side: 'downstream', result: 'success' });
      ts.on('error', () => undefined);
      // A TCP chain chosen by the client's SNI (a mesh TCP port on the inbound listener) takes the connection as it is.
      const current = this.ctx.snapshot().listeners.get(name);
      const sni = typeof ts.servername === 'string' && current?.sniTcp?.find((c) => c.serverNames.includes(ts.servername as string));
      if (sni) {
        void handleTcp(this.ctx.clusters, this.ctx.stats, name, sni.filter, ts, this.ctx.random, this.logger);
        return;
      }
      this.dispatch(name, ts, current);
      if (!ts.isPaused() || this.ctx.snapshot().listeners.get(name)?.filter.kind !== 'tcp') ts.resume();
    });
    server.on('tlsClientError', (err: Error, ts: tls.TLSSocket) => {
      const result = handshakeFailure(err);
      this.ctx.stats.tlsHandshakes.inc({ side: 'downstream', result });
      this.logger.warn('downstream TLS handshake failed', { listener: name, result, error: err.message });
      ts.destroy();
    });
    byName.set(name, server);
    return server;
  }

  /** Serves an accepted (or TLS-terminated) connection by the listener's network filter. */
  private dispatch(name: string, socket: net.Socket, l: ListenerModel | undefined): void {
    const isTls = socket instanceof tls.TLSSocket;
    const timeouts = l?.filter.kind === 'http' ? l.filter.timeouts : DEFAULT_HTTP_TIMEOUTS;
    if (l?.filter.kind === 'tcp') {
      void handleTcp(this.ctx.clusters, this.ctx.stats, name, l.filter, socket, this.ctx.random, this.logger);
      return;
    }
    // HTTP: HTTP/2 with prior knowledge starts with the connection preface, anything else is 1.x.
    // A TLS connection cannot move to another process (its session state is here): it is not offered.
    this.onFirstBytes(name, socket, timeouts, !isTls, (chunk) => {
      socket.pause();
      socket.unshift(chunk);
      const isH2 = chunk.subarray(0, H2_PREFACE.length).equals(H2_PREFACE.subarray(0, Math.min(chunk.length, H2_PREFACE.length)));
      if (!isH2 && !NODE_SERVER) {
        const conn = new LeanConnection(socket, this.hooksFor(name), timeouts);
        if (isTls) tlsLean.add(conn);
        this.lean.set(conn, name);
        socket.once('close', () => this.lean.delete(conn));
        socket.resume();
        // After the first request is read (resume delivers it on the next tick).
        if (this.retireLean) setImmediate(() => this.lean.has(conn) && this.retireLean?.(conn, name));
        return;
      }
      if (!isH2) {
        // node:http reads these per connection check (every second, see h1Server).
        const h1 = this.h1Server(name);
        h1.requestTimeout = timeouts.requestMs;
        h1.headersTimeout = timeouts.requestMs > 0 && timeouts.headersMs > 0 ? Math.min(timeouts.headersMs, timeouts.requestMs) : timeouts.headersMs;
        h1.keepAliveTimeout = timeouts.idleMs;
        if (timeouts.maxConnectionMs > 0) {
          const life = deadline(timeouts.maxConnectionMs, () => {
            // This response, or the next one, says `connection: close` (see the request handler).
            this.expiring.add(socket);
            const current = (socket as net.Socket & { _httpMessage?: HttpT.ServerResponse })._httpMessage;
            if (current) current.shouldKeepAlive = false;
          });
          socket.once('close', () => life.cancel());
        }
      }
      const server = isH2 ? this.h2Server(name) : this.h1Server(name);
      // The session is created within this emit (its 'session' event reads these bounds).
      this.h2Timeouts = timeouts;
      server.emit('connection', socket);
      this.h2Timeouts = undefined;
      // The HTTP/2 session reads the buffered preface itself and then consumes the socket natively.
      if (!isH2) socket.resume();
    });
  }

  /**
   * Waits for a connection's first bytes. One that never sends a byte is idle too (the HTTP
   * servers see it only once it does) and is closed at the idle timeout; until it sends, a
   * handover drain may move it to the next proxy (`movable`, see handOverSilent).
   */
  private onFirstBytes(name: string, socket: net.Socket, timeouts: HttpTimeouts, movable: boolean, then: (chunk: Buffer) => void): void {
    const silent = timeouts.idleMs > 0 ? deadline(timeouts.idleMs, () => socket.destroy()) : undefined;
    socket.once('close', () => {
      silent?.cancel();
      this.sniffing.delete(socket);
    });
    const onFirst = (chunk: Buffer) => {
      silent?.cancel();
      this.sniffing.delete(socket);
      then(chunk);
    };
    if (movable) this.sniffing.set(socket, { name, onFirst, silent });
    socket.once('data', onFirst);
    if (movable) this.retireSilent?.(socket);
  }

  /**
   * Handover of a connection that has sent nothing yet: its reads stop in the kernel (`pause()`
   * alone leaves a socket like this one reading into its stream buffer), and when nothing was
   * read it goes to `give` with its bytes still unread; otherwise it was just about to be sniffed
   * and is retired as a sniffed connection is (see `onConnection`).
   */
  private handOverSilent(socket: net.Socket, give: (name: string, socket: net.Socket) => void): void {
    const s = this.sniffing.get(socket);
    if (!s || socket.destroyed) return;
    const h = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
    socket.pause();
    if (h && typeof h.readStop === 'function') {
      h.reading = false;
      h.readStop();
    }
    if (socket.readableLength > 0) {
      socket.resume();
      return;
    }
    this.sniffing.delete(socket);
    s.silent?.cancel();
    socket.removeListener('data', s.onFirst);
    this.sockets.delete(socket);
    give(s.name, socket);
  }

  /**
   * A kept-alive connection the previous proxy handed over in a LEGO swap: served as if accepted
   * on `listener` (its next bytes say HTTP/1.1 or HTTP/2). One for a listener this proxy does not
   * have, or arriving while it drains itself, is closed — the client reconnects.
   */
  adopt(listener: string, socket: net.Socket): boolean {
    if (this.draining || !this.attachments.some((a) => a.name === listener)) {
      socket.destroy();
      return false;
    }
    this.onConnection(listener, socket);
    return true;
  }

  /** One request on listener `name`; a failure of our own becomes a 500 and a log line. */
  private serve(name: string, req: DownstreamRequest, res: DownstreamResponse, isGrpc: boolean): void {
    const level = this.overload.level;
    if (level >= 2) {
      if (level >= 3) return localReply(req, res, isGrpc, 503, 'overloaded');
      if (res instanceof LeanResponse) res.closeAfter = true;
      else if (res instanceof http.ServerResponse) res.shouldKeepAlive = false;
    }
    const failed = (err: Error) => {
      this.logger.error('request failed', { listener: name, error: err.stack });
      localReply(req, res, isGrpc, 500, 'internal-error');
    };
    try {
      handleHttp(this.ctx, name, req, res)?.catch(failed);
    } catch (err) {
      failed(err as Error);
    }
  }

  private hooksFor(name: string): LeanServerHooks {
    let h = this.leanHooks.get(name);
    if (h) return h;
    h = {
      onRequest: (req, res) => this.serve(name, req, res, false),
      onUpgrade: (req, socket, head) => {
        handleUpgrade(this.ctx, name, req, socket, head).catch(() => socket.destroy());
      },
    };
    this.leanHooks.set(name, h);
    return h;
  }

  private h1Server(name: string): HttpT.Server {
    let s = this.h1.get(name);
    if (s) return s;
    // `node:http` reports a request from inside the parser, before it has parsed the rest of the
    // read: the request is served a microtask later, once a framing error in that read (an
    // invalid chunk, say) had its chance to reject the connection, so nothing of a malformed
    // request goes upstream. Responses already being served are tracked to tell whether a 400 can
    // still be written in order.
    const rejected = new WeakSet<net.Socket>();
    const served = new WeakSet<HttpT.ServerResponse>();
    const reject = (socket: net.Socket, answer: string) => {
      rejected.add(socket);
      const current = (socket as net.Socket & { _httpMessage?: HttpT.ServerResponse })._httpMessage;
      if (!socket.writable || (current && served.has(current))) socket.destroy();
      else socket.end(answer, 'latin1');
    };
    s = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: DEFAULT_HTTP_TIMEOUTS.headersMs, connectionsCheckingInterval: 1000 }, (req, res) => {
      if (requestFramingError(req.rawHeaders, req.httpVersionMinor) !== undefined) return reject(req.socket, BAD_REQUEST);
      if (this.expiring.has(req.socket)) res.shouldKeepAlive = false;
      queueMicrotask(() => {
        if (rejected.has(req.socket) || req.socket.destroyed) return;
        served.add(res);
        this.serve(name, req, res, false);
      });
    });
    s.keepAliveTimeout = DEFAULT_HTTP_TIMEOUTS.idleMs;
    // This server never listens (connections are handed to it): its 'listening' event is what
    // starts node:http's connection tracking and the once-a-second check that enforces
    // headersTimeout and requestTimeout, so it is emitted here.
    s.emit('listening');
    s.on('upgrade', (req: HttpT.IncomingMessage, socket, head: Buffer) => {
      // node:http's own Host check (`requireHostHeader`) skips upgrades: the same rules as above.
      if (requestFramingError(req.rawHeaders, req.httpVersionMinor) !== undefined) return reject(socket as net.Socket, BAD_REQUEST);
      handleUpgrade(this.ctx, name, req, socket, head).catch(() => socket.destroy());
    });
    s.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) =>
      reject(socket, err.code === 'HPE_HEADER_OVERFLOW' ? HEAD_TOO_LARGE : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST),
    );
    this.h1.set(name, s);
    return s;
  }

  private h2Server(name: string): http2.Http2Server {
    let s = this.h2.get(name);
    if (s) return s;
    s = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, (req, h2res) => {
      boundH2Stream(req);
      this.serve(name, req, h2res as unknown as DownstreamResponse, String(req.headers['content-type'] ?? '').startsWith('application/grpc'));
    });
    s.on('sessionError', () => undefined);
    s.on('session', (session: http2.ServerHttp2Session) => {
      boundH2Session(session, this.h2Timeouts ?? DEFAULT_HTTP_TIMEOUTS);
      this.sessions.set(session, name);
      session.once('close', () => this.sessions.delete(session));
      this.retireH2?.(session);
    });
    this.h2.set(name, s);
    return s;
  }

  /**
   * Graceful drain: stop accepting, tell idle keep-alive and HTTP/2 clients to go away, let
   * in-flight requests finish for up to `timeoutMs`, then close what is left.
   */
  async drain(timeoutMs: number, mode: DrainMode = 'shutdown', spreadMs = 0, handOff?: HandOff): Promise<void> {
    this.draining = true;
    this.overload.stop();
    if (mode === 'shutdown') return this.drainForShutdown(timeoutMs);
    const handover = mode === 'handover';
    // A handover may spread the connections' moves over `spreadMs` (each one marked at a random
    // moment in it), so the new proxy warms up on part of the traffic before all of it arrives,
    // rather than every client reconnecting in the same instant.
    const spread = handover ? Math.max(0, Math.min(spreadMs, timeoutMs / 2)) : 0;
    const later = (f: () => void) => (spread > 0 ? setTimeout(f, Math.random() * spread) : f());
    // Closing this process's listening handle stops its accepting; a socket handed over by the
    // LEGO agent stays open in the agent (and in the proxy that takes over).
    for (const a of this.attachments) {
      a.server.close();
    }
    for (const s of this.h1.values()) {
      if (!handover) s.closeIdleConnections();
      s.close();
    }
    for (const s of this.h2.values()) s.close();
    // GOAWAY: HTTP/2 clients open no new streams; the session closes once its streams finish.
    this.retireH2 = (s) => later(() => s.close());
    for (const s of this.sessions.keys()) this.retireH2(s);
    // With a successor that adopts connections, each idle kept-alive HTTP/1.1 connection moves to
    // it (socket and all) instead of waiting for a request to answer with `connection: close`.
    const give = handover ? handOff : undefined;
    const handing = new Set<Promise<void>>();
    this.retireLean = (c, name) =>
      later(() => {
        if (!give || tlsLean.has(c)) return c.close(handover);
        c.handOver((socket) => {
          this.lean.delete(c);
          this.sockets.delete(socket);
          // Node passes handles one at a time: the process must not exit while some still wait to go.
          const sent = give(name, socket).finally(() => handing.delete(sent));
          handing.add(sent);
        });
      });
    for (const [c, name] of this.lean) this.retireLean(c, name);
    if (give) {
      const send = (name: string, socket: net.Socket) => {
        const sent = give(name, socket).finally(() => handing.delete(sent));
        handing.add(sent);
      };
      this.retireSilent = (socket) => later(() => this.handOverSilent(socket, send));
      for (const socket of this.sniffing.keys()) this.retireSilent(socket);
    }
    const deadline = Date.now() + timeoutMs;
    if (spread > 0) await new Promise((r) => setTimeout(r, spread));
    while ((this.sockets.size > 0 || handing.size > 0) && Date.now() < deadline) {
      if (!handover) for (const s of this.h1.values()) s.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.closeTheRest(true);
  }

  /**
   * SIGTERM, as Istio drains its sidecar: the pod is going away, so peers must stop sending to it
   * first — `inbound` stops accepting at once, its idle connections close and busy ones close
   * after their response (HTTP/2: GOAWAY). The application may still be finishing its own work
   * and calling other services, so `outbound` (and listeners bound from xDS, which the app
   * calls) keep accepting and serving with keep-alive, until no connection is left (after at
   * least `min(1 s, timeoutMs)`, so a call made just after the signal still finds the proxy) or
   * `timeoutMs`. Then what is left is closed.
   */
  private async drainForShutdown(timeoutMs: number): Promise<void> {
    const first = (name: string) => name === 'inbound';
    this.stillAccepting = (name) => !first(name);
    const start = Date.now();
    const deadline = start + timeoutMs;
    const graceEnd = start + Math.min(1000, timeoutMs);
    for (const a of this.attachments) if (first(a.name)) a.server.close();
    for (const [c, name] of this.lean) if (first(name)) c.close(false);
    for (const [s, name] of this.sessions) if (first(name)) s.close();
    const inboundH1 = () => [...this.h1].filter(([name]) => first(name)).map(([, s]) => s);
    for (const s of inboundH1()) s.closeIdleConnections();
    while ((this.sockets.size > 0 || Date.now() < graceEnd) && Date.now() < deadline) {
      for (const s of inboundH1()) s.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 50));
    }
    this.stillAccepting = undefined;
    for (const a of this.attachments) a.server.close();
    for (const s of this.h1.values()) s.close();
    for (const s of this.h2.values()) s.close();
    for (const s of this.sessions.keys()) s.close();
    await this.closeTheRest();
  }

  /** `report`: a handover drain that reached its deadline says what held it (a swap took the whole drain). */
  private async closeTheRest(report = false): Promise<void> {
    // What is left at the deadline: idle kept-alive connections first (a FIN, not a reset), then
    // anything still open — long-lived streams (WebSocket, TCP, gRPC streams) end here.
    if (report && this.sockets.size > 0) {
      const lean: Record<string, number> = {};
      for (const c of this.lean.keys()) lean[c.drainState] = (lean[c.drainState] ?? 0) + 1;
      this.logger.warn('drain deadline: closing what is left', { sockets: this.sockets.size, lean, h2Sessions: this.sessions.size });
    }
    for (const c of this.lean.keys()) c.close(false);
    for (const s of this.h1.values()) s.closeIdleConnections();
    if (this.sockets.size > 0) await new Promise((r) => setTimeout(r, 20));
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
