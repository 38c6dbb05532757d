import { Address, Pipe, SocketAddress } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/address.js';
import { DataSource, HeaderValue, HeaderValueOption, Locality, RuntimeFractionalPercent } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { ConfigSource } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/config_source.js';
import { Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpProtocolOptions } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/protocol.js';
import {
  Cluster,
  Cluster_CommonLbConfig,
  Cluster_EdsClusterConfig,
  Cluster_LeastRequestLbConfig,
  Cluster_RingHashLbConfig,
} from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/cluster.js';
import { CircuitBreakers, CircuitBreakers_Thresholds, CircuitBreakers_Thresholds_RetryBudget } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/circuit_breaker.js';
import { OutlierDetection } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/outlier_detection.js';
import { ClusterLoadAssignment, ClusterLoadAssignment_Policy } from '@octo-mesh/proto/gen/proxy/envoy/config/endpoint/v3/endpoint.js';
import { Endpoint, LbEndpoint, LocalityLbEndpoints } from '@octo-mesh/proto/gen/proxy/envoy/config/endpoint/v3/endpoint_components.js';
import { Listener } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener.js';
import { Filter, FilterChain } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener_components.js';
import { RouteConfiguration } from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route.js';
import {
  DirectResponseAction,
  HeaderMatcher,
  QueryParameterMatcher,
  RetryPolicy,
  RetryPolicy_RetryBackOff,
  Route,
  RouteAction,
  RouteAction_HashPolicy,
  RouteAction_HashPolicy_ConnectionProperties,
  RouteAction_HashPolicy_Cookie,
  RouteAction_HashPolicy_Header,
  RouteAction_HashPolicy_QueryParameter,
  RouteAction_UpgradeConfig,
  RouteMatch,
  VirtualHost,
  WeightedCluster,
  WeightedCluster_ClusterWeight,
} from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route_components.js';
import { StringMatcher } from '@octo-mesh/proto/gen/proxy/envoy/type/matcher/v3/string.js';
import { RegexMatcher } from '@octo-mesh/proto/gen/proxy/envoy/type/matcher/v3/regex.js';
import {
  HttpConnectionManager,
  HttpConnectionManager_UpgradeConfig,
  HttpFilter,
  Rds,
} from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { TcpProxy, TcpProxy_WeightedCluster, TcpProxy_WeightedCluster_ClusterWeight } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { Router } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/router/v3/router.js';
import { FaultAbort, HTTPFault } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/fault/v3/fault.js';
import { FaultDelay } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/common/fault/v3/fault.js';
import { LocalRateLimit } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.js';
import {
  HttpProtocolOptions,
  HttpProtocolOptions_AutoHttpConfig,
  HttpProtocolOptions_ExplicitHttpConfig,
} from '@octo-mesh/proto/gen/proxy/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { PathConfigSource } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/config_source.js';
import { TransportSocket } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { FilterChainMatch, ListenerFilter } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener_components.js';
import { TlsInspector } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import {
  CommonTlsContext,
  CommonTlsContext_CombinedCertificateValidationContext,
  DownstreamTlsContext,
  UpstreamTlsContext,
} from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { CertificateValidationContext, SubjectAltNameMatcher, TlsCertificate } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/common.js';
import { SdsSecretConfig, Secret } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { RBAC as RbacFilter } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { Permission, Permission_Set, Policy, Principal, Principal_Authenticated, Principal_Set, RBAC as RbacRules } from '@octo-mesh/proto/gen/proxy/envoy/config/rbac/v3/rbac.js';
import { PathMatcher } from '@octo-mesh/proto/gen/proxy/envoy/type/matcher/v3/path.js';
import { Metadata } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { invalid } from './common.js';

/**
 * The xDS allow-list: for every Envoy message the translators read, which of its fields the
 * proxy implements (`read`) and which it accepts without acting on them because they cannot
 * change how traffic flows (`ignored`, each with the reason). Any other field that is set — a
 * proto3 scalar different from its default, a present message, a non-empty list or map — is
 * refused: the resource is NACKed with the field's path, rather than silently served in a way
 * the control plane did not ask for (a `transport_socket` spoken to in cleartext, say).
 *
 * A `read` entry is either `true` (a scalar, a well-known type, or an `Any` whose content the
 * translator checks against its own rule after decoding) or the rule of the nested message,
 * checked recursively (each element of a list). The proxy README's field list is generated
 * from these rules (`npm run gen:proxy-readme`; `allow-list.test.ts` fails when it is stale).
 */
