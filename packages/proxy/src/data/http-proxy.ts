import tls from 'node:tls';
import { peerPrincipal } from './peer.js';
import type { TlsContexts } from './tls.js';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type http2 from 'node:http2';
import type { ClusterAction, FaultSpec, HeaderAdd, HttpFilterChain, ProxySnapshot, RateLimitSpec, RouteModel, RouteTable, VirtualHostModel } from '../model.js';
import type { ProxyStats } from '../stats.js';
import type { ClusterManager } from './cluster-manager.js';
import { hash32, type Host } from './load-balancer.js';
import type { RateLimiter } from './rate-limit.js';
import { matchRoute, pickWeighted, selectVirtualHost, type RequestView } from './router.js';
import { forwardable, type Headers, type UpstreamResponse } from './upstream.js';
import { BodyTap, runAttempts } from './attempts.js';
import type { Deadline } from './timer-list.js';
import { RBAC_DENIED_BODY, RBAC_DENIED_REASON, RBAC_POLICY_HEADER, connectionPrincipal, evaluateRbac, type RbacFilterModel } from './rbac.js';

/** The header naming why the proxy answered a request itself (see the README for values). */
export const REASON_HEADER = 'x-octo-reason';

const peers = new WeakMap<object, { principal?: string; serial?: string }>();
/** The access log's view of a TLS peer, once per connection. */
function downstreamPeer(socket: unknown): { downstream_peer?: { principal?: string; serial?: string } } {
  if (!(socket instanceof tls.TLSSocket)) return {};
  let p = peers.get(socket);
  if (!p) {
    const principal = peerPrincipal(socket);
    const serial = socket.getPeerCertificate()?.serialNumber;
    p = { ...(principal ? { principal } : {}), ...(serial ? { serial } : {}) };
    peers.set(socket, p);
  }
  return { downstream_peer: p };
}

/** One JSON access-log entry per request. */
export interface AccessLogEntry {
  time: string;
  listener: string;
  protocol: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  reason?: string;
  route?: string;
  cluster?: string;
  upstream?: string;
  attempts: number;
  duration_ms: number;
  trace_id: string;
  /** On a TLS connection: the verified peer's URI SAN and its certificate's serial (Envoy's %DOWNSTREAM_PEER_URI_SAN%, %DOWNSTREAM_PEER_SERIAL%). */
  downstream_peer?: { principal?: string; serial?: string };
}

/** What the HTTP data path needs from the rest of the proxy. */
export interface HttpContext {
  snapshot(): ProxySnapshot;
  /** While a listener update is being put in force: settles once it is (or was refused). */
  settling?(): Promise<void> | undefined;
  clusters: ClusterManager;
  rateLimiter: RateLimiter;
  stats: ProxyStats;
  accessLog?: (e: AccessLogEntry) => void;
  random?: () => number;
  /**
   * Dependency learning (xds/dependency-learner.ts): no virtual host answers `authority`. A
   * returned promise holds the request until the route is in force or the bound passed; then it
   * is routed once more (and gets `404 no-route` if it still has none).
   */
  learn?(listener: string, authority: string): Promise<void> | undefined;
  /** TLS contexts and SDS secrets (data/tls.ts); without it, TLS listeners and clusters are not served. */
  tls?: TlsContexts;
}

/** The part of `http.IncomingMessage` / `http2.Http2ServerRequest` / LeanRequest the proxy uses. */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly socket?: { remoteAddress?: string | undefined } | null;
  on(event: 'data', fn: (c: Buffer) => void): unknown;
  on(event: 'end' | 'aborted', fn: () => void): unknown;
  once(event: 'aborted', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}
/** The part of `http.ServerResponse` / `http2.Http2ServerResponse` the proxy uses. */
export interface DownstreamResponse {
  readonly headersSent: boolean;
  writeHead(status: number, headers?: http.OutgoingHttpHeaders): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  addTrailers(headers: http.OutgoingHttpHeaders): void;
  destroy(): unknown;
  on(event: string, fn: () => void): unknown;
  once(event: string, fn: () => void): unknown;
}

