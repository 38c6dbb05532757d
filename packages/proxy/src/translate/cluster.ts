import { Cluster_DiscoveryType, Cluster_LbPolicy } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/cluster.js';
import { HealthStatus } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/health_check.js';
import { RoutingPriority } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import type { Cluster } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/cluster.js';
import type { ClusterLoadAssignment } from '@octo-mesh/proto/gen/proxy/envoy/config/endpoint/v3/endpoint.js';
import type { CircuitBreakerSpec, ClusterModel, EndpointHealth, EndpointModel, EndpointSet, LbPolicy, OutlierSpec, Result } from '../model.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/proxy/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { CLUSTER, CLUSTER_LOAD_ASSIGNMENT, UPSTREAM_HTTP_PROTOCOL_OPTIONS, checkFields } from './allow-list.js';
import { durationMs, guard, invalid, socketAddr } from './common.js';
import { upstreamTls } from './tls.js';

/** The one `typed_extension_protocol_options` key (and its type URL's message) the proxy reads. */
export const UPSTREAM_HTTP_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const UPSTREAM_HTTP_OPTIONS_TYPE_URL = `type.googleapis.com/${UPSTREAM_HTTP_OPTIONS_KEY}`;

const LB: Partial<Record<Cluster_LbPolicy, LbPolicy>> = {
  [Cluster_LbPolicy.ROUND_ROBIN]: 'round_robin',
  [Cluster_LbPolicy.LEAST_REQUEST]: 'least_request',
  [Cluster_LbPolicy.RANDOM]: 'random',
  [Cluster_LbPolicy.RING_HASH]: 'ring_hash',
};

/**
 * Upstream connection and stream bounds when the cluster sets none: idle connections close after
 * 1 h (Envoy's `idle_timeout` default for upstream connections), streams are not bounded.
 */
export const DEFAULT_UPSTREAM_TIMEOUTS: ClusterModel['upstreamTimeouts'] = { idleMs: 3_600_000, maxStreamMs: 0 };

/** Envoy's defaults for the DEFAULT priority's thresholds. */
export const DEFAULT_CIRCUIT_BREAKERS: CircuitBreakerSpec = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

/** Translates and validates one Cluster (CDS resource or bootstrap static cluster). */
export function translateCluster(c: Cluster): Result<ClusterModel> {
  return guard(`cluster ${JSON.stringify(c.name)}`, () => {
    if (!c.name) invalid('name', 'must not be empty');
    checkFields(CLUSTER, c, '');
    const type = c.type ?? Cluster_DiscoveryType.STATIC;
    if (type !== Cluster_DiscoveryType.EDS && type !== Cluster_DiscoveryType.STATIC)
      invalid('type', `only EDS and STATIC are supported, got ${Cluster_DiscoveryType[type] ?? type}`);
    const lbPolicy = LB[c.lbPolicy];
    if (!lbPolicy) invalid('lb_policy', `unsupported ${Cluster_LbPolicy[c.lbPolicy] ?? c.lbPolicy}`);
    const connectTimeoutMs = durationMs(c.connectTimeout, 5000);
    if (!(connectTimeoutMs > 0)) invalid('connect_timeout', 'must be greater than 0');
    const panic = c.commonLbConfig?.healthyPanicThreshold?.value ?? 50;
    if (panic < 0 || panic > 100) invalid('common_lb_config.healthy_panic_threshold', `must be in [0, 100], got ${panic}`);
    const choiceCount = c.leastRequestLbConfig?.choiceCount ?? 2;
    if (choiceCount < 2) invalid('least_request_lb_config.choice_count', 'must be at least 2');
    const out: ClusterModel = {
      name: c.name,
      discovery: type === Cluster_DiscoveryType.EDS ? 'eds' : 'static',
      edsName: c.edsClusterConfig?.serviceName || c.name,
      connectTimeoutMs,
      lbPolicy,
      choiceCount,
      minRingSize: Math.min(c.ringHashLbConfig?.minimumRingSize ?? 1024, 8_388_608),
      panicThreshold: panic,
      ...upstreamProtocol(c),
      circuitBreakers: circuitBreakers(c),
    };
    if (c.outlierDetection) out.outlier = outlier(c);
    if (c.transportSocket) out.tls = upstreamTls(c.transportSocket, 'transport_socket');
    if (out.discovery === 'static') {
      if (!c.loadAssignment) invalid('load_assignment', 'is required for a STATIC cluster');
      const eps = endpointSet(c.loadAssignment, 'load_assignment');
      out.staticEndpoints = { ...eps, cluster: c.name };
    } else if (c.loadAssignment) invalid('load_assignment', 'must not be set on an EDS cluster');
    return out;
  });
}

