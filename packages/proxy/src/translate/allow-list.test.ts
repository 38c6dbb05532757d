import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TYPE_URL } from '@octo-mesh/proto';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from './index.js';
import { camel } from './allow-list.js';
import type { ClusterModel } from '../model.js';
import { allRules, withAllowList } from './allow-list-doc.js';
import { cla, edsCluster, httpListener, routeConfig, staticCluster } from '../test-support/resources.js';

const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const hpo = (o: Record<string, unknown>) => ({ typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, ...o } } });
const route = (extra: Record<string, unknown>, match: Record<string, unknown> = { prefix: '/' }) => routeConfig('r', [{ match, route: { cluster: 'c', ...extra } }]);
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const RL_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** An HCM listener with extra HttpConnectionManager fields. */
function hcmListener(hcm: Record<string, unknown>): unknown {
  const l = httpListener('l', { rds: 'r' }) as { filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] };
  Object.assign(l.filter_chains[0]!.filters[0]!.typed_config, hcm);
  return l;
}

function translate(typeUrl: ResourceTypeUrl, obj: unknown) {
  const msg = fromEnvoyJson(typeUrl, obj);
  if (!msg.ok) throw new Error(msg.error);
  return translateResource(typeUrl, msg.value);
}

describe('xDS allow-list', () => {
  // columns: what, type, resource (Envoy JSON), the NACK's error (a substring: the field's path)
  it.each<[string, ResourceTypeUrl, unknown, string]>([
    ['TLS parameters to the upstream', TYPE_URL.cluster, edsCluster('c', { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_params: { tls_minimum_protocol_version: 'TLSv1_3' } } } } }), 'cluster "c": transport_socket.typed_config.common_tls_context.tls_params: not implemented'],
    ['active health checks', TYPE_URL.cluster, edsCluster('c', { health_checks: [{ timeout: '1s', interval: '5s', tcp_health_check: {} }] }), 'cluster "c": health_checks: not implemented'],
    ['subset load balancing', TYPE_URL.cluster, edsCluster('c', { lb_subset_config: { subset_selectors: [{ keys: ['version'] }] } }), 'cluster "c": lb_subset_config: not implemented'],
    ['an unknown protocol options key', TYPE_URL.cluster, edsCluster('c', { typed_extension_protocol_options: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': { '@type': `type.googleapis.com/${HPO}` } } }), 'typed_extension_protocol_options["envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"]: not implemented'],
    ['protocol auto-detection without TLS', TYPE_URL.cluster, edsCluster('c', hpo({ auto_config: {} })), `typed_extension_protocol_options["${HPO}"].auto_config: needs a TLS transport_socket`],
    ['protocol from the downstream', TYPE_URL.cluster, edsCluster('c', hpo({ use_downstream_protocol_config: {} })), `typed_extension_protocol_options["${HPO}"].use_downstream_protocol_config: not implemented`],
    ['HTTP/3 upstream', TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http3_protocol_options: {} } })), `typed_extension_protocol_options["${HPO}"].explicit_http_config.http3_protocol_options: not implemented`],
    ['an HTTP/2 setting', TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 100 } } })), 'explicit_http_config.http2_protocol_options.max_concurrent_streams: not implemented'],
    ['an upstream connection lifetime', TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http2_protocol_options: {} }, common_http_protocol_options: { max_connection_duration: '1s' } })), 'common_http_protocol_options.max_connection_duration: not implemented'],
    ['a negative upstream idle timeout', TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http2_protocol_options: {} }, common_http_protocol_options: { idle_timeout: '-1s' } })), 'common_http_protocol_options.idle_timeout: must not be negative'],
    ['a negative stream idle timeout', TYPE_URL.listener, hcmListener({ stream_idle_timeout: '-1s' }), 'stream_idle_timeout: must not be negative'],
    ['a negative downstream max stream duration', TYPE_URL.listener, hcmListener({ common_http_protocol_options: { max_stream_duration: '-2s' } }), 'common_http_protocol_options.max_stream_duration: must not be negative'],
    ['a deprecated HTTP/2 setting', TYPE_URL.cluster, edsCluster('c', { http2_protocol_options: { initial_stream_window_size: 65535 } }), 'cluster "c": http2_protocol_options.initial_stream_window_size: not implemented'],
    ['success-rate outlier detection', TYPE_URL.cluster, edsCluster('c', { outlier_detection: { enforcing_success_rate: 100 } }), 'cluster "c": outlier_detection.enforcing_success_rate: not implemented'],
    ['EDS from another config source', TYPE_URL.cluster, edsCluster('c', { eds_cluster_config: { eds_config: { path_config_source: { path: '/etc/eds.yaml' } } } }), 'eds_cluster_config.eds_config.path_config_source: not implemented'],
    ['an endpoint resolver', TYPE_URL.endpoint, { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'a', port_value: 1, resolver_name: 'dns' } } } }] }] }, 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address.resolver_name: not implemented'],
    ['drop overload', TYPE_URL.endpoint, { ...(cla('c', [1]) as object), policy: { drop_overloads: [{ category: 'x', drop_percentage: { numerator: 5 } }] } }, 'policy.drop_overloads: not implemented'],
    ['request mirroring', TYPE_URL.route, route({ request_mirror_policies: [{ cluster: 'm' }] }), 'virtual_hosts[0].routes[0].route.request_mirror_policies: not implemented'],
    ['a route idle timeout', TYPE_URL.route, route({ idle_timeout: '5s' }), 'virtual_hosts[0].routes[0].route.idle_timeout: not implemented'],
    ['a missing header matched as empty', TYPE_URL.route, route({}, { prefix: '/', headers: [{ name: 'x', exact_match: '', treat_missing_header_as_empty: true }] }), 'virtual_hosts[0].routes[0].match.headers[0].treat_missing_header_as_empty: not implemented'],
    ['a runtime fraction', TYPE_URL.route, route({}, { prefix: '/', runtime_fraction: { default_value: { numerator: 50 } } }), 'virtual_hosts[0].routes[0].match.runtime_fraction: not implemented'],
    ['filter-state hashing', TYPE_URL.route, route({ hash_policy: [{ filter_state: { key: 'k' } }] }), 'route.hash_policy[0].filter_state: not implemented'],
    ['validate_clusters: true', TYPE_URL.route, { ...(route({}) as object), validate_clusters: true }, 'validate_clusters: true is not implemented'],
    ['a per-route fault limit', TYPE_URL.route, routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT_TYPE, max_active_faults: 3 } } }]), 'typed_per_filter_config["envoy.filters.http.fault"].max_active_faults: not implemented'],
    ['a listener filter other than the TLS inspector', TYPE_URL.listener, { name: 'l', ...(httpListener('l', { rds: 'r' }) as object), listener_filters: [{ name: 'envoy.filters.listener.http_inspector' }] }, 'listener "l": listener_filters[0].name: unsupported listener filter'],
    ['a router setting', TYPE_URL.listener, { name: 'l', filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': TYPE_URL.httpConnectionManager, rds: { route_config_name: 'r' }, http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE, strict_check_headers: ['x-envoy-max-retries'] } }] } }] }] }, 'http_filters[0].typed_config.strict_check_headers: not implemented'],
    ['rate-limit descriptors', TYPE_URL.listener, httpListener('l', { rds: 'r' }, { filters: [{ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': RL_TYPE, stat_prefix: 'rl', token_bucket: { max_tokens: 1, fill_interval: '1s' }, descriptors: [{ entries: [{ key: 'k', value: 'v' }], token_bucket: { max_tokens: 1, fill_interval: '1s' } }] } }] }), 'http_filters[0].typed_config.descriptors: not implemented'],
    ['a transport socket on the filter chain', TYPE_URL.listener, { name: 'l', filter_chains: [{ ...(httpListener('l', { rds: 'r' }) as { filter_chains: object[] }).filter_chains[0], transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } }] }, 'listener "l": filter_chains[0].transport_socket.name: only envoy.transport_sockets.tls is implemented'],
  ])('refuses %s', (_what, typeUrl, obj, error) => {
    const r = translate(typeUrl, obj);
    expect(r.ok ? '(accepted)' : r.error).toContain(error);
  });

  // columns: what, type, resource that must be accepted
  it.each<[string, ResourceTypeUrl, unknown]>([
    ['metadata, alt_stat_name and DNS settings (informational)', TYPE_URL.cluster, edsCluster('c', { metadata: { filter_metadata: { istio: { config: 'x' } } }, alt_stat_name: 'c', dns_lookup_family: 'V4_ONLY' })],
    ['a cookie hash policy with a ttl (Pilot sends one)', TYPE_URL.route, route({ hash_policy: [{ cookie: { name: 's', ttl: '3600s' } }] })],
    ['validate_clusters: false (Pilot sends it)', TYPE_URL.route, { ...(route({}) as object), validate_clusters: false }],
    ['runtime keys of the rate limit', TYPE_URL.listener, httpListener('l', { rds: 'r' }, { filters: [{ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': RL_TYPE, stat_prefix: 'rl', token_bucket: { max_tokens: 1, fill_interval: '1s' }, filter_enabled: { default_value: { numerator: 100 }, runtime_key: 'rl_enabled' } } }] })],
    ['RDS over ADS', TYPE_URL.listener, { name: 'l', filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': TYPE_URL.httpConnectionManager, stat_prefix: 'l', codec_type: 'AUTO', rds: { route_config_name: 'r', config_source: { ads: {}, resource_api_version: 'V3' } }, http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE, suppress_envoy_headers: true } }] } }] }] }],
    ['an explicitly empty message of an implemented field', TYPE_URL.cluster, staticCluster('c', [1], { http2_protocol_options: {}, common_lb_config: {} })],
    // Istio sets it on every listener; in Envoy it is informational too.
    ['a listener traffic_direction', TYPE_URL.listener, { ...(httpListener('l', { rds: 'r' }) as object), traffic_direction: 'OUTBOUND' }],
  ])('accepts %s', (_what, typeUrl, obj) => {
    const r = translate(typeUrl, obj);
    expect(r.ok ? '(accepted)' : r.error).toBe('(accepted)');
  });

  it('reads the HTTP/2 timeouts: stream_idle_timeout and max_stream_duration downstream, idle_timeout and max_stream_duration upstream (defaults beside Envoy\'s)', () => {
    const l = translate(TYPE_URL.listener, hcmListener({ stream_idle_timeout: '2s', common_http_protocol_options: { idle_timeout: '3s', max_stream_duration: '4s' } }));
    expect(l.ok && (l.value as { filter: { timeouts: unknown } }).filter.timeouts).toMatchObject({ streamIdleMs: 2000, idleMs: 3000, maxStreamMs: 4000 });
    const d = translate(TYPE_URL.listener, hcmListener({}));
    expect(d.ok && (d.value as { filter: { timeouts: unknown } }).filter.timeouts).toMatchObject({ streamIdleMs: 300_000, maxStreamMs: 0 });
    const c = translate(TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http2_protocol_options: {} }, common_http_protocol_options: { idle_timeout: '5s', max_stream_duration: '6s' } })));
    expect(c.ok && (c.value as ClusterModel).upstreamTimeouts).toEqual({ idleMs: 5000, maxStreamMs: 6000 });
    const cd = translate(TYPE_URL.cluster, edsCluster('c'));
    expect(cd.ok && (cd.value as ClusterModel).upstreamTimeouts).toEqual({ idleMs: 3_600_000, maxStreamMs: 0 });
  });

  it('asks for HTTP/2 upstreams through typed_extension_protocol_options', () => {
    const r = translate(TYPE_URL.cluster, edsCluster('c', hpo({ explicit_http_config: { http2_protocol_options: {} } })));
    expect(r.ok && (r.value as ClusterModel).protocol).toBe('http2');
  });

  it('names only fields that exist in the messages (no typo lets a field through unchecked)', () => {
    for (const r of allRules()) {
      const defaults = r.codec.fromPartial({} as never) as Record<string, unknown>;
      for (const name of [...Object.keys(r.read), ...Object.keys(r.ignored ?? {})]) expect(`${r.message}.${name}: ${camel(name) in defaults}`).toBe(`${r.message}.${name}: true`);
    }
  });

  it('is what the README lists (regenerate with npm run gen:proxy-readme)', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    expect(withAllowList(readme)).toBe(readme);
  });
});
