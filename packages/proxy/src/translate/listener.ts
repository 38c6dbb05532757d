import { HttpConnectionManager } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { Router } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/router/v3/router.js';
import { TcpProxy } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import { HTTP_CONNECTION_MANAGER, LISTENER, ROUTER, TCP_PROXY, checkFields, type MessageRule } from './allow-list.js';
import type { Listener } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import { DEFAULT_HTTP_TIMEOUTS, type HttpFilterChain, type ListenerModel, type Result, type TcpFilterChain } from '../model.js';
import { FILTER, FILTER_TYPE_URL, durationMs, faultSpec, guard, invalid, rateLimitSpec, socketAddr } from './common.js';
import { routeTable } from './route.js';
import { RBAC_FILTER, rbacSpec } from './rbac.js';
import { Filter, type FilterChain } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener_components.js';
import { TransportSocket } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { TlsInspector } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import { TLS_INSPECTOR } from './allow-list.js';
import { TLS_INSPECTOR_FILTER, TLS_TYPE_URL, downstreamTls } from './tls.js';
import type { DownstreamTlsModel, ListenerTransport } from '../model.js';

/**
 * Translates one Listener. Its chains carry one network filter, the same in each (an HTTP
 * connection manager or a TCP proxy), and differ in transport; besides them, TCP chains matched
 * by SNI (see {@link sniTcpChains}). A listener without an address
 * attaches to a socket the proxy was handed by name (`outbound`, `inbound`).
 */
export function translateListener(l: Listener): Result<ListenerModel> {
  return guard(`listener ${JSON.stringify(l.name)}`, () => {
    if (!l.name) invalid('name', 'must not be empty');
    checkFields(LISTENER, l, '');
    const all = [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])];
    // Chains matched by SNI are set apart: the others choose by transport and share one network filter.
    const bySni = (c: FilterChain) => (c.filterChainMatch?.serverNames.length ?? 0) > 0;
    const chains = all.filter((c) => !bySni(c));
    if (chains.length === 0) invalid('filter_chains', all.length ? 'a chain without server_names is required (SNI-matched chains only add to one)' : 'a filter chain is required');
    const filters = chains[0]!.filters;
    if (filters.length !== 1) invalid('filter_chains[0].filters', `exactly one network filter is supported, got ${filters.length}`);
    const f = filters[0]!;
    const fp = 'filter_chains[0].filters[0]';
    if (!f.typedConfig) return invalid(`${fp}.typed_config`, 'is required');
    const transport = listenerTransport(l, chains);
    const out: ListenerModel = { name: l.name, filter: networkFilter(f.typedConfig, fp) };
    if (transport) out.transport = transport;
    const sni = sniTcpChains(l, all, chains);
    if (sni.length) out.sniTcp = sni;
    if (l.address) out.address = socketAddr(l.address, 'address');
    return out;
  });
}

/**
 * Filter chains chosen by transport: with the TLS inspector, a chain matching
 * `transport_protocol: tls` (with a DownstreamTlsContext) and/or one matching `raw_buffer` (or
 * any transport). Chains may differ only in transport: their network filters must be the same.
 * Undefined for the plain single-chain listener.
 */
function listenerTransport(l: Listener, chains: FilterChain[]): ListenerTransport | undefined {
  let inspector = false;
  l.listenerFilters.forEach((lf, i) => {
    const p = `listener_filters[${i}]`;
    if (lf.name !== TLS_INSPECTOR_FILTER) invalid(`${p}.name`, `unsupported listener filter ${JSON.stringify(lf.name)} (only ${TLS_INSPECTOR_FILTER} is implemented)`);
    if (lf.typedConfig) {
      if (lf.typedConfig.typeUrl !== TLS_TYPE_URL.tlsInspector) invalid(`${p}.typed_config.type_url`, `expected ${TLS_TYPE_URL.tlsInspector}, got ${lf.typedConfig.typeUrl}`);
      checkFields(TLS_INSPECTOR, decode(lf.typedConfig, TlsInspector, p), `${p}.typed_config`);
    }
    inspector = true;
  });
  const first = Filter.encode(chains[0]!.filters[0]!).finish();
  let tls: DownstreamTlsModel | undefined;
  let plaintext = false;
  let tlsChain = -1;
  let plainChain = -1;
  const nChains = l.filterChains.length;
  chains.forEach((c, i) => {
    const cp = i < nChains ? `filter_chains[${i}]` : 'default_filter_chain';
    if (i > 0 && (c.filters.length !== 1 || !Buffer.from(Filter.encode(c.filters[0]!).finish()).equals(Buffer.from(first))))
      invalid(`${cp}.filters`, 'filter chains that differ in their network filters are not implemented: every chain must carry the same one (chains differ in transport only)');
    const proto = c.filterChainMatch?.transportProtocol ?? '';
    if (proto !== '' && proto !== 'tls' && proto !== 'raw_buffer') invalid(`${cp}.filter_chain_match.transport_protocol`, `must be tls or raw_buffer, got ${JSON.stringify(proto)}`);
    if (proto !== '' && !inspector) invalid(`${cp}.filter_chain_match.transport_protocol`, `needs the ${TLS_INSPECTOR_FILTER} listener filter to detect the transport`);
    const isTls = c.transportSocket !== undefined;
    if (proto === 'tls' && !isTls) invalid(`${cp}.transport_socket`, 'is required on a chain matching tls (TLS passthrough is not implemented)');
    if (proto === 'raw_buffer' && isTls) invalid(`${cp}.transport_socket`, 'a chain matching raw_buffer cannot terminate TLS');
    const dup = (which: number) => {
      if (which >= 0) invalid(`${cp}.filter_chain_match`, `matches the same connections as chain ${which}`);
    };
    if (isTls) {
      // Without a transport_protocol match, a TLS chain takes every connection (plaintext fails its handshake).
      dup(tlsChain);
      tlsChain = i;
      tls = downstreamTls(c.transportSocket!, `${cp}.transport_socket`);
    } else {
      dup(plainChain);
      plainChain = i;
      plaintext = true;
    }
  });
  if (!tls && !inspector) return undefined;
  return tls ? { tls, plaintext } : { plaintext };
}

