import type * as HttpT from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { ProxyStats } from '../stats.js';
import { AttemptError } from './upstream.js';
import { SAN_MISMATCH, TLS_HANDSHAKE_ALLOWANCE_MS, handshakeFailure, isWarming, sansMatch, tlsErrors, tlsFailure, type ReadyTls, type TlsContexts } from './tls.js';
import type { SocketAddr } from '../model.js';
import type { ClusterModel, ProxySnapshot } from '../model.js';
import { endpointsOf } from '../model.js';
import { H1Pool } from './h1-client.js';
import { deadline, type Deadline } from './timer-list.js';
import { HostSet, type Host } from './load-balancer.js';
import { decay, isEjected, recordResult, type HostResult } from './outlier.js';

// node:http as its CommonJS object, not an ESM import (see lego-agent/src/admin.ts: an ESM import
// of node:http makes Node 24 load undici through its lazy WebSocket getters, ~5 MB per proxy).
const http = process.getBuiltinModule('node:http');

/** Why the circuit breaker refused a request, or undefined when it may go. */
export type Overflow = 'max-requests' | 'max-pending' | undefined;

/**
 * One cluster at run time: its hosts, connection pools (an HTTP/1.1 keep-alive agent, or one
 * multiplexed HTTP/2 session per host), circuit-breaker counters and outlier detection.
 * Replaced models keep the runtime, so pools, counters and ejections survive config updates.
 */
