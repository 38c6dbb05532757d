// The proxy bootstraps bench/footprint measures (footprint.mjs, snapshot.mjs): static config
// through `--config FILE`, one route or 1,000 routes over loopback upstreams.
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

export function bootstrap(adminPort, outboundPort, clusters, virtualHosts) {
  return {
    adminPort,
    outboundPort,
    inboundHost: '127.0.0.1',
    inboundPort: 0,
    accessLog: 'off',
    logLevel: 'warn',
    v8Helpers: 'normal',
    staticResources: {
      listeners: [
        {
          name: 'outbound',
          filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, stat_prefix: 'outbound', route_config: { name: 'outbound', virtual_hosts: virtualHosts }, http_filters: [{ name: 'envoy.filters.http.router' }] } }] }],
        },
      ],
      clusters,
    },
  };
}
export const cluster = (name, ports) => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  lb_policy: 'ROUND_ROBIN',
  circuit_breakers: { thresholds: [{ max_connections: 1024, max_requests: 1024, max_pending_requests: 1024 }] },
  outlier_detection: { consecutive_5xx: 5, base_ejection_time: '30s' },
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: p } } } })) }] },
});
export function oneRoute(adminPort, outboundPort, upPorts) {
  return bootstrap(adminPort, outboundPort, [cluster('svc-0', upPorts.slice(0, 1))], [{ name: 'vh-0', domains: ['svc-0'], routes: [{ name: 'route-0', match: { prefix: '/' }, route: { cluster: 'svc-0' } }] }]);
}
/** 100 virtual hosts × 10 routes (9 with a prefix and a header matcher, the last `/`), 100 clusters × 5 endpoints. */
export function thousandRoutes(adminPort, outboundPort, upPorts) {
  const clusters = Array.from({ length: 100 }, (_, i) => cluster(`svc-${i}`, upPorts));
  const virtualHosts = Array.from({ length: 100 }, (_, v) => ({
    name: `vh-${v}`,
    domains: [`svc-${v}`, `svc-${v}.default.svc.cluster.local`],
    routes: Array.from({ length: 10 }, (_, r) => ({
      name: `route-${v * 10 + r}`,
      match: r === 9 ? { prefix: '/' } : { prefix: `/api/v${r}/`, headers: [{ name: 'x-version', exact_match: `v${r}` }] },
      route: { cluster: `svc-${(v + r) % 100}`, timeout: '5s', retry_policy: { retry_on: 'connect-failure,gateway-error', num_retries: 2 } },
    })),
  }));
  return bootstrap(adminPort, outboundPort, clusters, virtualHosts);
}