/**
 * TCP chains matched by SNI (`server_names`, exact): each matches `transport_protocol: tls`,
 * carries the listener's `tls` chain's transport socket byte for byte (the handshake happens
 * before the choice, with that one context) and a single tcp_proxy. Wildcard names, other
 * network filters and a name claimed twice are refused by name.
 */
function sniTcpChains(l: Listener, all: FilterChain[], rest: FilterChain[]): { serverNames: string[]; filter: TcpFilterChain }[] {
  const tlsChain = rest.find((c) => c.transportSocket !== undefined);
  const tlsSocket = tlsChain?.transportSocket ? Buffer.from(TransportSocket.encode(tlsChain.transportSocket).finish()) : undefined;
  const seen = new Map<string, string>();
  const out: { serverNames: string[]; filter: TcpFilterChain }[] = [];
  all.forEach((c, i) => {
    const names = c.filterChainMatch?.serverNames ?? [];
    if (!names.length) return;
    const cp = i < l.filterChains.length ? `filter_chains[${i}]` : 'default_filter_chain';
    if (i >= l.filterChains.length) invalid(`${cp}.filter_chain_match.server_names`, 'the default chain cannot match by SNI');
    if (c.filterChainMatch?.transportProtocol !== 'tls') invalid(`${cp}.filter_chain_match.transport_protocol`, 'must be tls on a chain matched by server_names');
    if (!tlsSocket) invalid(`${cp}.filter_chain_match.server_names`, 'needs a tls chain without server_names (its DownstreamTlsContext terminates the connection first)');
    if (!c.transportSocket || !Buffer.from(TransportSocket.encode(c.transportSocket).finish()).equals(tlsSocket))
      invalid(`${cp}.transport_socket`, "must be the tls chain's transport_socket (one TLS context per listener)");
    names.forEach((n, j) => {
      if (!n || n.includes('*')) invalid(`${cp}.filter_chain_match.server_names[${j}]`, `only exact names are implemented, got ${JSON.stringify(n)}`);
      const prev = seen.get(n);
      if (prev) invalid(`${cp}.filter_chain_match.server_names[${j}]`, `${JSON.stringify(n)} is already matched by ${prev}`);
      seen.set(n, cp);
    });
    const fp = `${cp}.filters`;
    if (c.filters.length !== 1) invalid(fp, `exactly one network filter is supported, got ${c.filters.length}`);
    const f = c.filters[0]!;
    if (!f.typedConfig) return invalid(`${fp}[0].typed_config`, 'is required');
    const filter = networkFilter(f.typedConfig, `${fp}[0]`);
    if (filter.kind !== 'tcp') invalid(`${fp}[0].typed_config.type_url`, 'a chain matched by server_names carries tcp_proxy only (HTTP is routed by the listener\'s own chain)');
    out.push({ serverNames: [...names], filter: filter as TcpFilterChain });
  });
  return out;
}

function networkFilter(any: Any, path: string): HttpFilterChain | TcpFilterChain {
  const tp = `${path}.typed_config`;
  if (any.typeUrl === TYPE_URL.httpConnectionManager) return hcm(checked(HTTP_CONNECTION_MANAGER, decode(any, HttpConnectionManager, path), tp), tp);
  if (any.typeUrl === TYPE_URL.tcpProxy) return tcp(checked(TCP_PROXY, decode(any, TcpProxy, path), tp), tp);
  return invalid(`${path}.typed_config.type_url`, `unsupported network filter ${any.typeUrl}`);
}

function checked<T>(r: MessageRule, msg: T, path: string): T {
  checkFields(r, msg, path);
  return msg;
}

function decode<T>(any: Any, codec: { decode(b: Uint8Array): T }, path: string): T {
  try {
    return codec.decode(any.value);
  } catch (err) {
    return invalid(`${path}.typed_config`, `cannot decode: ${(err as Error).message}`);
  }
}

