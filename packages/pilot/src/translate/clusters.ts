/**
 * Cluster generator: one EDS cluster per service port, plus one per RoutePolicy subset on the
 * ports the policy covers. Load balancing, circuit breaking and outlier detection come from the
 * policy and apply to every cluster of a covered port (subsets are the same service).
 */
import type { RoutePolicy } from '@octo-mesh/api';
import { Cluster, Cluster_DiscoveryType, Cluster_LbPolicy } from '@octo-mesh/proto';
import { ApiVersion } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import type { Service, ServicePort } from '../model.js';
import { clusterName, fieldError, msDuration, protoDuration, serviceHost } from './common.js';

/** Ports of the service a policy covers (all, or the one in `targetRef.port`). */
export function coveredPorts(service: Service, policy: RoutePolicy | undefined): Set<number> {
  if (!policy) return new Set();
  const only = policy.spec.targetRef.port;
  return new Set(service.spec.ports.filter((p) => only === undefined || p.port === only).map((p) => p.port));
}

/** Subset names of a port's clusters: '' (the whole service) first, then the policy's subsets. */
export function subsetsFor(port: ServicePort, policy: RoutePolicy | undefined, covered: Set<number>): string[] {
  const names = covered.has(port.port) ? (policy?.spec.subsets ?? []).map((s) => s.name) : [];
  return ['', ...names];
}

const LB: Record<string, Cluster_LbPolicy> = {
  RoundRobin: Cluster_LbPolicy.ROUND_ROBIN,
  LeastRequest: Cluster_LbPolicy.LEAST_REQUEST,
  Random: Cluster_LbPolicy.RANDOM,
  RingHash: Cluster_LbPolicy.RING_HASH,
};

export function validateService(service: Service): void {
  const seen = new Set<number>();
  service.spec.ports.forEach((p, i) => {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) fieldError(`spec.ports[${i}].port`, `must be 1-65535, got ${p.port}`);
    if (seen.has(p.port)) fieldError(`spec.ports[${i}].port`, `duplicate port ${p.port}`);
    if (!['http', 'http2', 'grpc', 'tcp'].includes(p.protocol)) fieldError(`spec.ports[${i}].protocol`, `must be http, http2, grpc or tcp, got ${JSON.stringify(p.protocol)}`);
    seen.add(p.port);
  });
}

export function generateClusters(service: Service, policy: RoutePolicy | undefined): Cluster[] {
  validateService(service);
  const covered = coveredPorts(service, policy);
  const host = serviceHost(service);
  const out: Cluster[] = [];
  for (const port of service.spec.ports) {
    const governed = covered.has(port.port) ? policy : undefined;
    for (const subset of subsetsFor(port, policy, covered)) out.push(cluster(clusterName(port.port, subset, host), port, governed));
  }
  return out;
}

function cluster(name: string, port: ServicePort, policy: RoutePolicy | undefined): Cluster {
  const spec = policy?.spec;
  const lb = spec?.loadBalancer;
  const cb = spec?.circuitBreaker;
  const od = spec?.outlierDetection;
  return Cluster.fromPartial({
    name,
    type: Cluster_DiscoveryType.EDS,
    edsClusterConfig: { serviceName: name, edsConfig: { ads: {}, resourceApiVersion: ApiVersion.V3 } },
    connectTimeout: msDuration(1000),
    lbPolicy: LB[lb?.policy ?? 'RoundRobin'],
    ...(lb?.ringHash ? { ringHashLbConfig: { minimumRingSize: lb.ringHash.minimumRingSize } } : {}),
    ...(lb ? { commonLbConfig: { healthyPanicThreshold: { value: lb.panicThreshold } } } : {}),
    ...(port.protocol === 'http2' || port.protocol === 'grpc' ? { http2ProtocolOptions: {} } : {}),
    ...(cb
      ? {
          circuitBreakers: {
            thresholds: [
              {
                ...(cb.maxConnections !== undefined ? { maxConnections: cb.maxConnections } : {}),
                ...(cb.maxPendingRequests !== undefined ? { maxPendingRequests: cb.maxPendingRequests } : {}),
                ...(cb.maxRequests !== undefined ? { maxRequests: cb.maxRequests } : {}),
                ...(cb.maxRetries !== undefined ? { maxRetries: cb.maxRetries } : {}),
              },
            ],
          },
        }
      : {}),
    ...(od
      ? {
          outlierDetection: {
            // Envoy's own default for consecutive_5xx is 5 (enforced); only what the policy says is set.
            ...(od.consecutive5xx !== undefined ? { consecutive5xx: od.consecutive5xx, enforcingConsecutive5xx: 100 } : { enforcingConsecutive5xx: 0 }),
            ...(od.consecutiveGatewayErrors !== undefined
              ? { consecutiveGatewayFailure: od.consecutiveGatewayErrors, enforcingConsecutiveGatewayFailure: 100 }
              : {}),
            interval: protoDuration(od.interval, 'spec.outlierDetection.interval'),
            baseEjectionTime: protoDuration(od.baseEjectionTime, 'spec.outlierDetection.baseEjectionTime'),
            maxEjectionPercent: od.maxEjectionPercent,
          },
        }
      : {}),
  });
}
