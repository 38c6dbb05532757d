/**
 * Listener generator: the outbound listener every sidecar gets. The application sends all its
 * outgoing HTTP/gRPC traffic to it; routing is by Host/:authority over the node's route
 * configuration (RDS name `outbound`). The fault and local rate limit filters sit in the chain
 * with no configuration of their own, so they act only where a route's typed_per_filter_config
 * turns them on.
 *
 * TCP service ports get clusters but no listener: without a destination address or SNI there is
 * nothing on a shared outbound port to route raw TCP by.
 */
import { HttpConnectionManager, Listener, LocalRateLimit, Router, HTTPFault, packAny, TYPE_URL } from '@octo-mesh/proto';
import { ApiVersion } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import { FILTER, OUTBOUND, pack, TYPE } from './common.js';

export interface ListenerOptions {
  /**
   * Without a port the listener has no address: an OCTO proxy attaches it to the outbound socket
   * it owns (or was handed by the LEGO agent). With one, it carries `0.0.0.0:<port>`, as a
   * standard Envoy, which binds its listeners itself, needs.
   */
  port?: number;
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
  return [
    Listener.fromPartial({
      name: OUTBOUND,
      ...(opts.port ? { address: { socketAddress: { address: '0.0.0.0', portValue: opts.port } } } : {}),
      filterChains: [{ filters: [{ name: FILTER.hcm, typedConfig: packAny(TYPE_URL.httpConnectionManager, hcm) }] }],
    }),
  ];
}