function hcm(h: HttpConnectionManager, path: string): HttpFilterChain {
  const out: HttpFilterChain = {
    kind: 'http',
    statPrefix: h.statPrefix,
    upgrades: h.upgradeConfigs.filter((u) => u.enabled ?? true).map((u) => u.upgradeType.toLowerCase()),
    timeouts: {
      headersMs: durationMs(h.requestHeadersTimeout, DEFAULT_HTTP_TIMEOUTS.headersMs),
      idleMs: durationMs(h.commonHttpProtocolOptions?.idleTimeout, DEFAULT_HTTP_TIMEOUTS.idleMs),
      requestMs: durationMs(h.requestTimeout, DEFAULT_HTTP_TIMEOUTS.requestMs),
      maxConnectionMs: durationMs(h.commonHttpProtocolOptions?.maxConnectionDuration, DEFAULT_HTTP_TIMEOUTS.maxConnectionMs),
      streamIdleMs: durationMs(h.streamIdleTimeout, DEFAULT_HTTP_TIMEOUTS.streamIdleMs),
      maxStreamMs: durationMs(h.commonHttpProtocolOptions?.maxStreamDuration, DEFAULT_HTTP_TIMEOUTS.maxStreamMs),
    },
  };
  const fields = {
    headersMs: 'request_headers_timeout',
    idleMs: 'common_http_protocol_options.idle_timeout',
    requestMs: 'request_timeout',
    maxConnectionMs: 'common_http_protocol_options.max_connection_duration',
    streamIdleMs: 'stream_idle_timeout',
    maxStreamMs: 'common_http_protocol_options.max_stream_duration',
  } as const;
  for (const [k, field] of Object.entries(fields)) if (out.timeouts[k as keyof typeof fields] < 0) invalid(`${path}.${field}`, 'must not be negative');
  if (h.rds) {
    if (!h.rds.routeConfigName) invalid(`${path}.rds.route_config_name`, 'must not be empty');
    out.rdsName = h.rds.routeConfigName;
  } else if (h.routeConfig) out.routeTable = routeTable(h.routeConfig, `${path}.route_config`);
  else invalid(path, 'rds or route_config is required (scoped routes are not implemented)');
  const filters = h.httpFilters;
  if (filters.length === 0 || filters[filters.length - 1]!.name !== FILTER.router)
    invalid(`${path}.http_filters`, `the last filter must be ${FILTER.router}`);
  for (const [i, f] of filters.entries()) {
    const fp = `${path}.http_filters[${i}]`;
    if (f.disabled) continue;
    if (f.name === FILTER.router) {
      if (i !== filters.length - 1) invalid(fp, `${FILTER.router} must be last`);
    } else if (f.name === FILTER.localRateLimit) {
      // Without typed_config the filter only enables per-route overrides.
      if (f.typedConfig) out.rateLimit = rateLimitSpec(f.typedConfig, `${fp}.typed_config`);
    } else if (f.name === FILTER.fault) {
      if (f.typedConfig) out.fault = faultSpec(f.typedConfig, `${fp}.typed_config`);
    } else if (f.name === RBAC_FILTER) {
      const rbac = f.typedConfig && rbacSpec(f.typedConfig, `${fp}.typed_config`);
      if (rbac) (out.rbac ??= []).push(rbac);
    } else if (!f.isOptional) invalid(`${fp}.name`, `unsupported HTTP filter ${JSON.stringify(f.name)}`);
    if (f.typedConfig && f.name === FILTER.router) {
      if (f.typedConfig.typeUrl !== FILTER_TYPE_URL.router) invalid(`${fp}.typed_config.type_url`, `expected ${FILTER_TYPE_URL.router}`);
      checkFields(ROUTER, decode(f.typedConfig, Router, fp), `${fp}.typed_config`);
    }
  }
  return out;
}

function tcp(t: TcpProxy, path: string): TcpFilterChain {
  let clusters: TcpFilterChain['clusters'];
  if (t.cluster) clusters = [{ cluster: t.cluster, weight: 1 }];
  else if (t.weightedClusters?.clusters.length) {
    clusters = t.weightedClusters.clusters.map((c, i) => {
      if (!c.name) invalid(`${path}.weighted_clusters.clusters[${i}].name`, 'must not be empty');
      if (!(c.weight >= 1)) invalid(`${path}.weighted_clusters.clusters[${i}].weight`, 'must be at least 1');
      return { cluster: c.name, weight: c.weight };
    });
  } else return invalid(path, 'cluster or weighted_clusters is required');
  return {
    kind: 'tcp',
    statPrefix: t.statPrefix,
    clusters,
    maxConnectAttempts: Math.max(1, t.maxConnectAttempts ?? 1),
    // Envoy's default TCP idle timeout is one hour; 0 disables it.
    idleTimeoutMs: durationMs(t.idleTimeout, 3_600_000),
  };
}
