/**
 * The message codecs and type URLs of what the mesh carries on an ADS stream (Envoy v3 and
 * OCTO's resources), without any gRPC service definition: importing this entry
 * (`@octo-mesh/proto/codecs.js`) never loads `@grpc/grpc-js`. For a process that only encodes,
 * decodes or translates resources (the proxy's config path); `@octo-mesh/proto` re-exports all of
 * it beside the service definitions and clients.
 */
export { Any } from './gen/google/protobuf/any.js';
export { Duration } from './gen/google/protobuf/duration.js';
export { Struct, Value } from './gen/google/protobuf/struct.js';
export { Status } from './gen/google/rpc/status.js';
export { Node, Locality, HeaderValueOption, Metadata as EnvoyMetadata } from './gen/envoy/config/core/v3/base.js';
export { Address, SocketAddress, Pipe } from './gen/envoy/config/core/v3/address.js';
export { HealthStatus } from './gen/envoy/config/core/v3/health_check.js';
export {
  DiscoveryRequest,
  DiscoveryResponse,
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  Resource as DeltaResource,
} from './gen/envoy/service/discovery/v3/discovery.js';
export { Listener } from './gen/envoy/config/listener/v3/listener.js';
export { Filter, FilterChain } from './gen/envoy/config/listener/v3/listener_components.js';
export {
  RouteConfiguration,
} from './gen/envoy/config/route/v3/route.js';
export {
  VirtualHost,
  Route,
  RouteMatch,
  RouteAction,
  HeaderMatcher,
  QueryParameterMatcher,
  WeightedCluster,
  WeightedCluster_ClusterWeight,
  RetryPolicy,
  RetryPolicy_RetryBackOff,
} from './gen/envoy/config/route/v3/route_components.js';
export { Cluster, Cluster_LbPolicy, Cluster_DiscoveryType, Cluster_RingHashLbConfig } from './gen/envoy/config/cluster/v3/cluster.js';
export { CircuitBreakers, CircuitBreakers_Thresholds } from './gen/envoy/config/cluster/v3/circuit_breaker.js';
export { OutlierDetection } from './gen/envoy/config/cluster/v3/outlier_detection.js';
export { ClusterLoadAssignment } from './gen/envoy/config/endpoint/v3/endpoint.js';
export { LocalityLbEndpoints, LbEndpoint, Endpoint } from './gen/envoy/config/endpoint/v3/endpoint_components.js';
export { HttpConnectionManager, HttpFilter } from './gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
export { TcpProxy } from './gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
export { Router } from './gen/envoy/extensions/filters/http/router/v3/router.js';
export { HTTPFault } from './gen/envoy/extensions/filters/http/fault/v3/fault.js';
export { LocalRateLimit } from './gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.js';
export { UpgradeTarget, NodeStatus, ServiceGovernance, ActiveHealthCheck } from './gen/octo/mesh/v1/xds.js';
export { TYPE_URL, type XdsTypeUrl, packAny, unpackAny } from './type-urls.js';