export interface MessageRule {
  /** The Envoy message's full name, e.g. `envoy.config.cluster.v3.Cluster`. */
  readonly message: string;
  /** The generated codec; `fromPartial({})` gives each field's default. */
  readonly codec: { fromPartial(o: never): unknown };
  /** snake_case field name → `true` or the nested message's rule. */
  readonly read: Readonly<Record<string, true | MessageRule>>;
  /** snake_case field name → why it is accepted and not acted on. */
  readonly ignored?: Readonly<Record<string, string>>;
  /** Where this rule applies, when one message has different rules in different places (README only). */
  readonly context?: string;
}

const rule = (message: string, codec: MessageRule['codec'], read: MessageRule['read'], ignored?: MessageRule['ignored']): MessageRule =>
  ignored ? { message, codec, read, ignored } : { message, codec, read };

const STATS = 'statistics only';
const METADATA = 'metadata is not read by any filter of this proxy';
const ACCESS_LOG = "the proxy's own access log (`accessLog` setting) applies";
const RUNTIME = 'no runtime layer: the default value is used, as Envoy does when the key is absent';

// --- shared pieces -----------------------------------------------------------------------------

const CONFIG_SOURCE = rule('envoy.config.core.v3.ConfigSource', ConfigSource, { ads: true, self: true }, { resource_api_version: 'only v3 exists' });
const SOCKET_ADDRESS = rule('envoy.config.core.v3.SocketAddress', SocketAddress, { address: true, port_value: true });
const PIPE = rule('envoy.config.core.v3.Pipe', Pipe, { path: true });
const ADDRESS = rule('envoy.config.core.v3.Address', Address, { socket_address: SOCKET_ADDRESS, pipe: PIPE });
const HEADER_VALUE = rule('envoy.config.core.v3.HeaderValue', HeaderValue, { key: true, value: true });
const HEADER_VALUE_OPTION = rule('envoy.config.core.v3.HeaderValueOption', HeaderValueOption, { header: HEADER_VALUE, append: true, append_action: true });
const REGEX = rule('envoy.type.matcher.v3.RegexMatcher', RegexMatcher, { regex: true }, { google_re2: 'deprecated; RE2 is the only engine' });
const STRING_MATCHER = rule('envoy.type.matcher.v3.StringMatcher', StringMatcher, {
  exact: true,
  prefix: true,
  suffix: true,
  contains: true,
  safe_regex: REGEX,
  ignore_case: true,
});
const RUNTIME_PERCENT = rule('envoy.config.core.v3.RuntimeFractionalPercent', RuntimeFractionalPercent, { default_value: true }, { runtime_key: RUNTIME });

// --- HTTP filters (inside Any) -------------------------------------------------------------------

export const ROUTER = rule(
  'envoy.extensions.filters.http.router.v3.Router',
  Router,
  {},
  {
    dynamic_stats: STATS,
    suppress_grpc_request_failure_code_stats: STATS,
    start_child_span: 'tracing spans are not emitted',
    upstream_log: ACCESS_LOG,
    upstream_log_options: ACCESS_LOG,
    suppress_envoy_headers: 'the proxy adds no x-envoy-* headers',
  },
);

export const LOCAL_RATE_LIMIT = rule(
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  LocalRateLimit,
  { status: true, token_bucket: true, filter_enabled: RUNTIME_PERCENT, filter_enforced: RUNTIME_PERCENT },
  { stat_prefix: STATS },
);

const FAULT_DELAY = rule('envoy.extensions.filters.common.fault.v3.FaultDelay', FaultDelay, { fixed_delay: true, percentage: true });
const FAULT_ABORT = rule('envoy.extensions.filters.http.fault.v3.FaultAbort', FaultAbort, { http_status: true, grpc_status: true, percentage: true });
export const HTTP_FAULT = rule(
  'envoy.extensions.filters.http.fault.v3.HTTPFault',
  HTTPFault,
  { delay: FAULT_DELAY, abort: FAULT_ABORT },
  Object.fromEntries(
    ['delay_percent_runtime', 'abort_percent_runtime', 'delay_duration_runtime', 'abort_http_status_runtime', 'abort_grpc_status_runtime', 'max_active_faults_runtime', 'response_rate_limit_percent_runtime'].map(
      (k) => [k, RUNTIME],
    ),
  ),
);

