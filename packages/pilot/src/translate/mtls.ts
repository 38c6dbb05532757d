/**
 * The data plane's mTLS in standard Envoy fields (packages/identity/README.md, "How the proxy
 * gets its TLS"). Pure. A node that sends `octo.io/sds-dir` holds a certificate kept current by
 * its LEGO agent in that directory as SDS files; Pilot points the node's TLS at them:
 * - the inbound listener: a `tls_inspector` and filter chains by transport protocol — `tls`
 *   (a DownstreamTlsContext requiring a client certificate) always, `raw_buffer` (plaintext)
 *   only in PERMISSIVE mode; in STRICT a plaintext connection matches no chain and is closed;
 * - each outbound cluster to a mesh service: an UpstreamTlsContext that presents the node's
 *   certificate and accepts only a peer of the callee's namespace (`spiffe://<td>/ns/<ns>/`).
 * Private keys never pass through Pilot: only the file paths do.
 */
import { ConfigSource } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import { TransportSocket } from '@octo-mesh/proto/gen/envoy/config/core/v3/base.js';
import type { Listener, FilterChain } from '@octo-mesh/proto';
import { FilterChainMatch, ListenerFilter } from '@octo-mesh/proto/gen/envoy/config/listener/v3/listener_components.js';
import { CertificateValidationContext, SubjectAltNameMatcher_SanType } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import { CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { TlsInspector } from '@octo-mesh/proto/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import { lengthDelimited } from '../server/encode.js';
import { pack } from './common.js';

/** `off`: plaintext everywhere; `permissive`: mTLS between sidecars that hold certificates, plaintext still accepted inbound; `strict`: inbound accepts mTLS only. */
export type MtlsMode = 'off' | 'permissive' | 'strict';

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const TLS_INSPECTOR = 'envoy.filters.listener.tls_inspector';
const TYPE_UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const TYPE_DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const TYPE_TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
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
export function commonTlsContext(sdsDir: string, peerPrefix?: string): CommonTlsContext {
  return CommonTlsContext.fromPartial({
    tlsCertificateSdsSecretConfigs: [sds(SDS_CERT.name, file(sdsDir, SDS_CERT.file))],
    combinedValidationContext: {
      defaultValidationContext: CertificateValidationContext.fromPartial({
        matchTypedSubjectAltNames: peerPrefix ? [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { prefix: peerPrefix } }] : [],
      }),
      validationContextSdsSecretConfig: sds(SDS_ROOTS.name, file(sdsDir, SDS_ROOTS.file)),
    },
    alpnProtocols: MESH_ALPN,
  });
}

/** Peers of the trust domain in `namespace` (SPIFFE IDs `spiffe://<td>/ns/<namespace>/sa/…`). */
export const namespacePrefix = (trustDomain: string, namespace: string): string => `spiffe://${trustDomain}/ns/${namespace}/`;

/** A cluster's transport socket to a mesh service in `namespace`. */
export function upstreamTransportSocket(t: NodeTls, namespace: string): TransportSocket {
  const ctx = UpstreamTlsContext.fromPartial({ commonTlsContext: commonTlsContext(t.sdsDir, namespacePrefix(t.trustDomain, namespace)) });
  return { name: TLS_TRANSPORT_SOCKET, typedConfig: pack(TYPE_UPSTREAM_TLS, UpstreamTlsContext, ctx) };
}

/** Encoded `transport_socket` (Cluster field 24), to append to an encoded Cluster: protobuf merges a repeated singular message field, and Pilot's clusters carry none. */
export function clusterTransportSocketField(t: NodeTls, namespace: string): Buffer {
  return lengthDelimited(24, Buffer.from(TransportSocket.encode(upstreamTransportSocket(t, namespace)).finish()));
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
