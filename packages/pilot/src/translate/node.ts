/**
 * Composes a node's configuration from the translations of the services it depends on. Shared
 * pieces (clusters, virtual hosts, load assignments) are reused as they are; only the listener
 * and the route configuration (the node's virtual hosts together) are per scope.
 */
import { RouteConfiguration, type Cluster, type ClusterLoadAssignment, type Listener } from '@octo-mesh/proto';
import type { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { splitServiceKey, type ServiceKey } from '../model.js';
import { virtualHostsFor } from './routes.js';
import { OUTBOUND } from './common.js';
import { appAddressOf, generateInboundClusters, generateListeners, type ListenerOptions } from './listeners.js';
import type { ServiceTranslation } from './service.js';
import { selectTcpListeners, type TcpConflict } from './tcp.js';
import { generateApiListener, resolveApiListener } from './proxyless.js';

export interface NodeConfig {
  listeners: Listener[];
  routes: RouteConfiguration[];
  clusters: Cluster[];
  endpoints: ClusterLoadAssignment[];
  governance: ServiceGovernance[];
  /** TCP ports of dependencies that got no listener, and why (see tcp.ts). */
  tcpConflicts: TcpConflict[];
}

/**
 * @param services translations of the node's dependencies; missing or failed ones are skipped.
 * @param endpoints the load assignments of a service for this node's locality.
 * @param apiListeners listener names a proxyless client asked for (see proxyless.ts); those that
 *   resolve to an HTTP port of a dependency get an api_listener and its route configuration.
 */
export function composeNode(
  dependencies: readonly ServiceKey[],
  services: ReadonlyMap<ServiceKey, ServiceTranslation>,
  endpoints: (key: ServiceKey) => readonly ClusterLoadAssignment[],
  listener: ListenerOptions = {},
  callerNamespace = 'default',
  apiListeners: readonly string[] = [],
): NodeConfig {
  const present = [...new Set(dependencies)].sort().flatMap((k) => {
    const t = services.get(k);
    return t ? [t] : [];
  });
  const byKey = new Map(present.map((t) => [t.key, t]));
  const api = [...new Set(apiListeners)].sort().flatMap((name) => {
    const r = resolveApiListener(name, callerNamespace, (k) => byKey.get(k)?.proxylessRoutes);
    return r ? [{ listener: generateApiListener(name, r.routeConfig), route: byKey.get(r.service)!.proxylessRoutes.find((c) => c.name === r.routeConfig)! }] : [];
  });
  const tcp = selectTcpListeners(present, { ...(listener.appPort ? { appPort: listener.appPort } : {}), ...(listener.port ? { outboundPort: listener.port } : {}) });
  return {
    listeners: [...generateListeners(listener), ...tcp.listeners, ...api.map((a) => a.listener)],
    routes: [
      routeConfiguration(present.map((t) => ({ virtualHosts: virtualHostsFor(t.virtualHosts, splitServiceKey(t.key).namespace, callerNamespace) }))),
      ...new Set(api.map((a) => a.route)),
    ],
    clusters: [...present.flatMap((t) => t.clusters), ...generateInboundClusters(appAddressOf(listener))],
    endpoints: present.flatMap((t) => [...endpoints(t.key)]),
    governance: present.map((t) => t.governance),
    tcpConflicts: tcp.conflicts,
  };
}

export function routeConfiguration(services: readonly Pick<ServiceTranslation, 'virtualHosts'>[]): RouteConfiguration {
  return RouteConfiguration.fromPartial({ name: OUTBOUND, virtualHosts: services.flatMap((t) => t.virtualHosts), validateClusters: false });
}