// --- RouteConfiguration --------------------------------------------------------------------------

const HEADER_MATCHER = rule('envoy.config.route.v3.HeaderMatcher', HeaderMatcher, {
  name: true,
  exact_match: true,
  safe_regex_match: REGEX,
  range_match: true,
  present_match: true,
  prefix_match: true,
  suffix_match: true,
  contains_match: true,
  string_match: STRING_MATCHER,
  invert_match: true,
});
const QUERY_MATCHER = rule('envoy.config.route.v3.QueryParameterMatcher', QueryParameterMatcher, { name: true, string_match: STRING_MATCHER, present_match: true });

// --- RBAC (envoy.filters.http.rbac; after the header matchers it shares) -------------------------

const PATH_MATCHER = rule('envoy.type.matcher.v3.PathMatcher', PathMatcher, { path: STRING_MATCHER });
// Permission and Principal nest themselves (and/or/not): their rules are filled in below.
const permissionRead: Record<string, true | MessageRule> = {};
const principalRead: Record<string, true | MessageRule> = {};
const RBAC_PERMISSION = rule('envoy.config.rbac.v3.Permission', Permission, permissionRead);
const RBAC_PRINCIPAL = rule('envoy.config.rbac.v3.Principal', Principal, principalRead);
Object.assign(permissionRead, {
  and_rules: rule('envoy.config.rbac.v3.Permission.Set', Permission_Set, { rules: RBAC_PERMISSION }),
  or_rules: rule('envoy.config.rbac.v3.Permission.Set', Permission_Set, { rules: RBAC_PERMISSION }),
  any: true,
  header: HEADER_MATCHER,
  url_path: PATH_MATCHER,
  not_rule: RBAC_PERMISSION,
});
Object.assign(principalRead, {
  and_ids: rule('envoy.config.rbac.v3.Principal.Set', Principal_Set, { ids: RBAC_PRINCIPAL }),
  or_ids: rule('envoy.config.rbac.v3.Principal.Set', Principal_Set, { ids: RBAC_PRINCIPAL }),
  any: true,
  authenticated: rule('envoy.config.rbac.v3.Principal.Authenticated', Principal_Authenticated, { principal_name: STRING_MATCHER }),
  header: HEADER_MATCHER,
  url_path: PATH_MATCHER,
  not_id: RBAC_PRINCIPAL,
});
/** One value of `RBAC.policies` (a map, so translate/rbac.ts checks each value with this rule). */
export const RBAC_POLICY = rule('envoy.config.rbac.v3.Policy', Policy, { permissions: RBAC_PERMISSION, principals: RBAC_PRINCIPAL });
export const RBAC_RULES = rule('envoy.config.rbac.v3.RBAC', RbacRules, { action: true, policies: true });
export const RBAC = rule('envoy.extensions.filters.http.rbac.v3.RBAC', RbacFilter, { rules: RBAC_RULES }, { rules_stat_prefix: STATS });
const ROUTE_MATCH = rule('envoy.config.route.v3.RouteMatch', RouteMatch, {
  prefix: true,
  path: true,
  safe_regex: REGEX,
  path_separated_prefix: true,
  case_sensitive: true,
  headers: HEADER_MATCHER,
  query_parameters: QUERY_MATCHER,
  grpc: true,
});
const RETRY_POLICY = rule('envoy.config.route.v3.RetryPolicy', RetryPolicy, {
  retry_on: true,
  num_retries: true,
  per_try_timeout: true,
  retriable_status_codes: true,
  retry_back_off: rule('envoy.config.route.v3.RetryPolicy.RetryBackOff', RetryPolicy_RetryBackOff, { base_interval: true, max_interval: true }),
});
const HASH_POLICY = rule('envoy.config.route.v3.RouteAction.HashPolicy', RouteAction_HashPolicy, {
  header: rule('envoy.config.route.v3.RouteAction.HashPolicy.Header', RouteAction_HashPolicy_Header, { header_name: true }),
  cookie: rule(
    'envoy.config.route.v3.RouteAction.HashPolicy.Cookie',
    RouteAction_HashPolicy_Cookie,
    { name: true },
    {
      ttl: 'no cookie is generated: a request without the cookie is hashed as if the policy were absent',
      path: 'only used when generating a cookie, which the proxy does not',
    },
  ),
  connection_properties: rule('envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties', RouteAction_HashPolicy_ConnectionProperties, { source_ip: true }),
  query_parameter: rule('envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter', RouteAction_HashPolicy_QueryParameter, { name: true }),
  terminal: true,
});
const ROUTE_ACTION = rule('envoy.config.route.v3.RouteAction', RouteAction, {
  cluster: true,
  weighted_clusters: rule('envoy.config.route.v3.WeightedCluster', WeightedCluster, {
    clusters: rule('envoy.config.route.v3.WeightedCluster.ClusterWeight', WeightedCluster_ClusterWeight, { name: true, weight: true }),
    total_weight: true,
  }),
  timeout: true,
  retry_policy: RETRY_POLICY,
  hash_policy: HASH_POLICY,
  prefix_rewrite: true,
  host_rewrite_literal: true,
  upgrade_configs: rule('envoy.config.route.v3.RouteAction.UpgradeConfig', RouteAction_UpgradeConfig, { upgrade_type: true, enabled: true }),
});
const ROUTE = rule(
  'envoy.config.route.v3.Route',
  Route,
  {
    name: true,
    match: ROUTE_MATCH,
    route: ROUTE_ACTION,
    direct_response: rule('envoy.config.route.v3.DirectResponseAction', DirectResponseAction, {
      status: true,
      body: rule('envoy.config.core.v3.DataSource', DataSource, { inline_string: true }),
    }),
    typed_per_filter_config: true,
    request_headers_to_add: HEADER_VALUE_OPTION,
    request_headers_to_remove: true,
    response_headers_to_add: HEADER_VALUE_OPTION,
    response_headers_to_remove: true,
  },
  { metadata: METADATA, decorator: 'tracing spans are not emitted', tracing: 'tracing spans are not emitted', stat_prefix: STATS },
);
const VIRTUAL_HOST = rule(
  'envoy.config.route.v3.VirtualHost',
  VirtualHost,
  {
    name: true,
    domains: true,
    routes: ROUTE,
    retry_policy: RETRY_POLICY,
    typed_per_filter_config: true,
    request_headers_to_add: HEADER_VALUE_OPTION,
    request_headers_to_remove: true,
    response_headers_to_add: HEADER_VALUE_OPTION,
    response_headers_to_remove: true,
  },
  { metadata: METADATA },
);
export const ROUTE_CONFIGURATION = rule(
  'envoy.config.route.v3.RouteConfiguration',
  RouteConfiguration,
  {
    name: true,
    virtual_hosts: VIRTUAL_HOST,
    request_headers_to_add: HEADER_VALUE_OPTION,
    request_headers_to_remove: true,
    response_headers_to_add: HEADER_VALUE_OPTION,
    response_headers_to_remove: true,
    validate_clusters: true,
  },
  { metadata: METADATA },
);