/**
 * The upstream protocol: `typed_extension_protocol_options` (how current Envoy and Istio-style
 * control planes ask for it: `explicit_http_config.http2_protocol_options`) or the deprecated
 * `http2_protocol_options`; HTTP/1.1 otherwise. `common_http_protocol_options
 * .max_requests_per_connection` there wins over the deprecated cluster-level field.
 */
function upstreamProtocol(c: Cluster): Pick<ClusterModel, 'protocol' | 'maxRequestsPerConnection' | 'alpnAuto' | 'upstreamTimeouts'> {
  let protocol: ClusterModel['protocol'] = c.http2ProtocolOptions ? 'http2' : 'http1';
  let auto = false;
  let maxRequestsPerConnection = c.maxRequestsPerConnection ?? 0;
  const upstreamTimeouts = { ...DEFAULT_UPSTREAM_TIMEOUTS };
  for (const [key, any] of Object.entries(c.typedExtensionProtocolOptions)) {
    const path = `typed_extension_protocol_options["${key}"]`;
    if (key !== UPSTREAM_HTTP_OPTIONS_KEY) invalid(path, `not implemented by this proxy (only ${UPSTREAM_HTTP_OPTIONS_KEY} is)`);
    if (any.typeUrl !== UPSTREAM_HTTP_OPTIONS_TYPE_URL) invalid(`${path}.type_url`, `expected ${UPSTREAM_HTTP_OPTIONS_TYPE_URL}, got ${any.typeUrl}`);
    let o: HttpProtocolOptions;
    try {
      o = HttpProtocolOptions.decode(any.value);
    } catch (err) {
      return invalid(path, `cannot decode: ${(err as Error).message}`);
    }
    checkFields(UPSTREAM_HTTP_PROTOCOL_OPTIONS, o, path);
    const common = o.commonHttpProtocolOptions;
    upstreamTimeouts.idleMs = durationMs(common?.idleTimeout, DEFAULT_UPSTREAM_TIMEOUTS.idleMs);
    upstreamTimeouts.maxStreamMs = durationMs(common?.maxStreamDuration, DEFAULT_UPSTREAM_TIMEOUTS.maxStreamMs);
    if (upstreamTimeouts.idleMs < 0) invalid(`${path}.common_http_protocol_options.idle_timeout`, 'must not be negative');
    if (upstreamTimeouts.maxStreamMs < 0) invalid(`${path}.common_http_protocol_options.max_stream_duration`, 'must not be negative');
    if (o.autoConfig) {
      // Envoy's AutoHttpConfig: HTTP/2 when the upstream agrees by ALPN, else HTTP/1.1 — which needs TLS.
      if (!c.transportSocket) invalid(`${path}.auto_config`, 'needs a TLS transport_socket: the protocol is chosen by ALPN');
      if (c.http2ProtocolOptions) invalid(`${path}.auto_config`, 'conflicts with http2_protocol_options on the cluster');
      protocol = 'http1';
      auto = true;
      const max = o.commonHttpProtocolOptions?.maxRequestsPerConnection;
      if (max !== undefined) maxRequestsPerConnection = max;
      continue;
    }
    if (!o.explicitHttpConfig) invalid(`${path}.explicit_http_config`, 'is required (or auto_config; use_downstream_protocol_config is not implemented)');
    const explicit = o.explicitHttpConfig;
    if (explicit.http2ProtocolOptions) protocol = 'http2';
    else if (explicit.httpProtocolOptions) {
      if (c.http2ProtocolOptions) invalid(`${path}.explicit_http_config`, 'asks for HTTP/1.1 but the cluster sets http2_protocol_options');
      protocol = 'http1';
    } else invalid(`${path}.explicit_http_config`, 'http_protocol_options or http2_protocol_options is required');
    const max = o.commonHttpProtocolOptions?.maxRequestsPerConnection;
    if (max !== undefined) maxRequestsPerConnection = max;
  }
  return auto ? { protocol, maxRequestsPerConnection, upstreamTimeouts, alpnAuto: true } : { protocol, maxRequestsPerConnection, upstreamTimeouts };
}

