import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { SocketAddr } from '../model.js';
import { parseResponseHead } from './h1-fast.js';
import { FAST_PARSE, HTTPParser, LeanBody, Outbox, readDirect, toHeaders, type Parser } from './lean-http.js';
import { AttemptError, Outcome, type Attempt, type BodySink, type Headers, type Settled, type UpstreamRequest, type UpstreamResponse } from './upstream.js';
import { contained } from './contain.js';
import { TLS_HANDSHAKE_ALLOWANCE_MS, tlsFailure } from './tls.js';
import { idleSweep, type IdleSweep } from './idle-sweep.js';
import { deadline } from './timer-list.js';

/**
 * A lean HTTP/1.1 client for upstream requests: our own keep-alive pool per host and Node's
 * llhttp binding (the parser `node:http` itself uses) instead of `http.request` + `http.Agent`,
 * which cost more CPU per proxied request than everything else the proxy does. Responses are
 * parsed as they arrive and their bodies streamed through a small pausable emitter.
 */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'te']);

/** The request side of one attempt: writes the head with the first body bytes (one syscall). */
class Sink extends EventEmitter implements BodySink {
  private headSent = false;
  finished = false;
  constructor(
    private readonly conn: Connection,
    private readonly seq: number,
    private readonly head: string,
    private readonly chunked: boolean,
    private readonly hasBody: boolean,
  ) {
    super();
  }
  /** False once the connection carries a later request: a late write must not leak into it. */
  private get live(): boolean {
    return this.conn.seq === this.seq && !this.conn.socket.destroyed;
  }
  write(c: Buffer): boolean {
    const s = this.conn.socket;
    if (this.finished || !this.live || !this.hasBody) return true;
    if (this.chunked && c.length === 0) return true;
    this.conn.out.flush();
    s.cork();
    if (!this.headSent) {
      s.write(this.head, 'latin1');
      this.headSent = true;
    }
    if (this.chunked) s.write(`${c.length.toString(16)}\r\n`, 'latin1');
    const ok = s.write(c);
    if (this.chunked) s.write('\r\n', 'latin1');
    s.uncork();
    if (!ok) s.once('drain', () => this.emit('drain'));
    return ok;
  }
  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.live) return;
    // The request's last bytes go out with this batch of events (see `Outbox.later`).
    const out = this.conn.out;
    if (!this.headSent) out.later(this.chunked ? `${this.head}0\r\n\r\n` : this.head);
    else if (this.chunked) out.later('0\r\n\r\n');
    this.headSent = true;
  }
}

/** One read buffer for every upstream connection: reads are parsed synchronously. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** One kept-alive upstream connection; carries one request at a time. */
class Connection {
  readonly socket: net.Socket;
  /** Writes held to the end of the batch (see `heldWrites`). */
  readonly out: Outbox;
  readonly parser: Parser;
  connected = false;
  busy = false;
  /** Counts requests on this connection; a request's sink only writes while it is current. */
  seq = 0;
  private sink: Sink | undefined;
  private rawHeaders: string[] = [];
  private inHeaders = true;
  /** The outcome of the request in flight, until its response head is handed over. */
  private outcome: Outcome | undefined;
  /** A response head parsed from the current read, handed over once the read is parsed. */
  private ready: UpstreamResponse | undefined;
  private body: LeanBody | undefined;
  /** The trailers of the response being read: its own box, so they stay its after the connection moves on. */
  private trailers: { t?: Headers } = {};
  private keepAlive = false;
  private head = false;
  /**
   * The cluster's upstream `idle_timeout` (Envoy's default 1 h): one shared sweep closes a
   * connection that waited in the pool that long (see idle-sweep.ts; no timer per request).
   */
  private readonly sweep: IdleSweep | undefined;
  lastTick = 0;

