// Writes the octo-proxy bootstrap for bench/proxy-tls: a plaintext listener (`outbound`, the
// plain baseline: → upstream in cleartext) and a STRICT mTLS listener (`mtls`: the TLS inspector,
// a DownstreamTlsContext requiring a client certificate; → upstream over mTLS with an
// UpstreamTlsContext matching the upstream's SPIFFE ID). Certificates by SDS from files in the
// contract's format (packages/identity/README.md).
// Usage: node octo-bootstrap.mjs <plain-port> <mtls-port> <admin-port> <upstream-plain-port> <upstream-tls-port> <sds-dir>
const [plainPort, mtlsPort, adminPort, upPlain, upTls] = process.argv.slice(2, 7).map(Number);
const sds = process.argv[7];
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const hcm = (name, cluster) => [
  {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM,
      stat_prefix: name,
      route_config: { name, virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '5s' } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router' }],
    },
  },
];
const secret = (name) => ({ name, sds_config: { path_config_source: { path: `${sds}/${name}.json` } } });
const common = (extra) => ({ tls_certificate_sds_secret_configs: [secret('default')], alpn_protocols: ['http/1.1'], ...extra });
const cluster = (name, port, tls) => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  circuit_breakers: { thresholds: [{ max_connections: 4096, max_requests: 4096, max_pending_requests: 4096 }] },
  load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  ...(tls ? { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: tls } } } : {}),
});
const bootstrap = {
  adminPort,
  outboundPort: plainPort,
  inboundHost: '127.0.0.1',
  inboundPort: 0,
  accessLog: 'off',
  logLevel: 'warn',
  staticResources: {
    listeners: [
      { name: 'outbound', filter_chains: [{ filters: hcm('outbound', 'up-plain') }] },
      {
        name: 'mtls',
        address: { socket_address: { address: '127.0.0.1', port_value: mtlsPort } },
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector' }],
        filter_chains: [
          {
            filter_chain_match: { transport_protocol: 'tls' },
            filters: hcm('mtls', 'up-tls'),
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', require_client_certificate: true, common_tls_context: common({ validation_context_sds_secret_config: secret('ROOTCA') }) },
            },
          },
        ],
      },
    ],
    clusters: [
      cluster('up-plain', upPlain),
      cluster(
        'up-tls',
        upTls,
        common({
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/bench/sa/upstream' } }] },
            validation_context_sds_secret_config: secret('ROOTCA'),
          },
        }),
      ),
    ],
  },
};
process.stdout.write(JSON.stringify(bootstrap, null, 1));
