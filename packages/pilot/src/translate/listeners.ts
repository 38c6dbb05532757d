/**
 * Listener generator: the outbound listener every sidecar gets. The application sends all its
 * outgoing HTTP/gRPC traffic to it; routing is by Host/:authority over the node's route
 * configuration (RDS name `outbound`). The fault and local rate limit filters sit in the chain
 * with no configuration of their own, so they act only where a route's typed_per_filter_config
 * turns them on.
 *
 * TCP service ports cannot share it (no Host or SNI to route raw TCP by): each gets a listener of
 * its own, bound on the sidecar's loopback — see tcp.ts.
 */
import { Cluster, Cluster_DiscoveryType, HttpConnectionManager, HttpFilter, Listener, LocalRateLimit, Router, HTTPFault, packAny, TYPE_URL } from '@octo-mesh/proto';
import { ApiVersion } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import { FILTER, msDuration, OUTBOUND, pack, TYPE } from './common.js';

/** Name of the inbound listener, and of its inline route configuration. */
export const INBOUND = 'inbound';

/** The cluster of the local application behind the inbound listener: `inbound|<appPort>||local`. */
export const inboundClusterName = (appPort: number): string => `inbound|${appPort}||local`;

export interface ListenerOptions {
  /**
   * Without a port the listener has no address: an OCTO proxy attaches it to the outbound socket
   * it owns (or was handed by the LEGO agent). With one, it carries `0.0.0.0:<port>`, as a
   * standard Envoy, which binds its listeners itself, needs.
   */
  port?: number;
  /**
   * The port the application listens on (127.0.0.1). With it, an `inbound` listener (no
   * address: the proxy's inbound socket) forwards peer traffic to the application.
   */
  appPort?: number;
  /**
   * HTTP filters of the inbound listener before its router: the RBAC filters of the
   * AuthorizationPolicies of the node's own service (translate/authz.ts).
   */
  inboundFilters?: HttpFilter[];
}

export function generateListeners(opts: ListenerOptions = {}): Listener[] {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: OUTBOUND,
    rds: { routeConfigName: OUTBOUND, configSource: { ads: {}, resourceApiVersion: ApiVersion.V3 } },
    httpFilters: [
      { name: FILTER.fault, typedConfig: pack(TYPE.fault, HTTPFault, HTTPFault.fromPartial({})) },
      // A bucket but filter_enabled unset (0 %): off here, on where a route's config enables it.
      {
        name: FILTER.localRateLimit,
        typedConfig: pack(
          TYPE.localRateLimit,
          LocalRateLimit,
          LocalRateLimit.fromPartial({ statPrefix: 'outbound_rate_limit', tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillInterval: { seconds: 1, nanos: 0 } } }),
        ),
      },
      { name: FILTER.router, typedConfig: packAny(TYPE_URL.router, Router.fromPartial({})) },
    ],
  });
  const listeners = [
    Listener.fromPartial({
      name: OUTBOUND,
      ...(opts.port ? { address: { socketAddress: { address: '0.0.0.0', portValue: opts.port } } } : {}),
      filterChains: [{ filters: [{ name: FILTER.hcm, typedConfig: packAny(TYPE_URL.httpConnectionManager, hcm) }] }],
    }),
  ];
  if (opts.appPort) listeners.push(inboundListener(opts.appPort, opts.inboundFilters ?? []));
  return listeners;
}

/**
 * Peer proxies → this proxy → the application: every request on the inbound socket goes to the
 * application's port, with the route timeout off (the caller's sidecar enforces the policy's).
 */
function inboundListener(appPort: number, filters: readonly HttpFilter[]): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: INBOUND,
    routeConfig: {
      name: INBOUND,
      virtualHosts: [{ name: INBOUND, domains: ['*'], routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster: inboundClusterName(appPort), timeout: msDuration(0) } }] }],
    },
    httpFilters: [...filters, { name: FILTER.router, typedConfig: packAny(TYPE_URL.router, Router.fromPartial({})) }],
  });
  return Listener.fromPartial({ name: INBOUND, filterChains: [{ filters: [{ name: FILTER.hcm, typedConfig: packAny(TYPE_URL.httpConnectionManager, hcm) }] }] });
}

/** The static cluster of the local application (no EDS: its one endpoint is known here). */
export function generateInboundClusters(appPort: number | undefined): Cluster[] {
  if (!appPort) return [];
  const name = inboundClusterName(appPort);
  return [
    Cluster.fromPartial({
      name,
      type: Cluster_DiscoveryType.STATIC,
      connectTimeout: msDuration(1000),
      loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: appPort } } } }] }] },
    }),
  ];
}