// --- TLS (transport sockets and SDS secrets) -------------------------------------------------------

const TLS_DATA_SOURCE = {
  ...rule('envoy.config.core.v3.DataSource', DataSource, { inline_string: true, inline_bytes: true, filename: true }),
  context: 'TLS certificates, keys and trust bundles',
};
const SDS_CONFIG_SOURCE = {
  ...rule(
    'envoy.config.core.v3.ConfigSource',
    ConfigSource,
    { path_config_source: rule('envoy.config.core.v3.PathConfigSource', PathConfigSource, { path: true }) },
    { resource_api_version: 'only v3 exists' },
  ),
  context: 'SDS (`sds_config`): secrets come from files only',
};
const SDS_SECRET_CONFIG = rule('envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig', SdsSecretConfig, { name: true, sds_config: SDS_CONFIG_SOURCE });
export const TLS_CERTIFICATE = rule('envoy.extensions.transport_sockets.tls.v3.TlsCertificate', TlsCertificate, { certificate_chain: TLS_DATA_SOURCE, private_key: TLS_DATA_SOURCE });
export const VALIDATION_CONTEXT = rule('envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext', CertificateValidationContext, {
  trusted_ca: TLS_DATA_SOURCE,
  match_typed_subject_alt_names: rule('envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher', SubjectAltNameMatcher, { san_type: true, matcher: STRING_MATCHER }),
});
const COMMON_TLS_CONTEXT = rule('envoy.extensions.transport_sockets.tls.v3.CommonTlsContext', CommonTlsContext, {
  tls_certificates: TLS_CERTIFICATE,
  tls_certificate_sds_secret_configs: SDS_SECRET_CONFIG,
  validation_context: VALIDATION_CONTEXT,
  validation_context_sds_secret_config: SDS_SECRET_CONFIG,
  combined_validation_context: rule('envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext', CommonTlsContext_CombinedCertificateValidationContext, {
    default_validation_context: VALIDATION_CONTEXT,
    validation_context_sds_secret_config: SDS_SECRET_CONFIG,
  }),
  alpn_protocols: true,
});
export const UPSTREAM_TLS_CONTEXT = rule('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', UpstreamTlsContext, { common_tls_context: COMMON_TLS_CONTEXT, sni: true });
export const DOWNSTREAM_TLS_CONTEXT = rule('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', DownstreamTlsContext, {
  common_tls_context: COMMON_TLS_CONTEXT,
  require_client_certificate: true,
});
/** An SDS resource in a file (`sds_config.path_config_source`). */
export const SECRET = rule('envoy.extensions.transport_sockets.tls.v3.Secret', Secret, { name: true, tls_certificate: TLS_CERTIFICATE, validation_context: VALIDATION_CONTEXT });
/** `transport_socket` of a Cluster or FilterChain: `typed_config` is checked against the TLS context rules above. */
const TRANSPORT_SOCKET = rule('envoy.config.core.v3.TransportSocket', TransportSocket, { name: true, typed_config: true });
export const TLS_INSPECTOR = rule(
  'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  TlsInspector,
  {},
  { enable_ja3_fingerprinting: STATS, initial_read_buffer_size: 'the first read decides: a TLS record starts with 0x16' },
);

