/**
 * The data plane's mTLS in standard Envoy fields (packages/identity/README.md, "How the proxy
 * gets its TLS"). Pure. A node that sends `octo.io/sds-dir` holds a certificate kept current by
 * its LEGO agent in that directory as SDS files; Pilot points the node's TLS at them:
 * - the inbound listener: a `tls_inspector` and filter chains by transport protocol — `tls`
 *   (a DownstreamTlsContext requiring a client certificate) always, `raw_buffer` (plaintext)
 *   only in PERMISSIVE mode; in STRICT a plaintext connection matches no chain and is closed;
 * - each outbound cluster to a mesh service: an UpstreamTlsContext that presents the node's
 *   certificate and accepts only a peer of the callee's namespace (`spiffe://<td>/ns/<ns>/`);
 *   TCP ports' clusters too (the caller's tcp_proxy originates the same mTLS, without ALPN);
 * - an HTTP port's cluster also gets `auto_config` (HttpProtocolOptions): the caller offers `h2`
 *   and `http/1.1` and speaks what the callee's inbound TLS listener picks, so two sidecars talk
 *   HTTP/2 (one multiplexed connection) whatever the application speaks. A port declared
 *   `http2`/`grpc` keeps its explicit HTTP/2; a `tcp` port carries no HTTP.
 * Private keys never pass through Pilot: only the file paths do.
 */
import { ConfigSource } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import { TransportSocket } from '@octo-mesh/proto/gen/envoy/config/core/v3/base.js';
import type { Listener, FilterChain } from '@octo-mesh/proto';
import { FilterChainMatch, ListenerFilter } from '@octo-mesh/proto/gen/envoy/config/listener/v3/listener_components.js';
import { CertificateValidationContext, SubjectAltNameMatcher_SanType } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import { CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { TlsInspector } from '@octo-mesh/proto/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import type { ServicePort } from '../model.js';
import { lengthDelimited } from '../server/encode.js';
import { pack } from './common.js';

/** `off`: plaintext everywhere; `permissive`: mTLS between sidecars that hold certificates, plaintext still accepted inbound; `strict`: inbound accepts mTLS only. */
export type MtlsMode = 'off' | 'permissive' | 'strict';

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const TLS_INSPECTOR = 'envoy.filters.listener.tls_inspector';
export const TYPE_UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const TYPE_DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const TYPE_TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
/** The `typed_extension_protocol_options` key of upstream HTTP options (Envoy's extension name). */
export const UPSTREAM_HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const TYPE_UPSTREAM_HTTP_OPTIONS = `type.googleapis.com/${UPSTREAM_HTTP_OPTIONS}`;
/** SDS secret names and files the agent's rotator writes (identity README). */
export const SDS_CERT = { name: 'default', file: 'default.json' } as const;
export const SDS_ROOTS = { name: 'ROOTCA', file: 'ROOTCA.json' } as const;
/** ALPN offered on both sides: HTTP/2 when both speak it, else HTTP/1.1. */
export const MESH_ALPN = ['h2', 'http/1.1'];

export interface NodeTls {
  mode: Exclude<MtlsMode, 'off'>;
  /** The node's SDS directory (its `octo.io/sds-dir`). */
  sdsDir: string;
  trustDomain: string;
}

const file = (dir: string, name: string) => `${dir.replace(/\/+$/, '')}/${name}`;
const sds = (name: string, path: string) => ({ name, sdsConfig: ConfigSource.fromPartial({ pathConfigSource: { path } }) });

/** The node's certificate and the mesh roots by SDS from its files; peers matched by SPIFFE ID prefix. */
export function commonTlsContext(sdsDir: string, peerPrefix?: string, alpn: readonly string[] = MESH_ALPN): CommonTlsContext {
  return CommonTlsContext.fromPartial({
    tlsCertificateSdsSecretConfigs: [sds(SDS_CERT.name, file(sdsDir, SDS_CERT.file))],
    combinedValidationContext: {
      defaultValidationContext: CertificateValidationContext.fromPartial({
        matchTypedSubjectAltNames: peerPrefix ? [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { prefix: peerPrefix } }] : [],
      }),
      validationContextSdsSecretConfig: sds(SDS_ROOTS.name, file(sdsDir, SDS_ROOTS.file)),
    },
    alpnProtocols: [...alpn],
  });
}

/** Peers of the trust domain in `namespace` (SPIFFE IDs `spiffe://<td>/ns/<namespace>/sa/…`). */
export const namespacePrefix = (trustDomain: string, namespace: string): string => `spiffe://${trustDomain}/ns/${namespace}/`;