function circuitBreakers(c: Cluster): CircuitBreakerSpec {
  const t = c.circuitBreakers?.thresholds.find((x) => x.priority === RoutingPriority.DEFAULT);
  if (!t) return { ...DEFAULT_CIRCUIT_BREAKERS };
  const out: CircuitBreakerSpec = {
    maxConnections: t.maxConnections ?? DEFAULT_CIRCUIT_BREAKERS.maxConnections,
    maxPendingRequests: t.maxPendingRequests ?? DEFAULT_CIRCUIT_BREAKERS.maxPendingRequests,
    maxRequests: t.maxRequests ?? DEFAULT_CIRCUIT_BREAKERS.maxRequests,
    maxRetries: t.maxRetries ?? DEFAULT_CIRCUIT_BREAKERS.maxRetries,
  };
  if (t.retryBudget) {
    const pct = t.retryBudget.budgetPercent?.value ?? 20;
    if (pct < 0 || pct > 100) invalid('circuit_breakers.thresholds.retry_budget.budget_percent', `must be in [0, 100], got ${pct}`);
    out.retryBudget = { budgetPercent: pct, minRetryConcurrency: t.retryBudget.minRetryConcurrency ?? 3 };
  }
  return out;
}

function outlier(c: Cluster): OutlierSpec {
  const o = c.outlierDetection!;
  const pct = (v: number | undefined, def: number, field: string) => {
    const x = v ?? def;
    if (x < 0 || x > 100) invalid(`outlier_detection.${field}`, `must be in [0, 100], got ${x}`);
    return x;
  };
  const baseEjectionTimeMs = durationMs(o.baseEjectionTime, 30_000);
  const out: OutlierSpec = {
    consecutive5xx: o.consecutive5xx ?? 5,
    enforcingConsecutive5xx: pct(o.enforcingConsecutive5xx, 100, 'enforcing_consecutive_5xx'),
    consecutiveGatewayFailure: o.consecutiveGatewayFailure ?? 5,
    enforcingConsecutiveGatewayFailure: pct(o.enforcingConsecutiveGatewayFailure, 0, 'enforcing_consecutive_gateway_failure'),
    intervalMs: durationMs(o.interval, 10_000),
    baseEjectionTimeMs,
    maxEjectionTimeMs: Math.max(baseEjectionTimeMs, durationMs(o.maxEjectionTime, 300_000)),
    maxEjectionPercent: pct(o.maxEjectionPercent, 10, 'max_ejection_percent'),
  };
  if (!(out.intervalMs > 0)) invalid('outlier_detection.interval', 'must be greater than 0');
  return out;
}

const HEALTH: Record<number, EndpointHealth> = {
  [HealthStatus.UNKNOWN]: 'healthy',
  [HealthStatus.HEALTHY]: 'healthy',
  [HealthStatus.UNHEALTHY]: 'unhealthy',
  [HealthStatus.DRAINING]: 'draining',
  [HealthStatus.TIMEOUT]: 'timeout',
  [HealthStatus.DEGRADED]: 'degraded',
};