// --- Listener and its network filters ----------------------------------------------------------

export const HTTP_CONNECTION_MANAGER = rule(
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  HttpConnectionManager,
  {
    rds: rule('envoy.extensions.filters.network.http_connection_manager.v3.Rds', Rds, { route_config_name: true, config_source: CONFIG_SOURCE }),
    route_config: ROUTE_CONFIGURATION,
    http_filters: rule('envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter', HttpFilter, {
      name: true,
      typed_config: true,
      is_optional: true,
      disabled: true,
    }),
    upgrade_configs: rule('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig', HttpConnectionManager_UpgradeConfig, {
      upgrade_type: true,
      enabled: true,
    }),
    request_headers_timeout: true,
    request_timeout: true,
    stream_idle_timeout: true,
    common_http_protocol_options: {
      ...rule('envoy.config.core.v3.HttpProtocolOptions', CommonHttpProtocolOptions, { idle_timeout: true, max_connection_duration: true, max_stream_duration: true }),
      context: 'downstream, in HttpConnectionManager',
    },
  },
  { stat_prefix: STATS, codec_type: 'HTTP/1.1 and HTTP/2 are detected per connection', access_log: ACCESS_LOG },
);

export const TCP_PROXY = rule(
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  TcpProxy,
  {
    cluster: true,
    weighted_clusters: rule('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster', TcpProxy_WeightedCluster, {
      clusters: rule('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight', TcpProxy_WeightedCluster_ClusterWeight, { name: true, weight: true }),
    }),
    max_connect_attempts: true,
    idle_timeout: true,
  },
  { stat_prefix: STATS, access_log: ACCESS_LOG },
);

export const LISTENER = rule(
  'envoy.config.listener.v3.Listener',
  Listener,
  {
    name: true,
    address: ADDRESS,
    filter_chains: rule(
      'envoy.config.listener.v3.FilterChain',
      FilterChain,
      {
        filters: rule('envoy.config.listener.v3.Filter', Filter, { name: true, typed_config: true }),
        filter_chain_match: rule('envoy.config.listener.v3.FilterChainMatch', FilterChainMatch, { transport_protocol: true, server_names: true }),
        transport_socket: TRANSPORT_SOCKET,
      },
      { name: 'chains are told apart by their match', metadata: METADATA },
    ),
    listener_filters: rule('envoy.config.listener.v3.ListenerFilter', ListenerFilter, { name: true, typed_config: true }),
  },
  { stat_prefix: STATS, metadata: METADATA, access_log: ACCESS_LOG, traffic_direction: 'the listener name says which side it serves' },
);
// default_filter_chain has the same shape as filter_chains.
(LISTENER.read as Record<string, true | MessageRule>)['default_filter_chain'] = LISTENER.read['filter_chains']!;

// --- Cluster -----------------------------------------------------------------------------------

