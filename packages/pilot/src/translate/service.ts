/**
 * Composes the generators for one service. A RoutePolicy that fails to translate is rejected and
 * the service is translated without it, so one bad policy costs only its own rules; only bad
 * service data (which no policy can fix) makes the whole service fail.
 */
import type { RoutePolicy } from '@octo-mesh/api';
import type { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, VirtualHost } from '@octo-mesh/proto';
import type { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { keyOf, policyKey, type Locality, type ServiceData, type ServiceKey } from '../model.js';
import { generate, TranslationError } from './common.js';
import { generateClusters, validateService } from './clusters.js';
import { generateLoadAssignments } from './endpoints.js';
import { generateGovernance } from './governance.js';
import { generateProxylessRoutes } from './proxyless.js';
import { generateVirtualHosts } from './routes.js';
import { generateTcpListeners } from './tcp.js';
import { generationOf, selectPolicy, type PolicyVerdict } from './policy.js';

/** The xDS pieces of one service that do not depend on who asks. */
export interface ServiceTranslation {
  key: ServiceKey;
  clusters: Cluster[];
  virtualHosts: VirtualHost[];
  /**
   * For proxyless gRPC clients: one route configuration per virtual host (same name, same
   * routes as gRPC can act on them), read by the api_listeners of the names clients ask for.
   */
  proxylessRoutes: RouteConfiguration[];
  /**
   * One listener per TCP port (127.0.0.1:<port>, tcp_proxy to the whole service's cluster):
   * candidates — a node gets those whose address no other dependency of it claims first.
   */
  tcpListeners: Listener[];
  governance: ServiceGovernance;
  /** The RoutePolicy in force (validated, defaulted), if any; the endpoint generator needs it. */
  policy?: RoutePolicy;
  /** `{policy, generation}` of the policy in force, recorded on every resource it shaped. */
  provenance?: { policy: string; generation: number };
  /** One per RoutePolicy targeting the service. */
  verdicts: PolicyVerdict[];
}

function withPolicy(data: ServiceData, policy: RoutePolicy | undefined): Omit<ServiceTranslation, 'key' | 'verdicts'> {
  const clusters = generate('clusters', () => generateClusters(data.service, policy));
  const virtualHosts = generate('routes', () => generateVirtualHosts(data.service, policy));
  const proxylessRoutes = generate('proxyless', () => generateProxylessRoutes(virtualHosts));
  const tcpListeners = generate('listeners', () => generateTcpListeners(data.service));
  // Endpoints are generated per caller later; run once here so a policy the endpoint generator
  // cannot use is rejected now, not at push time.
  generate('endpoints', () => generateLoadAssignments(data.service, [], policy));
  const governance = generate('governance', () => generateGovernance(data.service, policy, clusters.map((c) => c.name)));
  return {
    clusters,
    virtualHosts,
    proxylessRoutes,
    tcpListeners,
    governance,
    ...(policy ? { policy, provenance: { policy: policyKey(policy), generation: generationOf(policy) } } : {}),
  };
}

/** @throws TranslationError when the service itself is invalid (named by generator and field). */
export function translateService(data: ServiceData): ServiceTranslation {
  const key = keyOf(data.service);
  generate('service', () => validateService(data.service));
  const { policy, rejected } = selectPolicy(data);
  const verdicts = [...rejected];
  if (policy) {
    try {
      const out = withPolicy(data, policy);
      verdicts.unshift({ policy: policyKey(policy), generation: generationOf(policy), accepted: true });
      return { key, ...out, verdicts };
    } catch (err) {
      if (!(err instanceof TranslationError)) throw err;
      verdicts.unshift({ policy: policyKey(policy), generation: generationOf(policy), accepted: false, reason: err.message });
    }
  }
  return { key, ...withPolicy(data, undefined), verdicts };
}

/** The ClusterLoadAssignments of a service as seen from `caller`'s locality. */
export function translateEndpoints(data: ServiceData, translation: Pick<ServiceTranslation, 'policy'>, caller?: Locality): ClusterLoadAssignment[] {
  return generate('endpoints', () => generateLoadAssignments(data.service, data.endpoints, translation.policy, caller));
}
