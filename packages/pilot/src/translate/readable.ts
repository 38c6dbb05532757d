/**
 * Proto JSON with every `Any` opened up (`{"@type": url, ...fields}`), for golden files and the
 * config dump debug API, where base64 would hide exactly what a reader wants to see.
 */
import { Cluster, ClusterLoadAssignment, HTTPFault, HttpConnectionManager, Listener, LocalRateLimit, RouteConfiguration, Router, TcpProxy, UpgradeTarget } from '@octo-mesh/proto';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { TYPE_URL } from '@octo-mesh/proto';
import { TYPE } from './common.js';
import { RBAC } from '@octo-mesh/proto/gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC_TYPE_URL } from './authz.js';
import { DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { TlsInspector } from '@octo-mesh/proto/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { TYPE_DOWNSTREAM_TLS, TYPE_TLS_INSPECTOR, TYPE_UPSTREAM_HTTP_OPTIONS, TYPE_UPSTREAM_TLS } from './mtls.js';

interface Codec {
  decode(input: Uint8Array): unknown;
  toJSON(message: never): unknown;
}

const CODECS: Record<string, Codec> = {
  [TYPE_URL.listener]: Listener,
  [TYPE_URL.route]: RouteConfiguration,
  [TYPE_URL.cluster]: Cluster,
  [TYPE_URL.endpoint]: ClusterLoadAssignment,
  [TYPE_URL.httpConnectionManager]: HttpConnectionManager,
  [TYPE_URL.router]: Router,
  [TYPE_URL.tcpProxy]: TcpProxy,
  [TYPE_URL.upgradeTarget]: UpgradeTarget,
  [TYPE.fault]: HTTPFault,
  [TYPE.localRateLimit]: LocalRateLimit,
  [RBAC_TYPE_URL]: RBAC,
  [TYPE_URL.serviceGovernance]: ServiceGovernance,
  [TYPE_UPSTREAM_TLS]: UpstreamTlsContext,
  [TYPE_DOWNSTREAM_TLS]: DownstreamTlsContext,
  [TYPE_TLS_INSPECTOR]: TlsInspector,
  [TYPE_UPSTREAM_HTTP_OPTIONS]: HttpProtocolOptions,
};

/** The codec of a resource type this package serves, or undefined. */
export const codecFor = (typeUrl: string): Codec | undefined => CODECS[typeUrl];

/** Replaces `{typeUrl, value: base64}` objects in proto JSON by their decoded, readable form. */
export function openAnys(json: unknown): unknown {
  if (Array.isArray(json)) return json.map(openAnys);
  if (!json || typeof json !== 'object') return json;
  const o = json as Record<string, unknown>;
  const isAny = typeof o['typeUrl'] === 'string' && Object.keys(o).every((k) => k === 'typeUrl' || (k === 'value' && typeof o[k] === 'string'));
  if (isAny) {
    const codec = CODECS[o['typeUrl'] as string];
    const bytes = Buffer.from((o['value'] as string | undefined) ?? '', 'base64');
    if (codec) return { '@type': o['typeUrl'], ...(openAnys(codec.toJSON(codec.decode(bytes) as never)) as object) };
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, openAnys(v)]));
}

/** A message as readable JSON. */
export function readable(typeUrl: string, message: unknown): unknown {
  const codec = CODECS[typeUrl];
  if (!codec) throw new Error(`no codec for ${typeUrl}`);
  return openAnys(codec.toJSON(message as never));
}