const LOCALITY = rule('envoy.config.core.v3.Locality', Locality, { region: true, zone: true, sub_zone: true });
const LB_ENDPOINT = rule(
  'envoy.config.endpoint.v3.LbEndpoint',
  LbEndpoint,
  {
    endpoint: rule(
      'envoy.config.endpoint.v3.Endpoint',
      Endpoint,
      { address: ADDRESS },
      { hostname: 'informational (no auto host rewrite)', health_check_config: 'only used by active health checks, which are refused' },
    ),
    health_status: true,
    load_balancing_weight: true,
    // filter_metadata["octo.mesh"]: the central checker's verdict and its age (selective P2P checks); other keys are not read.
    metadata: rule('envoy.config.core.v3.Metadata', Metadata, { filter_metadata: true }, { typed_filter_metadata: METADATA }),
  },
);
export const CLUSTER_LOAD_ASSIGNMENT = rule('envoy.config.endpoint.v3.ClusterLoadAssignment', ClusterLoadAssignment, {
  cluster_name: true,
  endpoints: rule(
    'envoy.config.endpoint.v3.LocalityLbEndpoints',
    LocalityLbEndpoints,
    { locality: LOCALITY, lb_endpoints: LB_ENDPOINT, load_balancing_weight: true, priority: true },
    { metadata: METADATA },
  ),
  policy: rule('envoy.config.endpoint.v3.ClusterLoadAssignment.Policy', ClusterLoadAssignment_Policy, { overprovisioning_factor: true }),
});

const HTTP2_OPTIONS = rule('envoy.config.core.v3.Http2ProtocolOptions', Http2ProtocolOptions, {});

/** `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`. */
export const UPSTREAM_HTTP_PROTOCOL_OPTIONS = rule('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', HttpProtocolOptions, {
  explicit_http_config: rule('envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig', HttpProtocolOptions_ExplicitHttpConfig, {
    http_protocol_options: rule('envoy.config.core.v3.Http1ProtocolOptions', Http1ProtocolOptions, {}),
    http2_protocol_options: HTTP2_OPTIONS,
  }),
  auto_config: rule('envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig', HttpProtocolOptions_AutoHttpConfig, {
    http_protocol_options: rule('envoy.config.core.v3.Http1ProtocolOptions', Http1ProtocolOptions, {}),
    http2_protocol_options: HTTP2_OPTIONS,
  }),
  common_http_protocol_options: rule('envoy.config.core.v3.HttpProtocolOptions', CommonHttpProtocolOptions, { max_requests_per_connection: true, idle_timeout: true, max_stream_duration: true }),
});

export const CLUSTER = rule(
  'envoy.config.cluster.v3.Cluster',
  Cluster,
  {
    name: true,
    type: true,
    eds_cluster_config: rule('envoy.config.cluster.v3.Cluster.EdsClusterConfig', Cluster_EdsClusterConfig, { service_name: true, eds_config: CONFIG_SOURCE }),
    connect_timeout: true,
    lb_policy: true,
    load_assignment: CLUSTER_LOAD_ASSIGNMENT,
    max_requests_per_connection: true,
    circuit_breakers: rule('envoy.config.cluster.v3.CircuitBreakers', CircuitBreakers, {
      thresholds: rule(
        'envoy.config.cluster.v3.CircuitBreakers.Thresholds',
        CircuitBreakers_Thresholds,
        {
          priority: true,
          max_connections: true,
          max_pending_requests: true,
          max_requests: true,
          max_retries: true,
          retry_budget: rule('envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget', CircuitBreakers_Thresholds_RetryBudget, {
            budget_percent: true,
            min_retry_concurrency: true,
          }),
        },
        { track_remaining: STATS },
      ),
    }),
    http2_protocol_options: HTTP2_OPTIONS,
    typed_extension_protocol_options: true,
    outlier_detection: rule('envoy.config.cluster.v3.OutlierDetection', OutlierDetection, {
      consecutive_5xx: true,
      interval: true,
      base_ejection_time: true,
      max_ejection_percent: true,
      enforcing_consecutive_5xx: true,
      consecutive_gateway_failure: true,
      enforcing_consecutive_gateway_failure: true,
      max_ejection_time: true,
    }),
    ring_hash_lb_config: rule('envoy.config.cluster.v3.Cluster.RingHashLbConfig', Cluster_RingHashLbConfig, { minimum_ring_size: true }),
    least_request_lb_config: rule('envoy.config.cluster.v3.Cluster.LeastRequestLbConfig', Cluster_LeastRequestLbConfig, { choice_count: true }),
    common_lb_config: rule('envoy.config.cluster.v3.Cluster.CommonLbConfig', Cluster_CommonLbConfig, { healthy_panic_threshold: true }),
    transport_socket: TRANSPORT_SOCKET,
  },
  {
    alt_stat_name: STATS,
    metadata: METADATA,
    track_timeout_budgets: STATS,
    track_cluster_stats: STATS,
    dns_lookup_family: 'no DNS clusters (STATIC and EDS only)',
    dns_refresh_rate: 'no DNS clusters (STATIC and EDS only)',
    respect_dns_ttl: 'no DNS clusters (STATIC and EDS only)',
  },
);

