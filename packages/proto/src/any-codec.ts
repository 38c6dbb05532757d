import type { Any } from './gen/google/protobuf/any.js';

/** Type URLs of the resources served on an ADS stream (Envoy v3 and OCTO's). No codec is loaded by this module. */
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

/** What `packAny`/`unpackAny` need of a generated message object. */
export interface MessageCodec {
  encode(message: never): { finish(): Uint8Array };
  decode(input: Uint8Array): unknown;
}

/** `packAny` and `unpackAny` over one codec per type URL. */
export interface AnyCodecs {
  /** Wraps a message in an `Any` with its type URL. */
  packAny<T>(typeUrl: XdsTypeUrl, message: T): Any;
  /**
   * Unwraps an `Any`. Returns an error (never throws) for a type URL other than `expected`, an
   * unknown type URL, or bytes that do not decode, so a caller can turn it into a NACK.
   */
  unpackAny<T>(any: Any, expected?: XdsTypeUrl): { ok: true; value: T } | { ok: false; error: string };
}

/** Builds `packAny`/`unpackAny` for a table of codecs (the full tree's or the proxy's trimmed one). */
export function anyCodecs(codecs: Readonly<Record<XdsTypeUrl, MessageCodec>>): AnyCodecs {
  return {
    packAny<T>(typeUrl: XdsTypeUrl, message: T): Any {
      return { typeUrl, value: Buffer.from(codecs[typeUrl].encode(message as never).finish()) };
    },
    unpackAny<T>(any: Any, expected?: XdsTypeUrl): { ok: true; value: T } | { ok: false; error: string } {
      if (expected && any.typeUrl !== expected) return { ok: false, error: `expected ${expected}, got ${any.typeUrl}` };
      const codec = Object.hasOwn(codecs, any.typeUrl) ? codecs[any.typeUrl as XdsTypeUrl] : undefined;
      if (!codec) return { ok: false, error: `unknown type URL ${any.typeUrl}` };
      try {
        return { ok: true, value: codec.decode(any.value) as T };
      } catch (err) {
        return { ok: false, error: `${any.typeUrl}: ${(err as Error).message}` };
      }
    },
  };
}
