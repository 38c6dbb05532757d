import { Cluster } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '@octo-mesh/proto/gen/proxy/envoy/config/endpoint/v3/endpoint.js';
import { HTTPFault } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/fault/v3/fault.js';
import { HttpConnectionManager } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { Listener } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener.js';
import { LocalRateLimit } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.js';
import { RouteConfiguration } from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route.js';
import { Router } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/router/v3/router.js';
import { TcpProxy } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/proxy/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import type { Result } from '../model.js';
import { DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { Secret } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { TlsInspector } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import { TLS_TYPE_URL } from './tls.js';
import { UPSTREAM_HTTP_OPTIONS_TYPE_URL } from './cluster.js';
import { FILTER_TYPE_URL } from './common.js';
import { RBAC } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC_TYPE_URL } from './rbac.js';

/**
 * Reads Envoy resources written the way Envoy's own YAML/JSON is written (snake_case fields,
 * `typed_config: {"@type": ..., ...}`, durations as `"1.5s"`) into generated protobuf messages.
 * Used by the static bootstrap and by the golden-file tests.
 */
interface JsonCodec {
  fromJSON(o: unknown): unknown;
  encode(m: never): { finish(): Uint8Array };
}

const CODECS: Record<string, JsonCodec> = {
  [TYPE_URL.listener]: Listener as JsonCodec,
  [TYPE_URL.route]: RouteConfiguration as JsonCodec,
  [TYPE_URL.cluster]: Cluster as JsonCodec,
  [TYPE_URL.endpoint]: ClusterLoadAssignment as JsonCodec,
  [TYPE_URL.httpConnectionManager]: HttpConnectionManager as JsonCodec,
  [TYPE_URL.tcpProxy]: TcpProxy as JsonCodec,
  [TYPE_URL.router]: Router as JsonCodec,
  [FILTER_TYPE_URL.localRateLimit]: LocalRateLimit as JsonCodec,
  [FILTER_TYPE_URL.fault]: HTTPFault as JsonCodec,
  [RBAC_TYPE_URL]: RBAC as JsonCodec,
  [UPSTREAM_HTTP_OPTIONS_TYPE_URL]: HttpProtocolOptions as JsonCodec,
  [TLS_TYPE_URL.upstream]: UpstreamTlsContext as JsonCodec,
  [TLS_TYPE_URL.downstream]: DownstreamTlsContext as JsonCodec,
  [TLS_TYPE_URL.secret]: Secret as JsonCodec,
  [TLS_TYPE_URL.tlsInspector]: TlsInspector as JsonCodec,
};

/** Fields that hold a google.protobuf.Duration in the messages above. */
const DURATION_FIELDS = new Set(
  [
    'timeout',
    'idle_timeout',
    'per_try_timeout',
    'base_interval',
    'max_interval',
    'connect_timeout',
    'interval',
    'base_ejection_time',
    'max_ejection_time',
    'fill_interval',
    'fixed_delay',
    'request_headers_timeout',
    'max_connection_duration',
    'drain_timeout',
    'stream_idle_timeout',
    'max_stream_duration',
    'request_timeout',
  ].flatMap((s) => [s, s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())]),
);

function duration(v: unknown, path: string): unknown {
  if (typeof v !== 'string') return v;
  const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v);
  if (!m) throw new Error(`${path}: invalid duration ${JSON.stringify(v)} (want e.g. "1.5s")`);
  const total = Number(m[1]);
  const seconds = Math.trunc(total);
  return { seconds, nanos: Math.round((total - seconds) * 1e9) };
}

function prepare(v: unknown, path: string): unknown {
  if (Array.isArray(v)) return v.map((x, i) => prepare(x, `${path}[${i}]`));
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (typeof o['@type'] === 'string') {
    const typeUrl = o['@type'];
    const { '@type': _, ...rest } = o;
    const bytes = encode(typeUrl, rest, path);
    return { typeUrl, value: Buffer.from(bytes).toString('base64') };
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    const p = path ? `${path}.${k}` : k;
    out[k] = DURATION_FIELDS.has(k) ? duration(x, p) : prepare(x, p);
  }
  return out;
}

function encode(typeUrl: string, obj: unknown, path: string): Uint8Array {
  const codec = CODECS[typeUrl];
  if (!codec) throw new Error(`${path}: unsupported @type ${typeUrl}`);
  return codec.encode(codec.fromJSON(prepare(obj, path)) as never).finish();
}

/** Converts one Envoy-style JSON object into the message of `typeUrl`. */
export function fromEnvoyJson<T>(typeUrl: string, obj: unknown, path = ''): Result<T> {
  const codec = CODECS[typeUrl];
  if (!codec) return { ok: false, error: `unsupported type ${typeUrl}` };
  try {
    return { ok: true, value: codec.fromJSON(prepare(obj, path)) as T };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}