/** Every rule with a name, for the README and the tests. */
export const TOP_LEVEL_RULES: Readonly<Record<string, MessageRule>> = {
  Listener: LISTENER,
  HttpConnectionManager: HTTP_CONNECTION_MANAGER,
  TcpProxy: TCP_PROXY,
  Router: ROUTER,
  LocalRateLimit: LOCAL_RATE_LIMIT,
  HTTPFault: HTTP_FAULT,
  RBAC: RBAC,
  RbacPolicy: RBAC_POLICY,
  RouteConfiguration: ROUTE_CONFIGURATION,
  Cluster: CLUSTER,
  HttpProtocolOptions: UPSTREAM_HTTP_PROTOCOL_OPTIONS,
  ClusterLoadAssignment: CLUSTER_LOAD_ASSIGNMENT,
  UpstreamTlsContext: UPSTREAM_TLS_CONTEXT,
  DownstreamTlsContext: DOWNSTREAM_TLS_CONTEXT,
  Secret: SECRET,
  TlsInspector: TLS_INSPECTOR,
};

// --- checking ----------------------------------------------------------------------------------

interface Compiled {
  defaults: Record<string, unknown>;
  /** camelCase key (as ts-proto names it) → snake_case name and what to do. */
  fields: Map<string, { snake: string; read?: true | MessageRule; ignored?: string }>;
}

const compiled = new WeakMap<MessageRule, Compiled>();

/** ts-proto's field names: `consecutive_5xx` → `consecutive5xx`, `http2_protocol_options` → `http2ProtocolOptions`. */
export const camel = (snake: string): string => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snakeGuess = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function compile(r: MessageRule): Compiled {
  let c = compiled.get(r);
  if (c) return c;
  const fields: Compiled['fields'] = new Map();
  for (const [snake, read] of Object.entries(r.read)) fields.set(camel(snake), { snake, read });
  for (const [snake, ignored] of Object.entries(r.ignored ?? {})) fields.set(camel(snake), { snake, ignored });
  c = { defaults: r.codec.fromPartial({} as never) as Record<string, unknown>, fields };
  compiled.set(r, c);
  return c;
}

/** Whether a decoded field holds its default, i.e. was not set on the wire. */
function isUnset(v: unknown, defaults: Record<string, unknown>, key: string): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length === 0;
  const def = defaults[key];
  // A map defaults to {} and is unset when empty; a message (default undefined) is set even when empty.
  if (typeof v === 'object') return def !== undefined && Object.keys(v).length === 0;
  if (key in defaults) return v === def; // undefined default: an optional or oneof scalar, set when present
  return v === '' || v === 0 || v === false;
}

/**
 * Refuses a decoded message that sets a field outside `r`'s allow-list: throws InvalidField
 * (the translator's NACK) at the first one, naming its path below `path`.
 */
export function checkFields(r: MessageRule, msg: unknown, path: string): void {
  if (msg === null || typeof msg !== 'object') return;
  const { defaults, fields } = compile(r);
  for (const [key, value] of Object.entries(msg as Record<string, unknown>)) {
    if (isUnset(value, defaults, key)) continue;
    const f = fields.get(key);
    const p = (s: string) => (path ? `${path}.${s}` : s);
    if (!f || (f.read === undefined && f.ignored === undefined)) invalid(p(f?.snake ?? snakeGuess(key)), `not implemented by this proxy (${r.message} field), so it is refused rather than ignored`);
    if (f.read === undefined || f.read === true) continue;
    const nested = f.read;
    if (Array.isArray(value)) value.forEach((v, i) => checkFields(nested, v, p(`${f.snake}[${i}]`)));
    else checkFields(nested, value, p(f.snake));
  }
}
