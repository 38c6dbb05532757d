// Writes the octo-proxy bootstrap for the benchmark: 100 routes over 10 virtual hosts and 10
// clusters (a realistic sidecar's outbound config), all clusters pointing at the one upstream,
// plus a TCP proxy listener. The benchmark's requests use host "bench" and hit route 100.
// Usage: node octo-bootstrap.mjs <http-port> <tcp-port> <admin-port> <upstream-port>
const [httpPort, tcpPort, adminPort, up] = process.argv.slice(2).map(Number);
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const clusters = Array.from({ length: 10 }, (_, i) => ({
  name: `svc-${i}`,
  type: 'STATIC',
  connect_timeout: '1s',
  lb_policy: 'ROUND_ROBIN',
  circuit_breakers: { thresholds: [{ max_connections: 4096, max_requests: 4096, max_pending_requests: 4096 }] },
  outlier_detection: { consecutive_5xx: 5, base_ejection_time: '30s' },
  load_assignment: { cluster_name: `svc-${i}`, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: up } } } }] }] },
}));
const virtualHosts = Array.from({ length: 10 }, (_, v) => ({
  name: `vh-${v}`,
  domains: v === 9 ? ['bench', `svc-${v}`] : [`svc-${v}`, `svc-${v}.default.svc.cluster.local`],
  routes: Array.from({ length: 10 }, (_, r) => {
    const n = v * 10 + r;
    const last = r === 9;
    return {
      name: `route-${n}`,
      match: last ? { prefix: '/' } : { prefix: `/api/v${r}/`, headers: [{ name: 'x-version', exact_match: `v${r}` }] },
      route: { cluster: `svc-${(n + v) % 10}`, timeout: '5s', retry_policy: { retry_on: 'connect-failure,gateway-error', num_retries: 2 } },
    };
  }),
}));
const bootstrap = {
  adminPort,
  outboundPort: httpPort,
  inboundHost: '127.0.0.1',
  inboundPort: 0,
  accessLog: 'off',
  logLevel: 'warn',
  staticResources: {
    listeners: [
      {
        name: 'outbound',
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, stat_prefix: 'outbound', route_config: { name: 'outbound', virtual_hosts: virtualHosts }, http_filters: [{ name: 'envoy.filters.http.router' }] } }] }],
      },
      {
        name: 'tcp',
        address: { socket_address: { address: '127.0.0.1', port_value: tcpPort } },
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'tcp', cluster: 'svc-0' } }] }],
      },
    ],
    clusters,
  },
};
process.stdout.write(JSON.stringify(bootstrap, null, 1));
