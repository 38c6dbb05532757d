import http2 from 'node:http2';
import type { ClusterRuntime } from './cluster-manager.js';
import { LEAN_CODEC } from './lean-http.js';
import { PendingAttempt } from './h1-client.js';
import type { Host } from './load-balancer.js';

// node:http as its CommonJS object, not an ESM import (see lego-agent/src/admin.ts: an ESM import
// of node:http makes Node 24 load undici through its lazy WebSocket getters, ~5 MB per proxy).
const http = process.getBuiltinModule('node:http');

export type Headers = Record<string, string | string[]>;

/** The request one attempt sends: headers without pseudo-headers or hop-by-hop ones. */
export interface UpstreamRequest {
  method: string;
  path: string;
  authority: string;
  headers: Headers;
  /** How an HTTP/1.1 upstream request carries the body: none, `content-length` (in headers) or chunked. */
  framing: 'none' | 'length' | 'chunked';
  /** Open a new connection rather than reuse an idle one (the re-send after a stale connection; idle ones as old may be stale too). */
  fresh?: boolean;
}

/** Where an attempt's request body goes (a `ClientRequest`, an HTTP/2 stream, or our own). */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  on(event: 'drain' | 'error', fn: () => void): unknown;
  once(event: 'drain', fn: () => void): unknown;
}

/** A response body as the data path reads it (a `Readable`, or the lean client's emitter). */
export interface BodySource {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  /** `end`, `close` and `error` come at most once each: a plain listener does (no once-wrapper). */
  on(event: 'end' | 'close' | 'error', fn: () => void): unknown;
  once(event: 'end' | 'close' | 'error', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
  /** The lean client's bodies: everything at once when it has all arrived (see LeanBody.takeAll). */
  takeAll?(): Buffer[] | undefined;
}

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  body: BodySource;
  /** The response ended with its headers (HTTP/2 END_STREAM on HEADERS: gRPC trailers-only). */
  endStream?: boolean;
  /** Trailers, known once `body` has ended. */
  trailers(): Headers | undefined;
}

/** Why an attempt produced no response. */
export class AttemptError extends Error {
  constructor(
    readonly kind: 'connect-failure' | 'reset' | 'timeout',
    message: string,
    /** The local reply's reason when this attempt is the last one (default by kind), e.g. `upstream-tls-fail-verify-san`. */
    readonly reason?: string,
  ) {
    super(message);
  }

  /**
   * The upstream closed a kept-alive connection as this request went out on it: the connection
   * had carried earlier requests and not a byte of this one's response came. Almost always the
   * upstream's idle close (Node's server closes after 5 s) crossing our reuse, noticed late when
   * the event loop is busy — the request never reached the application.
   */
  staleConnection = false;
}

/** What an attempt ends in: the response head, or why there is none. */
export type Settled = (res: UpstreamResponse | undefined, err: AttemptError | undefined) => void;

/**
 * One request to one host; `body` takes the request body; `settle` registers the one callback
 * that gets the outcome. A callback rather than a promise: the proxy writes the response on in
 * the same turn that read it, without a promise and microtask per request between.
 */
export interface Attempt {
  body: BodySink;
  settle(cb: Settled): void;
  abort(): void;
}

/** Holds an attempt's outcome until its callback is registered; settles once. */
export class Outcome {
  private cb: Settled | undefined;
  private res: UpstreamResponse | undefined;
  private err: AttemptError | undefined;
  private done = false;

  /** Whether it has settled (later outcomes are dropped: a caller may skip building them). */
  get isSettled(): boolean {
    return this.done;
  }

  settle(cb: Settled): void {
    if (this.done) cb(this.res, this.err);
    else this.cb = cb;
  }

  resolve(res: UpstreamResponse): void {
    this.settled(res, undefined);
  }

  reject(err: AttemptError): void {
    this.settled(undefined, err);
  }

  /** The outcome, either way (as a `Settled` callback receives it). */
  settled(res: UpstreamResponse | undefined, err: AttemptError | undefined): void {
    if (this.done) return;
    this.done = true;
    const cb = this.cb;
    this.cb = undefined;
    if (cb) cb(res, err);
    else {
      this.res = res;
      this.err = err;
    }
  }
}

/**
 * Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). `expect` too: the
 * downstream side already answered `100-continue` itself.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'expect']);

/** Copies headers a proxy may forward: no pseudo-headers, no hop-by-hop ones; `te` only as `trailers`. */
export function forwardable(h: Readonly<Record<string, string | string[] | undefined>>): Headers {
  const out: Headers = {};
  const conn = h['connection'];
  const listed = conn ? String(conn).toLowerCase().split(',').map((s) => s.trim()) : [];
  for (const k in h) {
    const v = h[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* : */ || HOP_BY_HOP.has(k) || (listed.length && listed.includes(k))) continue;
    if (k === 'te') {
      if (String(v).toLowerCase().includes('trailers')) out[k] = 'trailers';
      continue;
    }
    out[k] = v;
  }
  return out;
}

/** `node`: upstream HTTP/1.1 through `http.request` + `http.Agent` instead of the lean client. */
let NODE_CODEC = process.env['OCTO_PROXY_UPSTREAM_CODEC'] === 'node' || !LEAN_CODEC;
/** Which client carries upstream HTTP/1.1 requests started from now on. */
export const upstreamH1Codec = (): 'lean' | 'node' => (NODE_CODEC ? 'node' : 'lean');
/** From now on upstream HTTP/1.1 goes through `node:http` (the start-up self-test's fallback, self-test.ts). */
export function requestH1WithNode(): void {
  NODE_CODEC = true;
}

