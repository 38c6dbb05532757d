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

/**
 * Where the application listens: a port on 127.0.0.1 (node metadata `app_port`) or the path of a
 * Unix socket (`app_socket`, OCTO's app ↔ sidecar path).
 */
export type AppAddress = number | string;

/**
 * The cluster of the local application behind the inbound listener: `inbound|<appPort>||local`,
 * or `inbound|unix||local` for an application on a Unix socket (one application per sidecar).
 */
export const inboundClusterName = (app: AppAddress): string => (typeof app === 'number' ? `inbound|${app}||local` : 'inbound|unix||local');

/** The application's address in a listener's options: its socket when it has one, else its port. */
export const appAddressOf = (opts: { appPort?: number; appSocket?: string }): AppAddress | undefined => opts.appSocket || opts.appPort || undefined;

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
   * The path of the Unix socket the application listens on, instead of a port: the inbound
   * cluster's endpoint is then an Envoy `pipe` address (`Address.pipe.path`).
   */
  appSocket?: string;
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
  const app = appAddressOf(opts);
  if (app) listeners.push(inboundListener(app, opts.inboundFilters ?? []));
  return listeners;
}

/**
 * Peer proxies → this proxy → the application: every request on the inbound socket goes to the
 * application (its port or its Unix socket), with the route timeout off (the caller's sidecar
 * enforces the policy's).
 */
function inboundListener(app: AppAddress, filters: readonly HttpFilter[]): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: INBOUND,
    routeConfig: {
      name: INBOUND,
      virtualHosts: [{ name: INBOUND, domains: ['*'], routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster: inboundClusterName(app), timeout: msDuration(0) } }] }],
    },
    httpFilters: [...filters, { name: FILTER.router, typedConfig: packAny(TYPE_URL.router, Router.fromPartial({})) }],
  });
  return Listener.fromPartial({ name: INBOUND, filterChains: [{ filters: [{ name: FILTER.hcm, typedConfig: packAny(TYPE_URL.httpConnectionManager, hcm) }] }] });
}

/**
 * The static cluster of the local application (no EDS: its one endpoint is known here): a
 * `socket_address` on 127.0.0.1, or a `pipe` (Envoy v3 `Address.pipe.path`) for a Unix socket.
 */
export function generateInboundClusters(app: AppAddress | undefined): Cluster[] {
  if (!app) return [];
  const name = inboundClusterName(app);
  const address = typeof app === 'number' ? { socketAddress: { address: '127.0.0.1', portValue: app } } : { pipe: { path: app } };
  return [
    Cluster.fromPartial({
      name,
      type: Cluster_DiscoveryType.STATIC,
      connectTimeout: msDuration(1000),
      loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address } }] }] },
    }),
  ];
}
