/**
 * Endpoint generator: one ClusterLoadAssignment per cluster, endpoints grouped by locality.
 *
 * Health comes from the model, where the central health checker has already written it: sidecars
 * do not probe (see ServiceGovernance). With locality preference on (the default) and a caller
 * locality known, localities get Envoy priorities — 0 the caller's zone, 1 its region, 2 the
 * rest — so traffic stays in the zone and fails over by priority when too few are healthy there.
 * An endpoint whose health the central checker decides carries that verdict and since when in
 * `filter_metadata["octo.mesh"]` (`health_verdict`, `health_since`): octo-proxy's selective
 * peer-to-peer checks tell a stale verdict from a fresh one by it. It changes only when the
 * verdict changes, so it adds no push.
 */
import { isIP } from 'node:net';
import type { RoutePolicy } from '@octo-mesh/api';
import type { CheckedEndpoint } from '@octo-mesh/contracts';
import { ClusterLoadAssignment, HealthStatus } from '@octo-mesh/proto';
import type { Endpoint, Locality, Service } from '../model.js';
import { clusterName, fieldError, serviceHost } from './common.js';
import { coveredPorts, subsetsFor } from './clusters.js';


const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i;

export function validateEndpoints(endpoints: readonly Endpoint[]): void {
  endpoints.forEach((e, i) => {
    if (!isIP(e.address) && !HOSTNAME.test(e.address)) fieldError(`endpoints[${i}].address`, `not an IP address or host name: ${JSON.stringify(e.address)}`);
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) fieldError(`endpoints[${i}].port`, `must be 1-65535, got ${e.port}`);
    if (e.weight !== undefined && (!Number.isInteger(e.weight) || e.weight < 1)) fieldError(`endpoints[${i}].weight`, `must be an integer ≥ 1, got ${e.weight}`);
  });
}

/** The priority of an endpoint's locality as seen from the caller's. */
export function localityPriority(of: Locality | undefined, caller: Locality | undefined): number {
  if (!caller) return 0;
  if (!of) return 2;
  if (of.region === caller.region && of.zone === caller.zone) return 0;
  return of.region === caller.region ? 1 : 2;
}

const matchesLabels = (e: Endpoint, want: Record<string, string>) => Object.entries(want).every(([k, v]) => e.labels[k] === v);

/**
 * @param caller the requesting sidecar's locality; part of the output, so callers cache the
 *   result per (service, locality).
 */
export function generateLoadAssignments(
  service: Service,
  endpoints: readonly Endpoint[],
  policy: RoutePolicy | undefined,
  caller?: Locality,
): ClusterLoadAssignment[] {
  validateEndpoints(endpoints);
  const covered = coveredPorts(service, policy);
  const host = serviceHost(service);
  const out: ClusterLoadAssignment[] = [];
  for (const port of service.spec.ports) {
    const governed = covered.has(port.port) ? policy : undefined;
    const preferLocal = (governed?.spec.loadBalancer?.localityPreference ?? true) && caller !== undefined;
    // Every endpoint serves every port: its address is the instance's inbound sidecar, which
    // tells the service ports apart itself.
    const onPort = endpoints;
    for (const subset of subsetsFor(port, policy, covered)) {
      const labels = subset ? (policy!.spec.subsets ?? []).find((s) => s.name === subset)!.labels : {};
      const members = onPort.filter((e) => matchesLabels(e, labels));
      out.push(assignment(clusterName(port.port, subset, host), members, preferLocal ? caller : undefined));
    }
  }
  return out;
}

function assignment(name: string, members: readonly Endpoint[], caller: Locality | undefined): ClusterLoadAssignment {
  const groups = new Map<string, Endpoint[]>();
  for (const e of members) {
    const k = `${e.locality?.region ?? ''}/${e.locality?.zone ?? ''}`;
    const g = groups.get(k);
    if (g) g.push(e);
    else groups.set(k, [e]);
  }
  const localities = [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, es]) => {
      const loc = es[0]!.locality;
      return {
        locality: { region: loc?.region ?? '', zone: loc?.zone ?? '' },
        // gRPC clients drop a locality without a weight (gRFC A27: "localities with no weight
        // are ignored") and would find no backend. 1 on every locality is what octo-proxy already
        // assumed for an absent weight (each locality of a priority an equal share), so its
        // balancing is unchanged and a proxyless client balances the same way. Envoy ignores
        // locality weights unless the cluster enables locality-weighted balancing.
        loadBalancingWeight: 1,
        priority: localityPriority(loc, caller),
        lbEndpoints: [...es]
          .sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port)
          .map((e) => ({
            endpoint: { address: { socketAddress: { address: e.address, portValue: e.port } } },
            healthStatus: e.healthy ? HealthStatus.HEALTHY : HealthStatus.UNHEALTHY,
            loadBalancingWeight: e.weight ?? 1,
            ...verdictMetadata(e),
          })),
      };
    });
  // Envoy wants priorities contiguous from 0: rank the ones in use.
  const used = [...new Set(localities.map((l) => l.priority))].sort((a, b) => a - b);
  for (const l of localities) l.priority = used.indexOf(l.priority);
  return ClusterLoadAssignment.fromPartial({ clusterName: name, endpoints: localities });
}

/** The `filter_metadata` key under which pilots tell sidecars about the central checker's verdict. */
export const OCTO_METADATA_KEY = 'octo.mesh';

/** The central verdict of an endpoint it decides, as LbEndpoint metadata (see the file comment). */
function verdictMetadata(e: CheckedEndpoint): { metadata?: { filterMetadata: Record<string, Record<string, unknown>> } } {
  const v = e.verdict;
  if (!v) return {};
  return { metadata: { filterMetadata: { [OCTO_METADATA_KEY]: { health_verdict: v.healthy ? 'healthy' : 'unhealthy', ...(v.since ? { health_since: v.since } : {}) } } } };
}
