import { Listener } from './gen/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from './gen/envoy/config/route/v3/route.js';
import { Cluster } from './gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from './gen/envoy/config/endpoint/v3/endpoint.js';
import { HttpConnectionManager } from './gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { TcpProxy } from './gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { Router } from './gen/envoy/extensions/filters/http/router/v3/router.js';
import { UpgradeTarget, NodeStatus, ServiceGovernance } from './gen/octo/mesh/v1/xds.js';
import { TYPE_URL, anyCodecs, type MessageCodec } from './any-codec.js';

export { TYPE_URL, type XdsTypeUrl } from './any-codec.js';

/** `packAny`/`unpackAny` over the full generated tree (`src/gen`); the proxy has its own, `proxy-codecs.ts`. */
export const { packAny, unpackAny } = anyCodecs({
  [TYPE_URL.listener]: Listener as MessageCodec,
  [TYPE_URL.route]: RouteConfiguration as MessageCodec,
  [TYPE_URL.cluster]: Cluster as MessageCodec,
  [TYPE_URL.endpoint]: ClusterLoadAssignment as MessageCodec,
  [TYPE_URL.httpConnectionManager]: HttpConnectionManager as MessageCodec,
  [TYPE_URL.tcpProxy]: TcpProxy as MessageCodec,
  [TYPE_URL.router]: Router as MessageCodec,
  [TYPE_URL.upgradeTarget]: UpgradeTarget as MessageCodec,
  [TYPE_URL.nodeStatus]: NodeStatus as MessageCodec,
  [TYPE_URL.serviceGovernance]: ServiceGovernance as MessageCodec,
});