/** Translates and validates one ClusterLoadAssignment (EDS resource). */
export function translateClusterLoadAssignment(cla: ClusterLoadAssignment): Result<EndpointSet> {
  return guard(`cluster load assignment ${JSON.stringify(cla.clusterName)}`, () => {
    if (!cla.clusterName) invalid('cluster_name', 'must not be empty');
    checkFields(CLUSTER_LOAD_ASSIGNMENT, cla, '');
    return endpointSet(cla, '');
  });
}

function endpointSet(cla: ClusterLoadAssignment, path: string): EndpointSet {
  const p = (s: string) => (path ? `${path}.${s}` : s);
  const factor = cla.policy?.overprovisioningFactor ?? 140;
  if (factor <= 0) invalid(p('policy.overprovisioning_factor'), 'must be greater than 0');
  const priorities = new Set<number>();
  const localities = cla.endpoints.map((l, i) => {
    const lp = p(`endpoints[${i}]`);
    priorities.add(l.priority);
    const weight = l.loadBalancingWeight ?? 1;
    if (weight < 1) invalid(`${lp}.load_balancing_weight`, 'must be at least 1');
    return {
      locality: l.locality ? [l.locality.region, l.locality.zone, l.locality.subZone].join('/') : '',
      priority: l.priority,
      weight,
      endpoints: l.lbEndpoints.map((e, j) => {
        const ep = `${lp}.lb_endpoints[${j}]`;
        const w = e.loadBalancingWeight ?? 1;
        if (!(w >= 1)) invalid(`${ep}.load_balancing_weight`, 'must be at least 1');
        const health = HEALTH[e.healthStatus];
        if (!health) invalid(`${ep}.health_status`, `unknown ${e.healthStatus}`);
        const central = centralVerdict(e.metadata?.filterMetadata[OCTO_METADATA_KEY], `${ep}.metadata.filter_metadata["${OCTO_METADATA_KEY}"]`);
        return { address: socketAddr(e.endpoint?.address, `${ep}.endpoint.address`), weight: w, health, ...(central ? { central } : {}) };
      }),
    };
  });
  // Envoy requires priorities to be contiguous from 0.
  const sorted = [...priorities].sort((a, b) => a - b);
  sorted.forEach((pr, i) => {
    if (pr !== i) invalid(p('endpoints'), `priorities must be contiguous from 0, got ${sorted.join(',')}`);
  });
  return { cluster: cla.clusterName, localities, overprovisioningFactor: factor / 100 };
}

/** The `filter_metadata` key under which pilots carry the central checker's verdict (see pilot's translate/endpoints.ts). */
export const OCTO_METADATA_KEY = 'octo.mesh';

/**
 * The central verdict from an endpoint's `filter_metadata["octo.mesh"]`: `health_verdict`
 * (`healthy` | `unhealthy`) and `health_since` (RFC 3339). Other keys there are not read.
 */
function centralVerdict(md: Record<string, unknown> | undefined, path: string): EndpointModel['central'] {
  if (md === undefined) return undefined;
  const verdict = md['health_verdict'];
  if (verdict === undefined) return undefined;
  if (verdict !== 'healthy' && verdict !== 'unhealthy') invalid(`${path}.health_verdict`, `must be "healthy" or "unhealthy", got ${JSON.stringify(verdict)}`);
  const sinceText = md['health_since'];
  if (sinceText === undefined) return { healthy: verdict === 'healthy' };
  const since = typeof sinceText === 'string' ? Date.parse(sinceText) : NaN;
  if (!Number.isFinite(since)) invalid(`${path}.health_since`, `must be an RFC 3339 time, got ${JSON.stringify(sinceText)}`);
  return { healthy: verdict === 'healthy', since };
}
