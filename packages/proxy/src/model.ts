/**
 * The proxy's internal configuration model: what the data path reads on every request.
 *
 * It is translated from Envoy v3 xDS resources (see `translate/`) and is plain data — no
 * sockets, timers or counters — so a whole model can be serialised for golden files and
 * `/config_dump`. Compiled regular expressions (RE2, `translate/regex.ts`) are the one exception;
 * they print as `re2:/source/flags`.
 * A model value is never mutated once built: an update builds a new one and swaps it in.
 */

import type { SafeRegex } from './translate/regex.js';

/** `{ok: true, value}` or `{ok: false, error}`; an error becomes an xDS NACK's `error_detail`. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(error: string): Result<T> => ({ ok: false, error });

/** Where to connect or listen: a TCP host and port, or a Unix domain socket path. */
export type SocketAddr = { kind: 'tcp'; host: string; port: number } | { kind: 'pipe'; path: string };

export function addrKey(a: SocketAddr): string {
  return a.kind === 'tcp' ? (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`) : `unix:${a.path}`;
}

// ---------------------------------------------------------------------------------------------
// Listeners

export interface ListenerModel {
  name: string;
  /** Absent when the listener attaches to a socket the proxy was given (bootstrap or the agent). */
  address?: SocketAddr;
  filter: HttpFilterChain | TcpFilterChain;
  /**
   * Set when the listener's filter chains are chosen by transport protocol (the
   * `tls_inspector` listener filter and `filter_chain_match.transport_protocol`) or its one
   * chain has a TLS transport socket. Every chain carries the same network filter (`filter`);
   * they differ in how the connection is carried.
   */
  transport?: ListenerTransport;
  /**
   * TCP chains picked by the TLS client's SNI (`filter_chain_match.server_names`, exact names):
   * a TLS connection whose server name is listed goes to that chain's tcp_proxy instead of
   * `filter`. They share the listener's `tls` chain's DownstreamTlsContext (one handshake, then
   * the choice), so mesh TCP ports ride the same inbound port as HTTP.
   */
  sniTcp?: { serverNames: string[]; filter: TcpFilterChain }[];
}

/** How a listener's connections are carried: which transports match a chain, and its TLS. */
export interface ListenerTransport {
  /** The `tls` chain's DownstreamTlsContext; absent: a TLS connection matches no chain and is closed. */
  tls?: DownstreamTlsModel;
  /** Whether a plaintext (`raw_buffer`) connection matches a chain: PERMISSIVE yes, STRICT no (closed, counted). */
  plaintext: boolean;
}

export interface HttpFilterChain {
  kind: 'http';
  statPrefix: string;
  /** Exactly one of `rdsName` (fetched over RDS) and `routeTable` (inline) is set. */
  rdsName?: string;
  routeTable?: RouteTable;
  /** Listener-wide local rate limit (the `envoy.filters.http.local_ratelimit` filter). */
  rateLimit?: RateLimitSpec;
  /** Listener-wide fault injection (the `envoy.filters.http.fault` filter). */
  fault?: FaultSpec;
  /** RBAC filters (`envoy.filters.http.rbac`), in chain order: a request any of them denies gets 403. */
  rbac?: import('./data/rbac.js').RbacFilterModel[];
  /** Upgrade types (lower case, e.g. `websocket`) allowed on every route unless a route disables them. */
  upgrades: string[];
  /** Downstream connection hygiene (HTTP/1.1; 0 disables each). */
  timeouts: HttpTimeouts;
}

/**
 * Timeouts of downstream HTTP connections, from the HttpConnectionManager (defaults beside
 * Envoy's and nginx's in the README). 0 disables one.
 */
export interface HttpTimeouts {
  /** `request_headers_timeout`: from a request head's first byte to its end; then 408 and close. */
  headersMs: number;
  /** `common_http_protocol_options.idle_timeout`: a kept-alive connection without a request closes. */
  idleMs: number;
  /** `request_timeout`: from a request's first byte until it was received in full; then 408 and close. */
  requestMs: number;
  /** `common_http_protocol_options.max_connection_duration`: then the connection closes after its response in progress (HTTP/2: GOAWAY). */
  maxConnectionMs: number;
  /** `stream_idle_timeout`: an HTTP/2 stream without a frame either way; then 408 (no response head yet) or a reset. */
  streamIdleMs: number;
  /** `common_http_protocol_options.max_stream_duration`: an HTTP/2 stream's whole life; then 408 or a reset as above. */
  maxStreamMs: number;
}

/**
 * Defaults: a head within 10 s (Envoy's edge best practice), idle kept-alive connections 60 s,
 * an HTTP/2 stream idle for 5 min (Envoy's `stream_idle_timeout` default).
 */
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, idleMs: 60_000, requestMs: 0, maxConnectionMs: 0, streamIdleMs: 300_000, maxStreamMs: 0 };

export interface TcpFilterChain {
  kind: 'tcp';
  statPrefix: string;
  clusters: WeightedTarget[];
  maxConnectAttempts: number;
  idleTimeoutMs: number;
}

// ---------------------------------------------------------------------------------------------
// Routes

export interface RouteTable {
  name: string;
  virtualHosts: VirtualHostModel[];
  requestHeadersToAdd: HeaderAdd[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: HeaderAdd[];
  responseHeadersToRemove: string[];
}

export interface VirtualHostModel {
  name: string;
  /** Lower case; `*`, `*.suffix` and `prefix*` wildcards as in Envoy. */
  domains: string[];
  routes: RouteModel[];
  retry?: RetrySpec;
  rateLimit?: RateLimitSpec;
  fault?: FaultSpec;
  requestHeadersToAdd: HeaderAdd[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: HeaderAdd[];
  responseHeadersToRemove: string[];
}

export type PathMatch =
  | { kind: 'prefix'; value: string }
  | { kind: 'exact'; value: string }
  | { kind: 'regex'; regex: SafeRegex };

export type StringMatch =
  | { kind: 'exact'; value: string; ignoreCase: boolean }
  | { kind: 'prefix'; value: string; ignoreCase: boolean }
  | { kind: 'suffix'; value: string; ignoreCase: boolean }
  | { kind: 'contains'; value: string; ignoreCase: boolean }
  | { kind: 'regex'; regex: SafeRegex };

export interface HeaderMatch {
  /** Lower case; `:method`, `:path`, `:authority` reach the pseudo-headers. */
  name: string;
  match: StringMatch | { kind: 'present'; present: boolean } | { kind: 'range'; start: number; end: number };
  invert: boolean;
}

export interface QueryMatch {
  name: string;
  match: StringMatch | { kind: 'present'; present: boolean };
}

export interface RouteMatchModel {
  path: PathMatch;
  caseSensitive: boolean;
  headers: HeaderMatch[];
  query: QueryMatch[];
  /** Only requests with `content-type: application/grpc*`. */
  grpc: boolean;
}

export interface WeightedTarget {
  cluster: string;
  weight: number;
}

export interface HeaderAdd {
  name: string;
  value: string;
  /** `append`: add another value; `overwrite`: replace; `if-absent`: add only when missing. */
  action: 'append' | 'overwrite' | 'if-absent';
}

export type HashPolicy =
  | { kind: 'header'; name: string; terminal: boolean }
  | { kind: 'cookie'; name: string; terminal: boolean }
  | { kind: 'source-ip'; terminal: boolean }
  | { kind: 'query'; name: string; terminal: boolean };

export interface RetrySpec {
  /** Conditions from `retry_on`, e.g. `5xx`, `gateway-error`, `reset`, `connect-failure`, `unavailable`. */
  retryOn: string[];
  numRetries: number;
  /** 0 = no per-try timeout (the route timeout still applies). */
  perTryTimeoutMs: number;
  retriableStatusCodes: number[];
  baseIntervalMs: number;
  maxIntervalMs: number;
}

export interface ClusterAction {
  kind: 'cluster';
  clusters: WeightedTarget[];
  totalWeight: number;
  /** 0 disables the route timeout. */
  timeoutMs: number;
  retry?: RetrySpec;
  hashPolicy: HashPolicy[];
  prefixRewrite?: string;
  hostRewrite?: string;
  /** Upgrade types enabled (true) or disabled (false) on this route, overriding the listener. */
  upgrades: Record<string, boolean>;
}

export interface DirectAction {
  kind: 'direct';
  status: number;
  body: string;
}

export interface RouteModel {
  name: string;
  match: RouteMatchModel;
  action: ClusterAction | DirectAction;
  rateLimit?: RateLimitSpec;
  fault?: FaultSpec;
  requestHeadersToAdd: HeaderAdd[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: HeaderAdd[];
  responseHeadersToRemove: string[];
}

export interface RateLimitSpec {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
  /** Fraction (0..1) of requests the filter looks at; Envoy's default when unset is 0 (disabled). */
  enabled: number;
  /** Fraction (0..1) of limited requests that are really rejected. */
  enforced: number;
  status: number;
}

export interface FaultSpec {
  delay?: { ms: number; fraction: number };
  abort?: { httpStatus?: number; grpcStatus?: number; fraction: number };
}

// ---------------------------------------------------------------------------------------------
// Clusters and endpoints

export type LbPolicy = 'round_robin' | 'least_request' | 'random' | 'ring_hash';

export interface CircuitBreakerSpec {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
  /** When set, replaces `maxRetries`: retries may be `budgetPercent`% of active requests. */
  retryBudget?: { budgetPercent: number; minRetryConcurrency: number };
}

export interface OutlierSpec {
  consecutive5xx: number;
  enforcingConsecutive5xx: number;
  consecutiveGatewayFailure: number;
  enforcingConsecutiveGatewayFailure: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface ClusterModel {
  name: string;
  discovery: 'eds' | 'static';
  /** The EDS resource name (`eds_cluster_config.service_name`, else the cluster name). */
  edsName: string;
  connectTimeoutMs: number;
  lbPolicy: LbPolicy;
  choiceCount: number;
  minRingSize: number;
  /** Percent; below this share of healthy hosts a priority level load-balances over all hosts. */
  panicThreshold: number;
  protocol: 'http1' | 'http2';
  /**
   * `auto_config` (TLS clusters): each host is spoken to in HTTP/2 when it agrees to `h2` by ALPN,
   * else in HTTP/1.1 (`protocol` is then `http1`, the circuit breakers' view until a host is known).
   */
  alpnAuto?: boolean;
  maxRequestsPerConnection: number;
  /**
   * `typed_extension_protocol_options[…HttpProtocolOptions].common_http_protocol_options`: an
   * upstream connection (HTTP/1.1 pooled, HTTP/2 session) without a request for `idleMs` closes
   * (Envoy's default 1 h; 0: never); an upstream request/response exchange longer than
   * `maxStreamMs` is abandoned (0: no bound).
   */
  upstreamTimeouts: { idleMs: number; maxStreamMs: number };
  circuitBreakers: CircuitBreakerSpec;
  outlier?: OutlierSpec;
  /** Endpoints of a STATIC cluster (from `load_assignment`). */
  staticEndpoints?: EndpointSet;
  /** `transport_socket` `envoy.transport_sockets.tls`: connections to the hosts are TLS. */
  tls?: UpstreamTlsModel;
}

// ---------------------------------------------------------------------------------------------
// TLS (Envoy's `envoy.transport_sockets.tls`; see packages/identity/README.md)

/**
 * A private key or other secret bytes in the model: printed as `[redacted]` (as Envoy's
 * config_dump does), so golden files, `/config_dump` and logs never carry a key.
 */
export class Redacted<T> {
  constructor(readonly value: T) {}
  toJSON(): string {
    return '[redacted]';
  }
}

/** An Envoy DataSource: inline PEM text, or a file read when the TLS context is built. */
export type DataSourceModel = { inline: string } | { filename: string };

export interface TlsCertificateModel {
  certificateChain: DataSourceModel;
  privateKey: Redacted<DataSourceModel>;
}

/** An SDS secret read from a file (`sds_config.path_config_source.path`), by name. */
export interface SdsRef {
  name: string;
  path: string;
}

export interface SanMatcherModel {
  type: 'URI' | 'DNS';
  match: StringMatch;
}

/** A CertificateValidationContext: the trust bundle and the names the peer must have. */
export interface ValidationModel {
  trustedCa?: DataSourceModel;
  /** Any one must match one SAN of its type (Envoy's `match_typed_subject_alt_names`); none: any name. */
  sans: SanMatcherModel[];
}

/** A TLS secret: what an SDS resource carries. */
export type SecretModel = { name: string; kind: 'tls_certificate'; certificate: TlsCertificateModel } | { name: string; kind: 'validation_context'; validation: ValidationModel };

/** CommonTlsContext, as the proxy uses it. */
export interface TlsContextModel {
  /** Our certificate: inline (`tls_certificates`) or by SDS (`tls_certificate_sds_secret_configs`). */
  certificate?: { kind: 'inline'; value: TlsCertificateModel } | { kind: 'sds'; ref: SdsRef };
  /**
   * How the peer is verified: an inline validation context, one by SDS, or both
   * (`combined_validation_context`: the SDS one's trusted CA wins, SAN matchers add up).
   * Absent: the peer's certificate is not verified (Envoy's behaviour without one).
   */
  validation?: { inline?: ValidationModel; sds?: SdsRef };
  /** ALPN protocols offered/accepted, in preference order. */
  alpn: string[];
}

export interface DownstreamTlsModel extends TlsContextModel {
  requireClientCertificate: boolean;
}

export interface UpstreamTlsModel extends TlsContextModel {
  /** SNI sent; empty: none. */
  sni: string;
}

export type EndpointHealth = 'healthy' | 'unhealthy' | 'draining' | 'timeout' | 'degraded';

export interface EndpointModel {
  address: SocketAddr;
  weight: number;
  health: EndpointHealth;
  /**
   * The central health checker decides this endpoint's health (`filter_metadata["octo.mesh"]`
   * `health_verdict`), and since when (`health_since`, epoch ms) — what selective P2P checks read
   * to tell a stale verdict. Absent: the source decides (or nobody checks it).
   */
  central?: { healthy: boolean; since?: number };
}

export interface LocalityGroup {
  /** `region/zone/sub_zone`. */
  locality: string;
  priority: number;
  weight: number;
  endpoints: EndpointModel[];
}

export interface EndpointSet {
  cluster: string;
  localities: LocalityGroup[];
  overprovisioningFactor: number;
}

// ---------------------------------------------------------------------------------------------
// Snapshot

/** Everything in force at one moment; the data path reads one snapshot per request. */
export interface ProxySnapshot {
  listeners: ReadonlyMap<string, ListenerModel>;
  routeTables: ReadonlyMap<string, RouteTable>;
  clusters: ReadonlyMap<string, ClusterModel>;
  /** By EDS name. */
  endpoints: ReadonlyMap<string, EndpointSet>;
  /** Last accepted `version_info` per type URL. */
  versions: Readonly<Record<string, string>>;
}

export const EMPTY_SNAPSHOT: ProxySnapshot = {
  listeners: new Map(),
  routeTables: new Map(),
  clusters: new Map(),
  endpoints: new Map(),
  versions: {},
};

/** The endpoints a cluster uses, or undefined while it is warming (EDS not yet received). */
export function endpointsOf(s: ProxySnapshot, c: ClusterModel): EndpointSet | undefined {
  return c.discovery === 'static' ? c.staticEndpoints : s.endpoints.get(c.edsName);
}