/** Starts an attempt over the cluster's pool for its protocol. */
export function startAttempt(c: ClusterRuntime, host: Host, req: UpstreamRequest): Attempt {
  if (c.model.tls) {
    // A cluster whose TLS secrets are not there yet is warming (Envoy serves no traffic to it).
    const why = c.tlsWarming();
    if (why) return failedAttempt(new AttemptError('connect-failure', `upstream TLS not ready: ${why}`, 'upstream-tls-warming'));
    // TLS upstreams always use the lean HTTP/1.1 client (its connections are made by ClusterRuntime.tlsConnect).
    if (c.model.protocol === 'http2') return h2Attempt(c, host, req);
    if (c.model.alpnAuto) {
      const proto = c.negotiated.get(host.key);
      if (proto === 'h2') return h2Attempt(c, host, req);
      if (proto === undefined) {
        // auto_config: the first connection to a host asks for h2 and http/1.1 by ALPN; its answer holds for the host.
        const pending = new PendingAttempt();
        c.negotiate(host).then(
          () => pending.start(startAttempt(c, host, req)),
          (err: unknown) => pending.fail(err instanceof AttemptError ? err : new AttemptError('connect-failure', `upstream connect error: ${String(err)}`)),
        );
        return pending;
      }
    }
    return c.h1.request(host.key, host.address, req);
  }
  if (c.model.protocol === 'http2') return h2Attempt(c, host, req);
  return NODE_CODEC ? h1Attempt(c, host, req) : c.h1.request(host.key, host.address, req);
}

function h1Attempt(c: ClusterRuntime, host: Host, r: UpstreamRequest): Attempt {
  const a = host.address;
  const headers: Headers = { ...r.headers, host: r.authority };
  const req = http.request({
    agent: c.agent,
    method: r.method,
    path: r.path,
    headers,
    setHost: false,
    ...(a.kind === 'tcp' ? { host: a.host, port: a.port } : { socketPath: a.path }),
  });
  let connected = false;
  let connectTimer: NodeJS.Timeout | undefined;
  req.on('socket', (s) => {
    if (!s.connecting) {
      connected = true;
      return;
    }
    connectTimer = setTimeout(() => req.destroy(new AttemptError('connect-failure', 'upstream connect timeout')), c.model.connectTimeoutMs);
    s.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
    });
  });
  const outcome = new Outcome();
  req.on('response', (res) => {
    outcome.resolve({
      status: res.statusCode ?? 502,
      headers: forwardable(res.headers),
      body: res,
      trailers: () => (Object.keys(res.trailers).length ? (res.trailers as Headers) : undefined),
    });
  });
  req.on('error', (err) => {
    clearTimeout(connectTimer);
    if (err instanceof AttemptError) outcome.reject(err);
    else outcome.reject(new AttemptError(connected ? 'reset' : 'connect-failure', `${connected ? 'upstream reset' : 'upstream connect error'}: ${err.message}`));
  });
  return { body: req, settle: (cb) => outcome.settle(cb), abort: () => req.destroy() };
}

function h2Attempt(c: ClusterRuntime, host: Host, r: UpstreamRequest): Attempt {
  let session: http2.ClientHttp2Session;
  try {
    session = c.session(host);
  } catch (err) {
    const e = new AttemptError('connect-failure', `upstream connect error: ${(err as Error).message}`);
    return failedAttempt(e);
  }
  let connected = !session.connecting;
  let connectTimer: NodeJS.Timeout | undefined;
  if (!connected) {
    connectTimer = setTimeout(() => session.destroy(new AttemptError('connect-failure', 'upstream connect timeout')), c.model.connectTimeoutMs);
    session.once('connect', () => {
      connected = true;
      clearTimeout(connectTimer);
    });
  }
  const stream = session.request({ ...r.headers, ':method': r.method, ':path': r.path, ':authority': r.authority, ':scheme': c.model.tls ? 'https' : 'http' });
  c.trackStream(session, stream);
  let trailers: Headers | undefined;
  stream.on('trailers', (t) => {
    trailers = t as Headers;
  });
  const outcome = new Outcome();
  stream.on('response', (h, flags) => {
    clearTimeout(connectTimer);
    const status = Number(h[':status'] ?? 502);
    outcome.resolve({ status, headers: forwardable(h), body: stream, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, trailers: () => trailers });
  });
  stream.on('error', (err) => {
    clearTimeout(connectTimer);
    if (err instanceof AttemptError) return outcome.reject(err);
    const tlsErr = c.sessionError(session);
    if (tlsErr) return outcome.reject(tlsErr);
    outcome.reject(new AttemptError(connected ? 'reset' : 'connect-failure', `upstream ${connected ? 'reset' : 'connect error'}: ${err.message}`));
  });
  stream.on('close', () => {
    clearTimeout(connectTimer);
    // Every stream closes, most after their response: no error (and its stack) to build then.
    if (outcome.isSettled) return;
    const tlsErr = c.sessionError(session);
    if (tlsErr) return outcome.reject(tlsErr);
    // A stream closed before any response (RST_STREAM without error, session gone).
    outcome.reject(new AttemptError(connected ? 'reset' : 'connect-failure', `upstream ${connected ? 'reset' : 'connect error'}: stream closed (code ${stream.rstCode ?? 0})`));
  });
  return {
    body: stream,
    settle: (cb) => outcome.settle(cb),
    abort: () => {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  };
}

function failedAttempt(e: AttemptError): Attempt {
  const body: BodySink = { write: () => true, end: () => undefined, on: () => undefined, once: () => undefined };
  return { body, settle: (cb) => cb(undefined, e), abort: () => undefined };
}
