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
import { Cluster, Cluster_DiscoveryType, TcpProxy, TYPE_URL, packAny } from '@octo-mesh/proto';
import { serviceHost, type Service, type ServicePort } from '../model.js';
import { msDuration, type ParsedClusterName } from './common.js';
import { TCP_PROXY } from './tcp.js';
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
  /**
   * Let two sidecars speak HTTP/2 to each other on `http` ports (auto_config: ALPN picks); off,
   * they speak what the port declares (HTTP/1.1), like Istio's default `h2UpgradePolicy:
   * DO_NOT_UPGRADE`. Pilot's setting `h2Upgrade`.
   */
  h2Upgrade?: boolean;
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

/**
 * The server name a caller sends for a service's TCP port, and that the callee's inbound
 * listener picks the port's chain by (the form Istio uses: `outbound_.<port>_._.<host>`).
 */
export const tcpServerName = (port: number, host: string): string => `outbound_.${port}_._.${host}`;

/** A cluster's transport socket to a mesh service in `namespace`, offering `alpn` (and sending `sni`). */
export function upstreamTransportSocket(t: NodeTls, namespace: string, alpn: readonly string[] = MESH_ALPN, sni = ''): TransportSocket {
  const ctx = UpstreamTlsContext.fromPartial({ commonTlsContext: commonTlsContext(t.sdsDir, namespacePrefix(t.trustDomain, namespace), alpn), sni });
  return { name: TLS_TRANSPORT_SOCKET, typedConfig: pack(TYPE_UPSTREAM_TLS, UpstreamTlsContext, ctx) };
}

/** Encoded `transport_socket` (Cluster field 24), to append to an encoded Cluster: protobuf merges a repeated singular message field, and Pilot's clusters carry none. */
export function clusterTransportSocketField(t: NodeTls, namespace: string, alpn: readonly string[] = MESH_ALPN, sni = ''): Buffer {
  return lengthDelimited(24, Buffer.from(TransportSocket.encode(upstreamTransportSocket(t, namespace, alpn, sni)).finish()));
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
 * the context lists, as Envoy does); it sends the port's {@link tcpServerName}, by which the
 * callee's inbound listener hands the connection to the port.
 */
export function clusterTlsFields(t: NodeTls, namespace: string, protocol: ServicePort['protocol'], cluster?: Pick<ParsedClusterName, 'port' | 'host'>): Buffer {
  const tcp = protocol === 'tcp';
  const socket = clusterTransportSocketField(t, namespace, tcp ? [] : MESH_ALPN, tcp && cluster ? tcpServerName(cluster.port, cluster.host) : '');
  return t.h2Upgrade && negotiatesHttpProtocol(protocol) ? Buffer.concat([socket, clusterAutoConfigField()]) : socket;
}

/** A TCP port of a service the node's workload backs: served on the inbound listener by SNI. */
export interface InboundTcpPort {
  port: number;
  /** `<name>.<namespace>.svc` of the service (callers send {@link tcpServerName} of it). */
  host: string;
}

/**
 * The TCP ports a node's inbound listener serves, from the services its workload backs. A service
 * with AuthorizationPolicies gets none: they are enforced by the HTTP RBAC filter, which raw TCP
 * never passes (a network-level RBAC filter is not implemented), so its TCP ports stay closed
 * through the sidecar rather than open to every mesh identity. Those services are returned in
 * `withheld`, for the log.
 */
export function inboundTcpPortsOf(backed: readonly { service: Service; guarded: boolean }[]): { ports: InboundTcpPort[]; withheld: string[] } {
  const ports: InboundTcpPort[] = [];
  const withheld: string[] = [];
  for (const b of backed) {
    const tcp = b.service.spec.ports.filter((p) => p.protocol === 'tcp');
    if (!tcp.length) continue;
    if (b.guarded) withheld.push(serviceHost(b.service));
    else ports.push(...tcp.map((p) => ({ port: p.port, host: serviceHost(b.service) })));
  }
  return { ports, withheld };
}

/** `inbound|<port>||local`: the application's TCP port on the node's loopback. */
export const inboundTcpClusterName = (port: number): string => `inbound|${port}||local`;

/**
 * The inbound clusters of the TCP ports (one per port number): STATIC, 127.0.0.1:<port> — the
 * application serves a TCP service port on its loopback at the service's port. A port that is
 * also the HTTP application port (`skip`) already has its cluster.
 */
export function inboundTcpClusters(ports: readonly InboundTcpPort[], skip?: number): Cluster[] {
  return [...new Set(ports.map((p) => p.port))]
    .filter((p) => p !== skip)
    .sort((a, b) => a - b)
    .map((port) =>
      Cluster.fromPartial({
        name: inboundTcpClusterName(port),
        type: Cluster_DiscoveryType.STATIC,
        connectTimeout: msDuration(1000),
        loadAssignment: { clusterName: inboundTcpClusterName(port), endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }] },
      }),
    );
}

/**
 * The inbound listener with mTLS: the same HTTP filters behind a `tls` chain (any mesh identity of
 * the trust domain; AuthorizationPolicies narrow it), and in PERMISSIVE a `raw_buffer` chain.
 * Each TCP port of a service the node backs gets a `tls` chain matched by the callers' server
 * name for it, with the same TLS context, whose tcp_proxy goes to `inbound|<port>||local`. TCP
 * comes in over mTLS only, in either mode: plaintext carries no name to tell a port by (and the
 * HTTP-level RBAC filters do not apply to raw TCP).
 */
export function inboundWithTls(listener: Listener, t: NodeTls, tcpPorts: readonly InboundTcpPort[] = []): Listener {
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
  const byPort = new Map<number, string[]>();
  for (const p of tcpPorts) byPort.set(p.port, [...(byPort.get(p.port) ?? []), tcpServerName(p.port, p.host)]);
  const tcpChains: FilterChain[] = [...byPort.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, names]) => {
      const cluster = inboundTcpClusterName(port);
      return {
        ...tlsChain,
        name: `inbound-tcp-${port}`,
        filterChainMatch: FilterChainMatch.fromPartial({ transportProtocol: 'tls', serverNames: [...new Set(names)].sort() }),
        filters: [{ name: TCP_PROXY, typedConfig: packAny(TYPE_URL.tcpProxy, TcpProxy.fromPartial({ statPrefix: cluster, cluster })) }],
      };
    });
  return {
    ...listener,
    listenerFilters: [ListenerFilter.fromPartial({ name: TLS_INSPECTOR, typedConfig: pack(TYPE_TLS_INSPECTOR, TlsInspector, TlsInspector.fromPartial({})) })],
    filterChains: [...(t.mode === 'strict' ? [tlsChain] : [tlsChain, plain]), ...tcpChains],
  };
}