/** A cluster's transport socket to a mesh service in `namespace`, offering `alpn`. */
export function upstreamTransportSocket(t: NodeTls, namespace: string, alpn: readonly string[] = MESH_ALPN): TransportSocket {
  const ctx = UpstreamTlsContext.fromPartial({ commonTlsContext: commonTlsContext(t.sdsDir, namespacePrefix(t.trustDomain, namespace), alpn) });
  return { name: TLS_TRANSPORT_SOCKET, typedConfig: pack(TYPE_UPSTREAM_TLS, UpstreamTlsContext, ctx) };
}

/** Encoded `transport_socket` (Cluster field 24), to append to an encoded Cluster: protobuf merges a repeated singular message field, and Pilot's clusters carry none. */
export function clusterTransportSocketField(t: NodeTls, namespace: string, alpn: readonly string[] = MESH_ALPN): Buffer {
  return lengthDelimited(24, Buffer.from(TransportSocket.encode(upstreamTransportSocket(t, namespace, alpn)).finish()));
}

/**
 * Whether a mesh cluster of a port speaking `protocol` lets ALPN choose HTTP/2 or HTTP/1.1: only
 * `http` ports. `http2` and `grpc` ports are HTTP/2 already (explicit, and an h2-only peer must
 * not be asked for HTTP/1.1); `tcp` ports carry no HTTP.
 */
export const negotiatesHttpProtocol = (protocol: ServicePort['protocol']): boolean => protocol === 'http';

/** Envoy's AutoHttpConfig with HTTP/1.1 and HTTP/2 options left at their defaults. */
export function autoHttpProtocolOptions(): HttpProtocolOptions {
  return HttpProtocolOptions.fromPartial({ autoConfig: { httpProtocolOptions: {}, http2ProtocolOptions: {} } });
}

/**
 * Encoded `typed_extension_protocol_options` (Cluster field 36, a map: one entry message of key 1
 * and value 2) holding {@link autoHttpProtocolOptions}, to append like the transport socket.
 */
export function clusterAutoConfigField(): Buffer {
  const any = pack(TYPE_UPSTREAM_HTTP_OPTIONS, HttpProtocolOptions, autoHttpProtocolOptions());
  const value = Buffer.concat([lengthDelimited(1, Buffer.from(any.typeUrl)), lengthDelimited(2, Buffer.from(any.value))]);
  return lengthDelimited(36, Buffer.concat([lengthDelimited(1, Buffer.from(UPSTREAM_HTTP_OPTIONS)), lengthDelimited(2, value)]));
}

/**
 * What a node with TLS appends to an encoded mesh cluster of a port speaking `protocol`: the
 * transport socket, and for an HTTP port `auto_config`. Pilot's clusters carry neither field, and
 * a port's explicit protocol (`http2`/`grpc`: `http2_protocol_options`) is left as it is. A TCP
 * port's context offers no ALPN: its bytes are neither HTTP/2 nor HTTP/1.1 (tcp_proxy offers what
 * the context lists, as Envoy does).
 */
export function clusterTlsFields(t: NodeTls, namespace: string, protocol: ServicePort['protocol']): Buffer {
  const socket = clusterTransportSocketField(t, namespace, protocol === 'tcp' ? [] : MESH_ALPN);
  return negotiatesHttpProtocol(protocol) ? Buffer.concat([socket, clusterAutoConfigField()]) : socket;
}

/**
 * The inbound listener with mTLS: the same HTTP filters behind a `tls` chain (any mesh identity of
 * the trust domain; AuthorizationPolicies narrow it), and in PERMISSIVE a `raw_buffer` chain.
 */
export function inboundWithTls(listener: Listener, t: NodeTls): Listener {
  const chain = listener.filterChains[0];
  if (!chain) return listener;
  const downstream = DownstreamTlsContext.fromPartial({
    commonTlsContext: commonTlsContext(t.sdsDir, `spiffe://${t.trustDomain}/`),
    requireClientCertificate: true,
  });
  const tlsChain: FilterChain = {
    ...chain,
    name: 'inbound-tls',
    filterChainMatch: FilterChainMatch.fromPartial({ transportProtocol: 'tls' }),
    transportSocket: { name: TLS_TRANSPORT_SOCKET, typedConfig: pack(TYPE_DOWNSTREAM_TLS, DownstreamTlsContext, downstream) },
  };
  const plain: FilterChain = { ...chain, name: 'inbound-plaintext', filterChainMatch: FilterChainMatch.fromPartial({ transportProtocol: 'raw_buffer' }) };
  return {
    ...listener,
    listenerFilters: [ListenerFilter.fromPartial({ name: TLS_INSPECTOR, typedConfig: pack(TYPE_TLS_INSPECTOR, TlsInspector, TlsInspector.fromPartial({})) })],
    filterChains: t.mode === 'strict' ? [tlsChain] : [tlsChain, plain],
  };
}
