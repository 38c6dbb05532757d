import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type net from 'node:net';
import { parseRequestHead } from './h1-fast.js';
import { contained } from './contain.js';
import { requestFramingError } from './h1-strict.js';
import { deadline, type Deadline } from './timer-list.js';
import { DEFAULT_HTTP_TIMEOUTS, type HttpTimeouts } from '../model.js';
import { idleSweep, type IdleSweep, type Sweepable } from './idle-sweep.js';
import { DOWNSTREAM_READ_BUFFER, FAST_PARSE, HTTPParser, LeanBody, METHODS, Outbox, readDirect, toHeaders, type Parser } from './lean-http.js';
import type { DownstreamRequest, DownstreamResponse } from './http-proxy.js';

// node:http as its CommonJS object, not an ESM import (see lego-agent/src/admin.ts: an ESM import
// of node:http makes Node 24 load undici through its lazy WebSocket getters, ~5 MB per proxy).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

/**
 * The lean HTTP/1.1 server side of a listener: llhttp over the raw socket, a light request
 * object and a response writer that sends head and body in one write. It serves keep-alive and
 * pipelined requests one at a time, in order; `Upgrade` requests are handed to `onUpgrade` with
 * the socket, as `node:http` would.
 */
export interface LeanServerHooks {
  onRequest(req: LeanRequest, res: LeanResponse): void;
  onUpgrade(req: LeanRequest, socket: net.Socket, head: Buffer): void;
}

/** A request as the data path reads it (the subset of `IncomingMessage` it uses). */
export class LeanRequest extends LeanBody implements DownstreamRequest {
  constructor(
    flow: net.Socket,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly headers: Record<string, string | string[]>,
    readonly httpVersionMinor: number,
    readonly socket: net.Socket,
  ) {
    super(flow, 'downstream');
  }
  readonly httpVersionMajor = 1;
  /** The request is known to have no body at all (complete before it was handed out). */
  empty = false;
  get httpVersion(): string {
    return `1.${this.httpVersionMinor}`;
  }
}

function headerBlock(headers: OutgoingHttpHeaders): string {
  let out = '';
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out += `${k}: ${x}\r\n`;
    else out += `${k}: ${v}\r\n`;
  }
  return out;
}

/** Writes one response: head with the first bytes, `content-length` as given, else chunked. */
export class LeanResponse extends EventEmitter implements DownstreamResponse {
  headersSent = false;
  private head = '';
  private chunked = false;
  private noBody = false;
  private finished = false;
  private trailers: OutgoingHttpHeaders | undefined;
  /** Set when the connection must close after this response. */
  closeAfter: boolean;

