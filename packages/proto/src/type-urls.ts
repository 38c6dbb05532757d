import { Any } from './gen/google/protobuf/any.js';
import { Listener } from './gen/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from './gen/envoy/config/route/v3/route.js';
import { Cluster } from './gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from './gen/envoy/config/endpoint/v3/endpoint.js';
import { HttpConnectionManager } from './gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { TcpProxy } from './gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { Router } from './gen/envoy/extensions/filters/http/router/v3/router.js';
import { UpgradeTarget, NodeStatus, ServiceGovernance } from './gen/octo/mesh/v1/xds.js';

/** Type URLs of the resources served on an ADS stream (Envoy v3 and OCTO's). */
export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  httpConnectionManager: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  upgradeTarget: 'type.googleapis.com/octo.mesh.v1.UpgradeTarget',
  nodeStatus: 'type.googleapis.com/octo.mesh.v1.NodeStatus',
  serviceGovernance: 'type.googleapis.com/octo.mesh.v1.ServiceGovernance',
} as const;

export type XdsTypeUrl = (typeof TYPE_URL)[keyof typeof TYPE_URL];

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

const CODECS: Record<XdsTypeUrl, Codec<unknown>> = {
  [TYPE_URL.listener]: Listener as Codec<unknown>,
  [TYPE_URL.route]: RouteConfiguration as Codec<unknown>,
  [TYPE_URL.cluster]: Cluster as Codec<unknown>,
  [TYPE_URL.endpoint]: ClusterLoadAssignment as Codec<unknown>,
  [TYPE_URL.httpConnectionManager]: HttpConnectionManager as Codec<unknown>,
  [TYPE_URL.tcpProxy]: TcpProxy as Codec<unknown>,
  [TYPE_URL.router]: Router as Codec<unknown>,
  [TYPE_URL.upgradeTarget]: UpgradeTarget as Codec<unknown>,
  [TYPE_URL.nodeStatus]: NodeStatus as Codec<unknown>,
  [TYPE_URL.serviceGovernance]: ServiceGovernance as Codec<unknown>,
};

/** Wraps a message in an `Any` with its type URL. */
export function packAny<T>(typeUrl: XdsTypeUrl, message: T): Any {
  return { typeUrl, value: Buffer.from(CODECS[typeUrl].encode(message).finish()) };
}

/**
 * Unwraps an `Any`. Returns an error (never throws) for an unknown type URL or bytes that do not
 * decode, so a caller can turn it into a NACK.
 */
export function unpackAny<T>(any: Any, expected?: XdsTypeUrl): { ok: true; value: T } | { ok: false; error: string } {
  if (expected && any.typeUrl !== expected) return { ok: false, error: `expected ${expected}, got ${any.typeUrl}` };
  const codec = CODECS[any.typeUrl as XdsTypeUrl];
  if (!codec) return { ok: false, error: `unknown type URL ${any.typeUrl}` };
  try {
    return { ok: true, value: codec.decode(any.value) as T };
  } catch (err) {
    return { ok: false, error: `${any.typeUrl}: ${(err as Error).message}` };
  }
}