export class ClusterRuntime {
  readonly hosts: HostSet;
  agent: HttpT.Agent;
  /** The lean HTTP/1.1 client's keep-alive pool (see h1-client.ts). */
  readonly h1: H1Pool;
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  active = 0;
  activeRetries = 0;
  /** Counters for /clusters and /stats. */
  readonly counters = { overflow: 0, retryOverflow: 0, ejections: 0, retries: 0 };
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    public model: ClusterModel,
    private readonly tlsContexts?: TlsContexts,
    private readonly stats?: ProxyStats,
  ) {
    this.hosts = new HostSet(model);
    this.agent = makeAgent(model);
    this.h1 = new H1Pool(model.circuitBreakers.maxConnections, model.connectTimeoutMs, model.maxRequestsPerConnection, model.upstreamTimeouts.idleMs);
    this.h1.connect = (addr) => this.tlsConnect(addr);
    this.scheduleSweep();
  }

  /** The TLS context for new connections, or why there is none yet; undefined for a plaintext cluster. */
  private tlsReady(): ReadyTls | string | undefined {
    const t = this.model.tls;
    if (!t) return undefined;
    if (!this.tlsContexts) return 'no TLS support in this proxy instance';
    const r = this.tlsContexts.resolve(t);
    return isWarming(r) ? r.warming : r;
  }

  /** Why this TLS cluster cannot connect yet (its SDS secrets are missing), or undefined. */
  tlsWarming(): string | undefined {
    const r = this.tlsReady();
    return typeof r === 'string' ? r : undefined;
  }

  /**
   * A new TLS connection to `addr` for the lean HTTP/1.1 client, an HTTP/2 session or tcp_proxy
   * (undefined: plaintext; `socket.allowHalfOpen` for tcp_proxy's half-close). The peer must chain to the trust bundle and, with SAN matchers, carry a matching
   * URI/DNS SAN (the host name is not checked otherwise: mesh peers are named by SPIFFE ID).
   * A refusal is counted by Envoy's reason and fails the attempt with it.
   */
  tlsConnect(addr: SocketAddr, alpn?: string[], socket: { allowHalfOpen?: boolean } = {}): tls.TLSSocket | undefined {
    const r = this.tlsReady();
    if (r === undefined) return undefined;
    if (typeof r === 'string') throw new AttemptError('connect-failure', `upstream TLS not ready: ${r}`, 'upstream-tls-warming');
    const t = this.model.tls!;
    const want = this.model.protocol === 'http2' ? 'h2' : 'http/1.1';
    // Offer only the protocol this cluster speaks (HTTP/2 always offers h2, as Envoy does).
    const offer = alpn ?? (want === 'h2' || this.model.alpnAuto || r.alpn.includes(want) ? [want] : []);
    const s = tls.connect({
      ...(addr.kind === 'tcp' ? { host: addr.host, port: addr.port } : { path: addr.path }),
      secureContext: r.secureContext,
      rejectUnauthorized: r.verify,
      ...(t.sni ? { servername: t.sni } : {}),
      ...(offer.length ? { ALPNProtocols: offer } : {}),
      ...(socket.allowHalfOpen ? { allowHalfOpen: true } : {}),
      checkServerIdentity: (_host, cert) =>
        sansMatch(r.sans, cert.subjectaltname) ? undefined : Object.assign(new Error(`upstream certificate SANs (${cert.subjectaltname ?? 'none'}) match no subject_alt_names matcher`), { code: SAN_MISMATCH }),
    });
    s.setNoDelay(true);
    let secured = false;
    s.once('secureConnect', () => {
      secured = true;
      this.stats?.tlsHandshakes.inc({ side: 'upstream', result: 'success' });
    });
    s.once('error', (err: Error & { code?: string }) => {
      if (secured) return;
      const result = handshakeFailure(err);
      this.stats?.tlsHandshakes.inc({ side: 'upstream', result });
      tlsErrors.set(s, new AttemptError('connect-failure', `upstream connect error: TLS ${result}: ${err.message}`, `upstream-tls-${result.replace(/_/g, '-')}`));
    });
    return s;
  }

  /** `auto_config`: the protocol each host agreed to by ALPN. */
  readonly negotiated = new Map<string, 'h2' | 'http/1.1'>();
  private readonly negotiating = new Map<string, Promise<void>>();

  /**
   * `auto_config`: one TLS connection to `host` offering `h2` and `http/1.1`; the host's answer
   * is remembered. An `h2` connection becomes the host's HTTP/2 session; an `http/1.1` one is
   * closed (the lean client's pool makes its own: one extra handshake per host).
   */
  negotiate(host: Host): Promise<void> {
    let p = this.negotiating.get(host.key);
    if (p) return p;
    p = new Promise<void>((resolve, reject) => {
      let s: tls.TLSSocket;
      try {
        s = this.tlsConnect(host.address, ['h2', 'http/1.1'])!;
      } catch (err) {
        return reject(err);
      }
      const timer = deadline(this.model.connectTimeoutMs + TLS_HANDSHAKE_ALLOWANCE_MS, () => s.destroy(new AttemptError('connect-failure', 'upstream connect timeout (TCP and TLS handshake)')));
      s.once('secureConnect', () => {
        timer.cancel();
        const proto = s.alpnProtocol === 'h2' ? 'h2' : 'http/1.1';
        this.negotiated.set(host.key, proto);
        if (proto === 'h2') this.session(host, s);
        else s.destroy();
        resolve();
      });
      s.once('close', () => {
        timer.cancel();
        reject(tlsFailure(s) ?? new AttemptError('connect-failure', 'upstream connect error'));
      });
    }).finally(() => this.negotiating.delete(host.key));
    this.negotiating.set(host.key, p);
    return p;
  }

  /** The TLS failure that ended an HTTP/2 session's connection, if that is what ended it. */
  sessionError(session: http2.ClientHttp2Session): AttemptError | undefined {
    const s = session.socket as unknown;
    return s instanceof tls.TLSSocket ? tlsFailure(s) : undefined;
  }

  setModel(m: ClusterModel): void {
    const poolChanged =
      m.circuitBreakers.maxConnections !== this.model.circuitBreakers.maxConnections || m.protocol !== this.model.protocol || m.upstreamTimeouts.idleMs !== this.model.upstreamTimeouts.idleMs;
    const intervalChanged = m.outlier?.intervalMs !== this.model.outlier?.intervalMs;
    this.model = m;
    this.hosts.cluster = m;
    this.h1.maxConnections = m.circuitBreakers.maxConnections;
    this.h1.connectTimeoutMs = m.connectTimeoutMs;
    this.h1.maxRequestsPerConnection = m.maxRequestsPerConnection;
    this.h1.idleMs = m.upstreamTimeouts.idleMs;
    if (poolChanged) {
      const old = this.agent;
      this.agent = makeAgent(m);
      setTimeout(() => old.destroy(), 30_000).unref();
    }
    if (intervalChanged) this.scheduleSweep();
  }

  private scheduleSweep(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const o = this.model.outlier;
    if (!o) return;
    // Decay only lowers a host's ejection multiplier; it never ejects or returns a host (an
    // ejection's expiry is the balancer's own `nextExpiry`), so the host lists stay valid.
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const h of this.hosts.hosts) decay(o, h.outlier, now);
    }, o.intervalMs);
    this.sweeper.unref();
  }

  /** Circuit breaker check before a request (retries check {@link tryRetry} too). */
  overflow(): Overflow {
    const cb = this.model.circuitBreakers;
    if (this.active >= cb.maxRequests) return 'max-requests';
    // HTTP/1.1 carries one request per connection; beyond max_connections requests queue.
    if (this.model.protocol === 'http1' && this.active >= cb.maxConnections + cb.maxPendingRequests) return 'max-pending';
    return undefined;
  }

  /** Takes a retry slot from max_retries or the retry budget; false when none is left. */
  tryRetry(): boolean {
    const cb = this.model.circuitBreakers;
    const limit = cb.retryBudget
      ? Math.max(cb.retryBudget.minRetryConcurrency, Math.floor((cb.retryBudget.budgetPercent / 100) * this.active))
      : cb.maxRetries;
    if (this.activeRetries >= limit) {
      this.counters.retryOverflow++;
      return false;
    }
    this.activeRetries++;
    this.counters.retries++;
    return true;
  }

  /** Passive outlier detection input. */
  report(host: Host, r: HostResult): void {
    host.requests++;
    if (r !== 'success') host.failures++;
    const o = this.model.outlier;
    if (!o) return;
    if (r === 'success') {
      // The common case: reset the host's counters without scanning the cluster.
      host.outlier.consecutive5xx = 0;
      host.outlier.consecutiveGateway = 0;
      return;
    }
    if (recordResult(o, host.outlier, r, Date.now(), this.hosts.ejectedCount, this.hosts.hosts.length)) {
      this.counters.ejections++;
      this.hosts.invalidate();
    }
  }

  /** The HTTP/2 session to a host, opened on first use and reopened after it closes. */
  session(host: Host, connected?: tls.TLSSocket): http2.ClientHttp2Session {
    let s = this.sessions.get(host.key);
    if (s && !s.closed && !s.destroyed && !connected) return s;
    const a = host.address;
    if (this.model.tls) {
      const socket = connected ?? this.tlsConnect(a, ['h2'])!;
      s = http2.connect(a.kind === 'tcp' ? `https://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}` : 'https://localhost', { createConnection: () => socket });
    } else
      s =
        a.kind === 'tcp'
          ? http2.connect(`http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`)
          : http2.connect('http://localhost', { createConnection: () => net.connect(a.path) });
    const session = s;
    session.on('error', () => undefined);
    session.on('close', () => {
      this.idleTimers.get(session)?.cancel();
      if (this.sessions.get(host.key) === session) this.sessions.delete(host.key);
      // auto_config: the next connection asks by ALPN again (the host may speak otherwise now).
      if (this.model.alpnAuto) this.negotiated.delete(host.key);
    });
    session.on('goaway', () => {
      if (this.sessions.get(host.key) === session) this.sessions.delete(host.key);
    });
    session.unref();
    this.sessions.set(host.key, session);
    this.streams.set(session, 0);
    this.armIdle(session);
    return session;
  }

  /** Open streams per upstream HTTP/2 session and, while it has none, its idle deadline. */
  private readonly streams = new WeakMap<http2.ClientHttp2Session, number>();
  private readonly idleTimers = new WeakMap<http2.ClientHttp2Session, Deadline>();

  /**
   * Counts a stream opened on one of this cluster's HTTP/2 sessions: a session without an open
   * stream for the upstream `idle_timeout` is closed (Envoy: "no active requests or streams";
   * the next request opens a new one).
   */
  trackStream(session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream): void {
    this.idleTimers.get(session)?.cancel();
    this.idleTimers.delete(session);
    this.streams.set(session, (this.streams.get(session) ?? 0) + 1);
    stream.once('close', () => {
      const n = (this.streams.get(session) ?? 1) - 1;
      this.streams.set(session, n);
      if (n === 0) this.armIdle(session);
    });
  }

  private armIdle(session: http2.ClientHttp2Session): void {
    const ms = this.model.upstreamTimeouts.idleMs;
    if (ms <= 0 || session.closed || session.destroyed) return;
    this.idleTimers.set(
      session,
      deadline(ms, () => {
        this.idleTimers.delete(session);
        // Closed at once (no stream is open); `session()` opens a new one for the next request.
        session.close();
      }),
    );
  }

  summary(): unknown {
    const now = Date.now();
    return {
      name: this.model.name,
      active_requests: this.active,
      active_retries: this.activeRetries,
      ...this.counters,
      hosts: this.hosts.hosts.map((h) => ({
        address: h.key,
        health: h.health,
        priority: h.priority,
        locality: h.locality,
        weight: h.weight,
        active_requests: h.active,
        requests: h.requests,
        failures: h.failures,
        ejected: isEjected(h.outlier, now),
        ejected_until: h.outlier.ejectedUntil > now ? new Date(h.outlier.ejectedUntil).toISOString() : undefined,
        ejection_count: h.outlier.ejections,
        ...(h.central ? { central_verdict: { healthy: h.central.healthy, ...(h.central.since !== undefined ? { since: new Date(h.central.since).toISOString() } : {}) } } : {}),
        ...(h.p2p ? { p2p: { local: h.p2p.healthy === undefined ? 'undecided' : h.p2p.healthy ? 'healthy' : 'unhealthy', confirmed_at: h.p2p.at ? new Date(h.p2p.at).toISOString() : undefined, override: h.override } } : {}),
      })),
    };
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.agent.destroy();
    this.h1.close();
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
  }
}