  constructor(
    private readonly conn: LeanConnection,
    private readonly socket: net.Socket,
    private readonly isHead: boolean,
    keepAlive: boolean,
  ) {
    super();
    this.closeAfter = !keepAlive;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    if (this.headersSent || this.head) return this;
    this.noBody = this.isHead || status === 204 || status === 304 || (status >= 100 && status < 200);
    let framing = '';
    if (headers['content-length'] === undefined && !this.noBody) {
      this.chunked = true;
      framing = 'transfer-encoding: chunked\r\n';
    }
    if (this.closeAfter) framing += 'connection: close\r\n';
    this.head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n${headerBlock(headers)}${framing}\r\n`;
    return this;
  }

  flushHeaders(): void {
    if (!this.head) this.writeHead(200);
    if (this.headersSent) return;
    this.headersSent = true;
    this.conn.out.flush();
    this.socket.write(this.head, 'latin1');
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.socket.destroyed) return false;
    if (!this.head) this.writeHead(200);
    const s = this.socket;
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const body = !this.noBody && len > 0;
    let ok = true;
    if (!this.headersSent && body && typeof chunk !== 'string') {
      // The usual case: the head goes out with the first body bytes, as one buffer and one
      // write — cheaper than corking a string and a buffer into a writev — at the end of this
      // batch of events (see `Outbox.later`).
      this.headersSent = true;
      const pre = this.chunked ? `${this.head}${len.toString(16)}\r\n` : this.head;
      const post = this.chunked ? 2 : 0;
      const out = Buffer.allocUnsafe(pre.length + len + post);
      out.write(pre, 0, 'latin1');
      chunk.copy(out, pre.length);
      if (post) out.write('\r\n', pre.length + len, 'latin1');
      this.conn.out.later(out);
    } else {
      this.conn.out.flush();
      s.cork();
      if (!this.headersSent) {
        this.headersSent = true;
        s.write(this.head, 'latin1');
      }
      if (body) {
        if (this.chunked) s.write(`${len.toString(16)}\r\n`, 'latin1');
        ok = s.write(chunk);
        if (this.chunked) s.write('\r\n', 'latin1');
      }
      s.uncork();
    }
    if (!ok) s.once('drain', () => this.emit('drain'));
    return ok;
  }

  addTrailers(headers: OutgoingHttpHeaders): void {
    this.trailers = { ...this.trailers, ...headers };
  }

  end(chunk?: Buffer | string): this {
    if (this.finished) return this;
    if (!this.head) this.writeHead(200, chunk === undefined ? { 'content-length': 0 } : { 'content-length': Buffer.byteLength(chunk) });
    const s = this.socket;
    // What completes the response goes out with the batch (nothing for a content-length body
    // already written).
    if (chunk !== undefined) this.write(chunk);
    else if (!this.headersSent) {
      this.headersSent = true;
      this.conn.out.later(this.head);
    }
    if (this.chunked && !s.destroyed) this.conn.out.later(`0\r\n${this.trailers ? headerBlock(this.trailers) : ''}\r\n`);
    this.finished = true;
    this.emit('finish');
    this.emit('close');
    this.conn.responseDone(this);
    return this;
  }

  destroy(): this {
    if (!this.finished) {
      this.finished = true;
      this.socket.destroy();
    }
    return this;
  }

  /** The connection went away before the response was complete. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.emit('close');
  }
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/** One downstream HTTP/1.1 connection. */
export class LeanConnection implements Sweepable {
  private readonly parser: Parser;
  private rawHeaders: string[] = [];
  private url = '';
  /** Requests parsed but not yet answered, in order; the first one is being served. */
  private readonly queue: { req: LeanRequest; res: LeanResponse; started: boolean }[] = [];
  /**
   * Inside `parser.execute`: a request llhttp reports is queued but not dispatched until the
   * whole read is parsed, so a framing error later in the same read (an invalid chunk, a
   * `Transfer-Encoding` llhttp rejects after reporting the head) drops it before anything of it
   * goes upstream.
   */
  private parsing = false;
  private closing = false;
  private upgrading: LeanRequest | undefined;
  /** Reads come through `readDirect` (into a shared buffer) rather than `data` events. */
  private readonly direct: boolean;
  /** Handed over to the upgrade path or to another process: reads are no longer ours. */
  private detached = false;
  /** Set by `handOver`: where the socket goes once the connection is idle. */
  private handoff: ((socket: net.Socket) => void) | undefined;
  private handedOff = false;
  /** Closes the connection after `timeouts.idleMs` without a request (none when 0). */
  private readonly sweep: IdleSweep | undefined;
  private readonly timeouts: HttpTimeouts;
  /** `timeouts.headersMs` for the head being read (armed by llhttp's message begin; whole heads the fast path takes need none). */
  private headTimer: Deadline | undefined;
  /** `timeouts.requestMs` for the request being received. */
  private requestTimer: Deadline | undefined;
  /** `timeouts.maxConnectionMs`. */
  private lifeTimer: Deadline | undefined;
  lastTick = 0;
  /** Writes held to the end of the batch (see `heldWrites`); its responses write through it too. */
  readonly out: Outbox;

  constructor(
    private readonly socket: net.Socket,
    private readonly hooks: LeanServerHooks,
    timeouts: Partial<HttpTimeouts> = {},
  ) {
    this.timeouts = { ...DEFAULT_HTTP_TIMEOUTS, ...timeouts };
    this.out = new Outbox(socket);
    const p = new HTTPParser();
    this.parser = p;
    p.initialize(HTTPParser.REQUEST, {});
    p[HTTPParser.kOnHeaders] = (h: string[], url: string) => {
      this.rawHeaders.push(...h);
      this.url += url;
    };
    p[HTTPParser.kOnMessageBegin] = () => {
      this.inLlhttp = true;
      if (this.timeouts.headersMs > 0 && !this.headTimer) this.headTimer = deadline(this.timeouts.headersMs, this.onHeadTimeout);
    };
    p[HTTPParser.kOnHeadersComplete] = (_maj: number, minor: number, h: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) => {
      const raw = h ? (this.rawHeaders.length ? [...this.rawHeaders, ...h] : h) : this.rawHeaders;
      const fullUrl = this.url + (url ?? '');
      this.rawHeaders = [];
      this.url = '';
      this.headTimer?.cancel();
      this.headTimer = undefined;
      // Nothing after a rejected head is read as a request (see `parse`).
      if (this.badRequest || requestFramingError(raw, minor) !== undefined) {
        this.badRequest = true;
        return 0;
      }
      const m = METHODS[method] ?? 'GET';
      if (upgrade) {
        this.upgrading = new LeanRequest(socket, m, fullUrl, raw, toHeaders(raw) as Record<string, string | string[]>, minor, socket);
        return 0;
      }
      this.onHead(m, fullUrl, raw, toHeaders(raw) as Record<string, string | string[]>, minor, keepAlive);
      return 0;
    };
    p[HTTPParser.kOnBody] = (b: Buffer) => {
      if (!this.badRequest) this.current()?.push(b);
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      this.inLlhttp = false;
      if (!this.badRequest) this.current()?.finish();
    };
    if (this.timeouts.idleMs > 0) {
      this.sweep = idleSweep(this.timeouts.idleMs);
      this.sweep.add(this);
    }
    if (this.timeouts.maxConnectionMs > 0) this.lifeTimer = deadline(this.timeouts.maxConnectionMs, () => {
        // The response in progress, or an idle connection's next one, says `connection: close`:
        // a client never sends a request into a connection that is closing.
        this.lifeTimer = undefined;
        this.close(true);
      });
    // Bytes already read (the protocol sniff) arrive as `data`; later reads go straight to the
    // parser when the socket can read directly into the shared buffer.
    socket.on('data', this.onData);
    this.direct = readDirect(socket, DOWNSTREAM_READ_BUFFER, (n, buf) => {
      if (this.detached) socket.emit('data', Buffer.from(buf.subarray(0, n)));
      else this.onData(buf.subarray(0, n));
      return true;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.handedOff) return;
      for (const { req, res } of this.queue) {
        if (!req.complete) req.emit('aborted');
        req.fail(new Error('downstream closed'));
        res.abort();
      }
      this.queue.length = 0;
      this.sweep?.delete(this);
      this.stopTimers();
      p.close();
    });
  }

  /** The request whose body is being parsed: the most recent one. */
  private current(): LeanRequest | undefined {
    return this.queue[this.queue.length - 1]?.req;
  }

  /** A request is ready: queue it with its response, and serve it unless an earlier one is still being served. */
  private onHead(m: string, url: string, raw: string[], headers: Record<string, string | string[]>, minor: number, keepAlive: boolean, empty = false): void {
    const socket = this.socket;
    const req = new LeanRequest(socket, m, url, raw, headers, minor, socket);
    if (empty) {
      // Known to have no body: complete before anyone reads it, so nobody has to.
      req.empty = true;
      req.finish();
    }
    if (headers['expect'] === '100-continue') {
      this.out.flush();
      socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    }
    const res = new LeanResponse(this, socket, m === 'HEAD', keepAlive && minor >= 1 && !this.closing);
    if (this.timeouts.requestMs > 0 && !req.complete) {
      this.requestTimer?.cancel();
      this.requestTimer = deadline(this.timeouts.requestMs, () => this.onRequestTimeout(req));
    }
    this.queue.push({ req, res, started: false });
    if (this.queue.length === 1) {
      if (!this.parsing) this.dispatch();
    } else socket.pause(); // pipelined: the next request waits for this one's response
  }

  /** Body bytes still to come of a request whose head the fast path parsed (see h1-fast.ts). */
  private fastLeft = 0;
  /** llhttp is inside a message: the next bytes are its, not a new head's. */
  private inLlhttp = false;
  /** A malformed request was read: nothing after it is, and a 400 follows the earlier responses. */
  private badRequest = false;

  /**
   * Bytes from the client. A request head the fast path takes is handled here, its body counted
   * off by its length; anything else goes to llhttp from the message's first byte on. Pieces of
   * the shared read buffer are copied before they leave (the next read reuses it).
   */
  private readonly onData = (d: Buffer): void => {
    try {
      this.read(d);
    } catch (err) {
      this.fail(err);
    }
  };

  /**
   * An exception while this connection's bytes were handled (see contain.ts): its requests are
   * aborted (their upstream attempts too), the connection closes, the process serves on.
   */
  private fail(err: unknown): void {
    this.badRequest = true;
    for (const { req, res } of this.queue.splice(0)) {
      try {
        if (!req.complete) req.emit('aborted');
        req.fail(new Error('connection closed after an internal error'));
        res.abort();
      } catch {
        // already failing: the socket closes below either way
      }
    }
    this.stopTimers();
    this.socket.destroy();
    contained('downstream', err);
  }

  private read(d: Buffer): void {
    if (this.badRequest) return;
    if (this.sweep) this.lastTick = this.sweep.tick;
    let off = 0;
    while (off < d.length) {
      if (this.fastLeft > 0) {
        const take = Math.min(this.fastLeft, d.length - off);
        this.current()?.push(Buffer.from(d.subarray(off, off + take)));
        off += take;
        this.fastLeft -= take;
        if (this.fastLeft === 0) this.current()?.finish();
        continue;
      }
      if (FAST_PARSE && !this.inLlhttp) {
        const h = parseRequestHead(d, off);
        if (h) {
          off = h.end;
          this.onHead(h.method, h.url, h.rawHeaders, h.headers, 1, h.keepAlive, h.contentLength === 0);
          this.fastLeft = h.contentLength;
          continue;
        }
      }
      this.parse(off === 0 ? d : d.subarray(off));
      return;
    }
  };

  private parse(d: Buffer): void {
    this.parsing = true;
    const r = this.parser.execute(d);
    this.parsing = false;
    if (typeof r !== 'number' || this.badRequest) {
      this.badRequest = true;
      // The request whose head or body was malformed never reaches the upstream (when it came
      // in this read) or is abandoned there (when its head came in an earlier one).
      const last = this.queue[this.queue.length - 1];
      if (last && !last.req.complete) {
        this.queue.pop();
        if (last.started) {
          last.req.emit('aborted');
          last.req.fail(new Error('malformed request body'));
          if (last.res.headersSent) {
            // Part of a response went out already: no 400 can follow it.
            last.res.abort();
            this.socket.destroy();
            return;
          }
          last.res.abort();
        }
      }
      // Requests before the bad one are answered first; then the 400, and the connection closes.
      if (this.queue.length === 0) this.end(BAD_REQUEST);
      else {
        this.socket.pause();
        if (!this.queue[0]!.started) this.dispatch();
      }
      return;
    }
    if (this.queue.length > 0 && !this.queue[0]!.started) this.dispatch();
    if (this.upgrading) {
      const req = this.upgrading;
      this.upgrading = undefined;
      this.socket.removeListener('data', this.onData);
      this.sweep?.delete(this);
      this.stopTimers();
      this.detached = true;
      // Direct reads land in a shared buffer: stop reading until the upgrade path takes over
      // (it resumes), and keep a copy of the bytes after the head.
      if (this.direct) this.socket.pause();
      this.out.flush();
      this.hooks.onUpgrade(req, this.socket, this.direct ? Buffer.from(d.subarray(r)) : d.subarray(r));
    }
  }

  private dispatch(): void {
    const next = this.queue[0];
    if (!next) return;
    next.started = true;
    try {
      this.hooks.onRequest(next.req, next.res);
    } catch {
      next.res.destroy();
    }
  }

  /** Called by a response when it is complete: serve the next pipelined request, or idle. */
  responseDone(res: LeanResponse): void {
    const i = this.queue.findIndex((x) => x.res === res);
    if (i < 0) return;
    const [done] = this.queue.splice(i, 1);
    if (this.sweep) this.lastTick = this.sweep.tick;
    if (this.requestTimer) {
      this.requestTimer.cancel();
      this.requestTimer = undefined;
    }
    if (this.badRequest) {
      if (this.queue.length) this.dispatch();
      else this.end(BAD_REQUEST);
      return;
    }
    // An unread request body cannot be skipped on a kept-alive connection: close instead.
    if (res.closeAfter || this.closing || !done!.req.complete) {
      this.end();
      return;
    }
    if (this.queue.length) this.dispatch();
    else if (this.handoff) return this.tryHandOff();
    // Reading may have been stopped for a pipelined request or by body backpressure.
    this.socket.resume();
  }

  /** Ends the connection after what it holds to write (see `Outbox.later`). */
  private end(last?: string): void {
    this.out.flush();
    if (last === undefined) this.socket.end();
    else this.socket.end(last, 'latin1');
  }

  private stopTimers(): void {
    this.headTimer?.cancel();
    this.requestTimer?.cancel();
    this.lifeTimer?.cancel();
    this.headTimer = this.requestTimer = this.lifeTimer = undefined;
  }

  /**
   * A request head still incomplete `headersMs` after its first byte (slowloris, or a stuck
   * client): 408 and close, as Envoy's `request_headers_timeout` does; nothing of it was forwarded.
   */
  private readonly onHeadTimeout = (): void => {
    this.headTimer = undefined;
    if (this.detached || this.socket.destroyed) return;
    this.badRequest = true;
    if (this.queue.length === 0) this.end(REQUEST_TIMEOUT);
    else this.socket.destroy();
  };

  /** A request not received in full within `requestMs`: 408 and close (Envoy's `request_timeout`); the upstream request is abandoned. */
  private onRequestTimeout(req: LeanRequest): void {
    this.requestTimer = undefined;
    if (req.complete || this.detached || this.socket.destroyed) return;
    const i = this.queue.findIndex((x) => x.req === req);
    if (i < 0) return;
    const e = this.queue[i]!;
    this.badRequest = true;
    if (e.started) {
      req.emit('aborted');
      req.fail(new Error('request timeout'));
    }
    e.res.abort();
    this.queue.splice(i, 1);
    if (i === 0 && !e.res.headersSent && this.queue.length === 0) this.end(REQUEST_TIMEOUT);
    else this.socket.destroy();
  }

  /** What holds this connection in a draining proxy, for the log line at the drain deadline. */
  get drainState(): string {
    if (this.detached) return 'upgraded';
    if (this.handoff) return this.queue.length ? 'busy-handing-over' : 'handing-over';
    if (this.closing) return this.queue.length ? 'busy-closing' : 'idle-closing';
    return this.queue.length ? 'busy' : 'idle';
  }

  get idle(): boolean {
    return this.queue.length === 0;
  }

  expire(): void {
    this.socket.destroy();
  }

  /**
   * Drain: close after the response in progress, or now when idle — unless `keepIdle`, when an
   * idle connection waits for its next request and closes after answering it (`connection:
   * close`), so the client never sends a request into a closing connection.
   */
  close(keepIdle = false): void {
    this.handoff = undefined;
    this.closing = true;
    for (const { res } of this.queue) res.closeAfter = true;
    if (this.queue.length === 0 && !keepIdle && !this.upgrading && !this.detached) this.end();
  }

  /**
   * Handover drain when the next proxy adopts connections: once idle (now, or when the response
   * in progress and any pipelined ones are written) the connection stops reading and its socket
   * goes to `give`, so the client's next request reaches the new proxy on the same connection
   * and no request ever meets a close. A connection that cannot move cleanly (part of a request
   * read, an upgrade, a malformed request, the `data`-event read path) drains as `close(true)`.
   */
  handOver(give: (socket: net.Socket) => void): void {
    if (this.closing || this.detached) return;
    this.handoff = give;
    if (this.queue.length === 0) this.tryHandOff();
  }

  private tryHandOff(): void {
    const give = this.handoff;
    const s = this.socket;
    if (!give || s.destroyed) return;
    // Direct reads stop in the kernel on `pause()` (the `onread` mode); with `data` events bytes
    // could still be read into the stream's buffer after the check below and be lost.
    const clean = this.direct && !this.badRequest && !this.upgrading && !this.detached && this.fastLeft === 0 && !this.inLlhttp && this.queue.length === 0 && this.rawHeaders.length === 0 && this.url === '';
    if (!clean) {
      this.close(true);
      return;
    }
    s.pause();
    this.out.flush();
    if (s.readableLength > 0) {
      this.close(true);
      s.resume();
      return;
    }
    // Bytes of the last response still queued in this process would be lost with the handle.
    if (s.writableLength > 0) {
      setTimeout(() => this.tryHandOff(), 1);
      return;
    }
    this.handoff = undefined;
    this.handedOff = true;
    this.detached = true;
    this.sweep?.delete(this);
    this.stopTimers();
    s.removeListener('data', this.onData);
    this.parser.close();
    give(s);
  }
}