  constructor(
    private readonly pool: H1Pool,
    addr: SocketAddr,
    connectTimeoutMs: number,
  ) {
    this.sweep = pool.idleMs > 0 ? idleSweep(pool.idleMs) : undefined;
    // `onread` hands reads straight to the parser, past the Readable machinery; the buffer is
    // reused, which is safe because the parser binding copies every body piece it reports.
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number, buf: Buffer): boolean => {
        try {
          this.onBytes(buf.subarray(0, n));
        } catch (err) {
          // Contained (see contain.ts): this connection closes, its request fails as a reset.
          this.socket.destroy();
          contained('upstream', err);
        }
        return true;
      },
    };
    // A TLS cluster's connection (ClusterRuntime.tlsConnect): the TLS layer's plaintext is read
    // into the same buffer when its handle allows it (TLSWrap does), else through `data` events.
    const secure = pool.connect?.(addr);
    if (secure) {
      this.socket = secure;
      if (!readDirect(secure, READ_BUFFER, onread.callback)) secure.on('data', (b: Buffer) => onread.callback(b.length, b));
    } else this.socket = addr.kind === 'tcp' ? net.connect({ host: addr.host, port: addr.port, noDelay: true, onread }) : net.connect({ path: addr.path, onread });
    this.out = new Outbox(this.socket);
    // A deadline (timer-list.ts), not setTimeout: after a stall the connect already in the socket is seen first.
    const timer = deadline(secure ? connectTimeoutMs + TLS_HANDSHAKE_ALLOWANCE_MS : connectTimeoutMs, () =>
      this.socket.destroy(new AttemptError('connect-failure', secure ? 'upstream connect timeout (TCP and TLS handshake)' : 'upstream connect timeout')),
    );
    this.socket.once(secure ? 'secureConnect' : 'connect', () => {
      timer.cancel();
      this.connected = true;
    });
    this.parser = new HTTPParser();
    this.parser.initialize(HTTPParser.RESPONSE, {});
    this.parser[HTTPParser.kOnHeaders] = (h: string[]) => {
      if (this.inHeaders) this.rawHeaders.push(...h);
      else this.trailers.t = { ...this.trailers.t, ...toHeaders(h) };
    };
    this.parser[HTTPParser.kOnMessageBegin] = () => {
      this.inLlhttp = true;
    };
    this.parser[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, h: string[] | undefined, _m: unknown, _u: unknown, status: number, _msg: string, _upg: boolean, keepAlive: boolean) => {
      if (h) this.rawHeaders.push(...h);
      if (status >= 100 && status < 200) {
        this.rawHeaders = [];
        this.interim = true;
        return 0; // 1xx: wait for the final response
      }
      this.onHead(status, toHeaders(this.rawHeaders, HOP), keepAlive);
      return this.head ? 1 : 0; // 1 = skip body (HEAD)
    };
    // The binding hands over a fresh copy of each body piece; no need to copy again.
    this.parser[HTTPParser.kOnBody] = (b: Buffer) => this.body?.push(b);
    this.parser[HTTPParser.kOnMessageComplete] = () => {
      this.inLlhttp = false;
      // A 1xx is a message of its own: the final response is still to come.
      if (this.interim) this.interim = false;
      else this.onComplete();
    };
    this.socket.on('error', () => undefined);
    this.sweep?.add(this);
    this.socket.on('close', () => {
      timer.cancel();
      this.parser.finish();
      const err = (secure && tlsFailure(secure)) || new AttemptError(this.connected ? 'reset' : 'connect-failure', this.connected ? 'upstream reset' : 'upstream connect error');
      // Reused (an earlier request completed on it) and nothing of this response read.
      if (this.outcome && err.kind === 'reset' && this.seq > 1 && this.inHeaders && !this.inLlhttp && this.fastLeft === 0 && !this.ready) err.staleConnection = true;
      this.outcome?.reject(err);
      this.outcome = undefined;
      this.body?.fail(err);
      this.body = undefined;
      this.parser.close();
      this.sweep?.delete(this);
      this.pool.remove(this);
    });
  }

  /** Body bytes still to come of a response whose head the fast path parsed (see h1-fast.ts). */
  private fastLeft = 0;
  /** llhttp is inside a message: the next bytes are its, not a new head's. */
  private inLlhttp = false;
  /** The message llhttp is reading is an interim (1xx) response. */
  private interim = false;

  /**
   * Bytes read from the upstream. The response head is handed over after the whole read is
   * parsed, so that a body which came with it is there already (see LeanBody.takeAll).
   */
  private onBytes(b: Buffer): void {
    this.parse(b);
    const res = this.ready;
    if (res) {
      this.ready = undefined;
      const o = this.outcome;
      this.outcome = undefined;
      o?.resolve(res);
    }
  }

  /**
   * A response head the fast path takes is handled here, its body counted off by its length;
   * anything else goes to llhttp from the message's first byte on. Pieces of the shared read
   * buffer are copied before they leave (the next read reuses it).
   */
  private parse(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      if (this.fastLeft > 0) {
        const take = Math.min(this.fastLeft, b.length - off);
        this.body?.push(Buffer.from(b.subarray(off, off + take)));
        off += take;
        this.fastLeft -= take;
        if (this.fastLeft === 0) this.onComplete();
        continue;
      }
      if (FAST_PARSE && !this.inLlhttp && this.outcome && !this.ready && !this.head) {
        const h = parseResponseHead(b, off, HOP);
        if (h) {
          off = h.end;
          this.onHead(h.status, h.headers, h.keepAlive);
          this.fastLeft = h.contentLength;
          if (h.contentLength === 0) this.onComplete();
          continue;
        }
      }
      const r = this.parser.execute(off === 0 ? b : b.subarray(off));
      if (typeof r !== 'number') this.socket.destroy(new AttemptError('reset', `upstream protocol error: ${r.message}`));
      return;
    }
  }

  private onHead(status: number, headers: Headers, keepAlive: boolean): void {
    this.inHeaders = false;
    this.keepAlive = keepAlive;
    const body = new LeanBody(this.socket);
    this.body = body;
    const trailers = this.trailers;
    if (this.outcome) this.ready = { status, headers, body, trailers: () => trailers.t };
  }

  private onComplete(): void {
    const body = this.body;
    this.body = undefined;
    body?.finish();
    // Reusable only when the request went out whole (an early response, e.g. a 413 before the
    // upload ended, leaves the connection mid-request).
    if (this.keepAlive && this.sink?.finished) this.toPool();
    else this.socket.destroy();
  }

  /** Sends one request; the promise settles with the response head or the failure. */
  request(r: UpstreamRequest): Attempt {
    const chunked = r.framing === 'chunked';
    this.busy = true;
    this.head = r.method === 'HEAD';
    this.rawHeaders = [];
    this.inHeaders = true;
    this.trailers = {};
    let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${r.authority}\r\n`;
    for (const k in r.headers) {
      const v = r.headers[k]!;
      if (typeof v === 'string') head += `${k}: ${v}\r\n`;
      else for (const x of v) head += `${k}: ${x}\r\n`;
    }
    head += chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n';
    const outcome = new Outcome();
    this.outcome = outcome;
    const seq = ++this.seq;
    const sink = new Sink(this, seq, head, chunked, r.framing !== 'none');
    this.sink = sink;
    // A late abort (a timer firing after completion) must not hit a later request on this connection.
    return { body: sink, settle: (cb) => outcome.settle(cb), abort: () => void (this.seq === seq && this.busy && this.socket.destroy()) };
  }

  /** In the pool and not carrying a request (the sweep may close it). */
  get idle(): boolean {
    return !this.busy;
  }

  expire(): void {
    this.socket.destroy();
  }

  private toPool(): void {
    this.busy = false;
    if (this.sweep) this.lastTick = this.sweep.tick;
    // max_requests_per_connection: retire the connection once it carried that many.
    if (this.pool.maxRequestsPerConnection > 0 && this.seq >= this.pool.maxRequestsPerConnection) {
      this.socket.destroy();
      return;
    }
    if (!this.socket.destroyed) this.socket.resume();
    this.pool.release(this);
  }
}

/**
 * Keep-alive connections to one cluster's hosts, at most `maxConnections` in total; requests
 * beyond wait in a queue (the circuit breaker's "pending" requests). Most recently used first.
 */
export class H1Pool {
  /** Opens a TLS connection to a host for a TLS cluster (undefined: plaintext); see ClusterRuntime.tlsConnect. */
  connect: ((addr: SocketAddr) => net.Socket | undefined) | undefined;
  private readonly idleByHost = new Map<string, Connection[]>();
  private readonly waiting: { key: string; addr: SocketAddr; go: (c: Connection) => void }[] = [];
  total = 0;

  constructor(
    public maxConnections: number,
    public connectTimeoutMs: number,
    /** 0 = unlimited. */
    public maxRequestsPerConnection = 0,
    /** Closes a connection idle in the pool this long (0: never). */
    public idleMs = 0,
  ) {}

  private acquire(key: string, addr: SocketAddr, fresh = false): Connection | Promise<Connection> {
    const idle = this.idleByHost.get(key);
    while (idle && idle.length && !(fresh && this.total < this.maxConnections)) {
      const c = idle.pop()!;
      if (!c.socket.destroyed) return c;
    }
    if (this.total < this.maxConnections) {
      this.total++;
      return new Connection(this, addr, this.connectTimeoutMs);
    }
    return new Promise((go) => this.waiting.push({ key, addr, go }));
  }

  release(c: Connection): void {
    const w = this.waiting.shift();
    if (w) {
      // Hand over; a connection to another host is replaced by a new one.
      if (this.keyOf(c) === w.key) return w.go(c);
      c.socket.destroy();
      this.total++;
      return w.go(new Connection(this, w.addr, this.connectTimeoutMs));
    }
    const key = this.keyOf(c);
    let idle = this.idleByHost.get(key);
    if (!idle) this.idleByHost.set(key, (idle = []));
    idle.push(c);
  }

  private readonly keys = new WeakMap<Connection, string>();
  private keyOf(c: Connection): string {
    return this.keys.get(c) ?? '';
  }

  remove(c: Connection): void {
    this.total--;
    const idle = this.idleByHost.get(this.keyOf(c));
    if (idle) {
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
    }
    const w = this.waiting.shift();
    if (w) {
      this.total++;
      w.go(new Connection(this, w.addr, this.connectTimeoutMs));
    }
  }

  /** Starts one request to `addr` (keyed by `key`), on an idle connection when there is one. */
  request(key: string, addr: SocketAddr, r: UpstreamRequest): Attempt {
    const got = this.acquire(key, addr, r.fresh);
    if (!(got instanceof Promise)) {
      this.keys.set(got, key);
      return got.request(r);
    }
    // Queued: expose a sink that buffers until a connection frees up.
    const pending = new PendingAttempt();
    void got.then((c) => {
      this.keys.set(c, key);
      pending.start(c.request(r));
    });
    return pending;
  }

  close(): void {
    for (const list of this.idleByHost.values()) for (const c of list) c.socket.destroy();
    this.idleByHost.clear();
  }
}

/** An attempt waiting for a pooled connection (or a protocol choice): buffers the request body meanwhile. */
export class PendingAttempt extends EventEmitter implements Attempt, BodySink {
  private chunks: Buffer[] = [];
  private ended = false;
  private inner: Attempt | undefined;
  private aborted = false;
  private readonly outcome = new Outcome();
  readonly body: BodySink = this;
  settle(cb: Settled): void {
    this.outcome.settle(cb);
  }
  start(a: Attempt): void {
    if (this.aborted) {
      a.abort();
      return;
    }
    this.inner = a;
    a.body.on('drain', () => this.emit('drain'));
    for (const c of this.chunks) a.body.write(c);
    if (this.ended) a.body.end();
    a.settle((res, err) => this.outcome.settled(res, err));
  }
  write(c: Buffer): boolean {
    if (this.inner) return this.inner.body.write(c);
    this.chunks.push(c);
    return true;
  }
  end(): void {
    this.ended = true;
    this.inner?.body.end();
  }
  abort(): void {
    this.aborted = true;
    if (this.inner) this.inner.abort();
    else this.outcome.reject(new AttemptError('reset', 'aborted while waiting for a connection'));
  }
  /** No attempt could start (e.g. the connection that was to choose the protocol failed). */
  fail(err: AttemptError): void {
    if (!this.inner) this.outcome.reject(err);
  }
}