/** gRPC status for a locally generated HTTP status (Envoy's mapping). */
export function grpcStatusFor(status: number): number {
  if (status === 400) return 13;
  if (status === 401) return 16;
  if (status === 403) return 7;
  if (status === 404) return 12;
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14;
  return 2;
}

/** Random hex from a pooled string: one getrandom call and one hex conversion per 4 KiB, not per request. */
let pool = '';
let poolOffset = 0;
function randomHex(bytes: number): string {
  const chars = 2 * bytes;
  if (poolOffset + chars > pool.length) {
    pool = randomBytes(4096).toString('hex');
    poolOffset = 0;
  }
  const s = pool.slice(poolOffset, poolOffset + chars);
  poolOffset += chars;
  return s;
}

/** W3C trace context: keeps the trace id, makes this hop the parent; starts a trace when absent. */
export function nextTraceparent(incoming: string | undefined): { header: string; traceId: string } {
  const m = incoming ? /^([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/.exec(incoming.trim()) : null;
  if (m && m[1] !== 'ff' && m[2] !== '0'.repeat(32)) return { header: `00-${m[2]}-${randomHex(8)}-${m[3]}`, traceId: m[2]! };
  // A new trace: trace id and span id from one hex conversion.
  const ids = randomHex(24);
  const traceId = ids.slice(0, 32);
  return { header: `00-${traceId}-${ids.slice(32)}-01`, traceId };
}

function applyHeaderOps(h: Headers, add: readonly HeaderAdd[], remove: readonly string[]): void {
  for (const name of remove) delete h[name];
  for (const a of add) {
    const cur = h[a.name];
    if (a.action === 'if-absent' && cur !== undefined) continue;
    if (a.action === 'append' && cur !== undefined) h[a.name] = [...(Array.isArray(cur) ? cur : [cur]), a.value];
    else h[a.name] = a.value;
  }
}

/** What the attempts of a request report back to it. */
export interface RequestState {
  host?: Host;
  attempts: number;
}

/**
 * Handles one downstream HTTP request (HTTP/1.1 or HTTP/2, through Node's compatibility API):
 * route, rate limit, fault, circuit breaker, load balance, attempts with retries and timeouts,
 * then stream the chosen response back with its trailers. Returns a promise only when the
 * request has to wait (a listener update settling, a fault delay); the usual request runs on
 * callbacks, from the read that brought it to the write of its response.
 */
export function handleHttp(ctx: HttpContext, listener: string, req: DownstreamRequest, res: DownstreamResponse): Promise<void> | undefined {
  return new Exchange(ctx, listener, req, res).serve(true);
}

/** One request and its response, from routing to the access log entry. */
class Exchange implements RequestState {
  snap: ProxySnapshot;
  readonly h2: boolean;
  readonly authority: string;
  readonly path: string;
  readonly method: string;
  readonly start = performance.now();
  readonly isGrpc: boolean;
  readonly trace: { header: string; traceId: string };
  route?: RouteModel;
  cluster?: string;
  host?: Host;
  attempts = 0;
  reason?: string;
  done = false;

  constructor(
    readonly ctx: HttpContext,
    readonly listener: string,
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
  ) {
    this.snap = ctx.snapshot();
    const h2 = req.httpVersionMajor === 2;
    this.h2 = h2;
    let authority = String((h2 ? req.headers[':authority'] : req.headers['host']) ?? '');
    let path = (h2 ? String(req.headers[':path'] ?? '/') : req.url) ?? '/';
    if (path.charCodeAt(0) !== 47 /* / */) {
      // Absolute form (`GET http://reviews/x HTTP/1.1`), as apps configured with an HTTP proxy
      // send it: the URI names the destination.
      const m = /^https?:\/\/([^/?#]+)([^#]*)/i.exec(path);
      if (m) {
        authority = m[1]!;
        path = m[2] || '/';
      }
    }
    this.authority = authority;
    this.path = path;
    this.method = req.method ?? 'GET';
    this.isGrpc = String(req.headers['content-type'] ?? '').startsWith('application/grpc');
    this.trace = nextTraceparent(req.headers['traceparent'] as string | undefined);
  }

  /** Records the request once: stats and the access log entry. */
  finish(status: number): void {
    if (this.done) return;
    this.done = true;
    const durMs = performance.now() - this.start;
    const { ctx, listener } = this;
    ctx.stats.recordRequest(listener, this.route?.name ?? '', this.cluster ?? '', status, durMs / 1000);
    ctx.accessLog?.({
      time: new Date().toISOString(),
      listener,
      protocol: this.h2 ? 'HTTP/2' : `HTTP/${this.req.httpVersion}`,
      method: this.method,
      authority: this.authority,
      path: this.path,
      status,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.route ? { route: this.route.name } : {}),
      ...(this.cluster ? { cluster: this.cluster } : {}),
      ...(this.host ? { upstream: this.host.key } : {}),
      attempts: this.attempts,
      duration_ms: Math.round(durMs * 1000) / 1000,
      trace_id: this.trace.traceId,
      ...downstreamPeer(this.req.socket),
    });
  }

  local(status: number, reason: string, body = ''): undefined {
    this.reason = reason;
    localReply(this.req, this.res, this.isGrpc, status, reason, body);
    this.finish(status);
    return undefined;
  }

  /** The RBAC filters' verdict (data/rbac.ts); a denied request is answered 403 here. */
  authorized(filters: readonly RbacFilterModel[]): boolean {
    const { ctx, listener } = this;
    const d = evaluateRbac(filters, { method: this.method, path: this.path, authority: this.authority, headers: this.req.headers, principal: connectionPrincipal(this.req.socket) });
    if (d.allowed) {
      ctx.stats.rbacAllowed.inc({ listener, policy: d.policy ?? '' });
      return true;
    }
    ctx.stats.rbacDenied.inc({ listener, policy: d.policy ?? '' });
    this.reason = RBAC_DENIED_REASON;
    localReply(this.req, this.res, this.isGrpc, 403, RBAC_DENIED_REASON, `${RBAC_DENIED_BODY}\n`, d.policy ? { [RBAC_POLICY_HEADER]: d.policy } : undefined);
    this.finish(403);
    return false;
  }

  /** Routing, rate limit and fault delay; the rest once the delay (if any) is over. */
  serve(mayWait: boolean, mayLearn = true): Promise<void> | undefined {
    const { ctx, listener } = this;
    const lst = this.snap.listeners.get(listener);
    if (!lst && mayWait) {
      // A listener bound by an update still being put in force: wait for it, once.
      const settling = ctx.settling?.();
      if (settling)
        return settling.then(() => {
          this.snap = ctx.snapshot();
          return this.serve(false);
        });
    }
    if (!lst || lst.filter.kind !== 'http') return this.local(503, 'listener-not-configured');
    const chain: HttpFilterChain = lst.filter;
    if (chain.rbac && !this.authorized(chain.rbac)) return undefined;
    const table: RouteTable | undefined = chain.routeTable ?? (chain.rdsName ? this.snap.routeTables.get(chain.rdsName) : undefined);
    if (!table) return this.local(503, 'route-config-not-ready');
    const view: RequestView = { method: this.method, path: this.path, authority: this.authority, headers: this.req.headers };
    const vh = selectVirtualHost(table, this.authority);
    if (!vh && mayLearn && ctx.learn) {
      const learning = ctx.learn(listener, this.authority);
      if (learning)
        return learning.then(() => {
          this.snap = ctx.snapshot();
          return this.serve(false, false);
        });
    }
    const route = vh && matchRoute(vh, view);
    if (!vh || !route) return this.local(404, 'no-route', vh ? '' : `no-route: no route for host ${JSON.stringify(this.authority)}\n`);
    this.route = route;

    const rl: RateLimitSpec | undefined = route.rateLimit ?? vh.rateLimit ?? chain.rateLimit;
    if (rl && !ctx.rateLimiter.allow(rl)) {
      ctx.stats.rateLimited.inc({ listener });
      return this.local(rl.status, 'local-rate-limited');
    }
    const fault: FaultSpec | undefined = route.fault ?? vh.fault ?? chain.fault;
    const random = ctx.random ?? Math.random;
    if (fault?.delay && random() < fault.delay.fraction) {
      const ms = fault.delay.ms;
      return new Promise<void>((r) => setTimeout(r, ms)).then(() => this.forward(table, vh, route, fault, random));
    }
    this.forward(table, vh, route, fault, random);
    return undefined;
  }

  /** Fault abort, then a direct response or the upstream attempts. */
  private forward(table: RouteTable, vh: VirtualHostModel, route: RouteModel, fault: FaultSpec | undefined, random: () => number): void {
    const { ctx, req, res } = this;
    if (fault?.abort && random() < fault.abort.fraction) {
      if (fault.abort.grpcStatus !== undefined && this.isGrpc) {
        this.reason = 'fault-injected';
        trailersOnly(res, { 'content-type': 'application/grpc', 'grpc-status': String(fault.abort.grpcStatus), 'grpc-message': 'fault injected', [REASON_HEADER]: 'fault-injected' });
        return this.finish(200);
      }
      this.local(fault.abort.httpStatus ?? 503, 'fault-injected', 'fault filter abort');
      return;
    }
    if (route.action.kind === 'direct') {
      const headers: Headers = {};
      applyHeaderOps(headers, [...table.responseHeadersToAdd, ...vh.responseHeadersToAdd, ...route.responseHeadersToAdd], []);
      res.writeHead(route.action.status, headers);
      res.end(route.action.body);
      return this.finish(route.action.status);
    }
    const action: ClusterAction = route.action;
    const clusterName = action.clusters.length === 1 ? action.clusters[0]!.cluster : pickWeighted(action.clusters, action.totalWeight, random());
    this.cluster = clusterName;
    const cluster = ctx.clusters.get(clusterName);
    if (!cluster) {
      this.local(503, 'cluster-not-found');
      return;
    }
    const overflow = cluster.overflow();
    if (overflow) {
      ctx.stats.overflow.inc({ cluster: clusterName, reason: overflow });
      cluster.counters.overflow++;
      this.local(503, 'circuit-breaker-open');
      return;
    }

    // Upstream request headers: most specific mutation last so that it wins.
    const headers = forwardable(req.headers);
    headers['traceparent'] = this.trace.header;
    applyHeaderOps(headers, table.requestHeadersToAdd, table.requestHeadersToRemove);
    applyHeaderOps(headers, vh.requestHeadersToAdd, vh.requestHeadersToRemove);
    applyHeaderOps(headers, route.requestHeadersToAdd, route.requestHeadersToRemove);
    const path = this.path;
    let upstreamPath = path;
    if (action.prefixRewrite !== undefined && route.match.path.kind !== 'regex') upstreamPath = action.prefixRewrite + path.slice(route.match.path.value.length);
    // HTTP/1.1 upstream framing: keep a content-length, chunk anything else that has a body.
    const framing = headers['content-length'] !== undefined ? 'length' : hasBody(req, this.h2, this.method) ? 'chunked' : 'none';
    const upstreamReq = { method: this.method, path: upstreamPath, authority: action.hostRewrite ?? this.authority, headers, framing } as const;
    const hashKey = hashKeyOf(action, req, headers);

    cluster.active++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        cluster.active--;
      }
    };
    // 'close' follows 'finish' on every response type, and comes alone when the client goes away;
    // it comes once, so a plain listener does (here and below: no once-wrappers per request).
    res.on('close', release);
    try {
      runAttempts(ctx, cluster, vh, action, upstreamReq, hashKey, new BodyTap(req), this, random, req, (chosen) => {
        if (!chosen) return;
        if ('local' in chosen) return void this.local(chosen.local.status, chosen.local.reason);
        forwardResponse(chosen.res, res, table, vh, route, this, chosen.timer);
      });
    } catch (err) {
      release();
      throw err;
    }
  }
}

function hasBody(req: DownstreamRequest, h2: boolean, method: string): boolean {
  if (!h2) return req.headers['transfer-encoding'] !== undefined;
  const stream = (req as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream?.endAfterHeaders) return false;
  return method !== 'GET' && method !== 'HEAD';
}

function hashKeyOf(action: ClusterAction, req: DownstreamRequest, headers: Headers): number | undefined {
  let key: string | undefined;
  for (const p of action.hashPolicy) {
    let v: string | undefined;
    if (p.kind === 'header') v = headers[p.name] === undefined ? undefined : String(headers[p.name]);
    else if (p.kind === 'source-ip') v = req.socket?.remoteAddress;
    else if (p.kind === 'cookie') v = cookie(String(headers['cookie'] ?? ''), p.name);
    else if (p.kind === 'query') v = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get(p.name) ?? undefined;
    if (v !== undefined) {
      key = key === undefined ? v : `${key}\u0000${v}`;
      if (p.terminal) break;
    }
  }
  return key === undefined ? undefined : hash32(key);
}

function cookie(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function forwardResponse(
  up: UpstreamResponse,
  res: DownstreamResponse,
  table: RouteTable,
  vh: VirtualHostModel,
  route: RouteModel,
  st: Exchange,
  timer: Deadline | undefined,
): void {
  // The upstream headers are ours (parsed for this response): mutate them in place.
  const headers = up.headers;
  if (route.responseHeadersToAdd.length || route.responseHeadersToRemove.length) applyHeaderOps(headers, route.responseHeadersToAdd, route.responseHeadersToRemove);
  if (vh.responseHeadersToAdd.length || vh.responseHeadersToRemove.length) applyHeaderOps(headers, vh.responseHeadersToAdd, vh.responseHeadersToRemove);
  if (table.responseHeadersToAdd.length || table.responseHeadersToRemove.length) applyHeaderOps(headers, table.responseHeadersToAdd, table.responseHeadersToRemove);
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (st.isGrpc && headers['grpc-status'] !== undefined && up.endStream) {
    up.body.resume();
    trailersOnly(res, headers);
    st.finish(up.status);
    return;
  }
  try {
    res.writeHead(up.status, headers as http.OutgoingHttpHeaders);
  } catch {
    // A header Node refuses to write on this protocol: answer without the upstream's headers.
    res.writeHead(up.status);
  }
  if (st.isGrpc || headers['content-type'] === 'text/event-stream') (res as { flushHeaders?: () => void }).flushHeaders?.();
  // The usual case: the whole (small) body arrived with the head. Write it and finish, without
  // streaming it through events.
  const end = () => {
    const t = up.trailers();
    if (t) res.addTrailers(t as http.OutgoingHttpHeaders);
    res.end();
    st.finish(up.status);
  };
  const all = up.body.takeAll?.();
  if (all) {
    timer?.cancel();
    for (const c of all) res.write(c);
    end();
    return;
  }
  up.body.on('data', (c: Buffer) => {
    if (!res.write(c)) {
      up.body.pause();
      (stream ?? res).once('drain', () => up.body.resume());
    }
  });
  up.body.on('end', end);
  up.body.on('error', () => {
    st.reason = 'upstream-reset';
    res.destroy();
    st.finish(up.status);
  });
  up.body.on('close', () => {
    // The route timeout covers the whole response: when it fires the attempt is aborted, which
    // closes the upstream body and so resets the downstream stream here.
    timer?.cancel();
    if (!st.done) {
      st.reason ??= 'upstream-reset';
      res.destroy();
      st.finish(up.status);
    }
  });
  res.on('close', () => {
    if (!st.done) up.body.destroy();
  });
}

/**
 * A gRPC "trailers-only" response: one HEADERS frame that ends the stream. Over HTTP/2 it is sent
 * on the raw stream, since the compatibility API would end the stream with a separate frame.
 */
function trailersOnly(res: DownstreamResponse, headers: Headers): void {
  const stream = (res as unknown as { stream?: http2.ServerHttp2Stream }).stream;
  if (stream && !stream.headersSent) {
    stream.respond({ ':status': 200, ...headers }, { endStream: true });
    return;
  }
  res.writeHead(200, headers as http.OutgoingHttpHeaders);
  res.end();
}

/** A response the proxy generates itself; for gRPC clients a trailers-only gRPC error. */
export function localReply(req: DownstreamRequest, res: DownstreamResponse, isGrpc: boolean, status: number, reason: string, body = '', extra?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  req.resume();
  if (isGrpc) {
    trailersOnly(res, { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusFor(status)), 'grpc-message': encodeURIComponent(reason), [REASON_HEADER]: reason, ...extra });
    return;
  }
  const text = body || `${reason}\n`;
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), [REASON_HEADER]: reason, ...extra });
  res.end(text);
}
