import { TYPE_URL, packAny, type Any } from '@octo-mesh/proto';
import { fromEnvoyJson } from '../translate/index.js';

/** Builders of Envoy resources in Envoy's own YAML/JSON shape, for tests and benchmarks. */
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
export const LOCAL_RATE_LIMIT = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

export function httpListener(name: string, routes: { rds: string } | { route_config: unknown }, opts: { filters?: unknown[]; upgrades?: string[]; address?: unknown } = {}): unknown {
  return {
    name,
    ...(opts.address ? { address: opts.address } : {}),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              ...('rds' in routes ? { rds: { route_config_name: routes.rds } } : { route_config: routes.route_config }),
              ...(opts.upgrades ? { upgrade_configs: opts.upgrades.map((u) => ({ upgrade_type: u })) } : {}),
              http_filters: [...(opts.filters ?? []), ROUTER],
            },
          },
        ],
      },
    ],
  };
}

export function tcpListener(name: string, cluster: string, port = 0): unknown {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      { filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: name, cluster } }] },
    ],
  };
}

/** A route table with one virtual host matching every authority. */
export function routeConfig(name: string, routes: unknown[], domains = ['*']): unknown {
  return { name, virtual_hosts: [{ name: `${name}-vh`, domains, routes }] };
}

export function staticCluster(name: string, ports: number[], extra: Record<string, unknown> = {}): unknown {
  return { name, type: 'STATIC', connect_timeout: '1s', load_assignment: cla(name, ports), ...extra };
}

export function edsCluster(name: string, extra: Record<string, unknown> = {}): unknown {
  return { name, type: 'EDS', connect_timeout: '1s', ...extra };
}

export function cla(name: string, ports: number[], host = '127.0.0.1'): unknown {
  return { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: host, port_value: p } } } })) }] };
}

/** Packs an Envoy-JSON resource for an xDS response. */
export function pack(typeUrl: (typeof TYPE_URL)[keyof typeof TYPE_URL], obj: unknown): { name: string; any: Any } {
  const r = fromEnvoyJson<Record<string, unknown>>(typeUrl, obj);
  if (!r.ok) throw new Error(r.error);
  const name = String((r.value['name'] ?? r.value['clusterName']) as string);
  return { name, any: packAny(typeUrl, r.value as never) };
}

/**
 * A bootstrap file's text for the executable: every port picked by the kernel, no access log, one
 * outbound route to a static cluster on port 9 (nothing answers there; tests of start-up, GC and
 * the compile cache need a proxy, not traffic). `extra` adds or overrides settings.
 */
export function oneRouteBootstrap(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    adminPort: 0,
    outboundPort: 0,
    inboundHost: '127.0.0.1',
    inboundPort: 0,
    accessLog: 'off',
    logLevel: 'warn',
    staticResources: { listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) })], clusters: [staticCluster('app', [9])] },
    ...extra,
  });
}