function makeAgent(m: ClusterModel): HttpT.Agent {
  return new http.Agent({
    keepAlive: true,
    keepAliveMsecs: 1000,
    maxSockets: Infinity,
    maxTotalSockets: m.circuitBreakers.maxConnections,
    maxFreeSockets: 1024,
    scheduling: 'lifo',
    // The upstream `idle_timeout`: Node's Agent closes a free socket at its socket timeout (an
    // active one only gets a 'timeout' event, which nothing here acts on).
    ...(m.upstreamTimeouts.idleMs > 0 ? { timeout: m.upstreamTimeouts.idleMs } : {}),
  });
}

/** All clusters in force; follows the snapshot, keeping runtime state of clusters that stay. */
export class ClusterManager {
  private readonly clusters = new Map<string, ClusterRuntime>();
  /** TLS contexts for clusters with a transport socket (set by the Proxy). */
  tls: TlsContexts | undefined;
  stats: ProxyStats | undefined;

  apply(s: ProxySnapshot): void {
    for (const [name, model] of s.clusters) {
      let c = this.clusters.get(name);
      if (!c) this.clusters.set(name, (c = new ClusterRuntime(model, this.tls, this.stats)));
      else if (c.model !== model) c.setModel(model);
      c.hosts.update(endpointsOf(s, model));
    }
    for (const [name, c] of this.clusters) {
      if (!s.clusters.has(name)) {
        c.close();
        this.clusters.delete(name);
      }
    }
  }

  get(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name);
  }

  all(): ClusterRuntime[] {
    return [...this.clusters.values()];
  }

  close(): void {
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }
}
