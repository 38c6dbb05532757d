/**
 * Proxyless generator: what a gRPC client with an xDS resolver (`xds:///catalog.demo.svc:8080`)
 * needs, besides the clusters and load assignments every sidecar gets.
 *
 * Such a client asks LDS for a Listener named after its target and expects an `api_listener`: an
 * HttpConnectionManager, which here names over RDS a route configuration holding the service's
 * routes for that port — the same routes the sidecar's `outbound` configuration has, reduced to
 * what a gRPC client can act on (gRFC A28 routing, A31 timeouts, A33 fault injection, A44
 * retries). Listener names are the client's choice, so these listeners are made only for the names
 * a node asks for (see Pilot's on-demand learning); one route configuration per service port is
 * shared by every name that resolves to it.
 *
 * Names (`name` and `namespace` are DNS labels; `port` 1-65535):
 *
 *     name.namespace.svc[:port]
 *     name.namespace.svc.cluster.local[:port]
 *     name.namespace:port
 *     name:port                       (a service of the asking node's namespace)
 *
 * Without a port the name means the service's first HTTP port (as a Host header without a port
 * does). The short forms need the port, so no bare word — `outbound`, `inbound` — is taken for a
 * service. A name that does not parse, a service that does not exist, or a port that is not one of
 * its HTTP/HTTP2/gRPC ports gets no listener: the xDS "does not exist" answer.
 */
import {
  HTTPFault,
  HttpConnectionManager,
  Listener,
  packAny,
  RouteConfiguration,
  Router,
  TYPE_URL,
  type HeaderMatcher,
  type Route,
  type VirtualHost,
} from '@octo-mesh/proto';
import { ApiVersion } from '@octo-mesh/proto/gen/envoy/config/core/v3/config_source.js';
import { parseDependency, type ServiceKey } from '../model.js';
import { FILTER, pack, TYPE } from './common.js';

/** What a listener name asks for: a service, and a port of it (none: its first HTTP port). */
export interface ListenerTarget {
  service: ServiceKey;
  port?: number;
}

const NAME = /^([a-z0-9][a-z0-9.-]*?)(?::(\d{1,5}))?$/;

/** Parses a proxyless listener name (forms in the module comment); undefined when it is not one. */
export function parseListenerName(name: string, callerNamespace: string): ListenerTarget | undefined {
  const m = NAME.exec(name.toLowerCase());
  if (!m) return undefined;
  const host = m[1]!;
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  const qualified = /\.svc(\.cluster\.local)?$/.test(host);
  if (qualified ? host.replace(/\.svc(\.cluster\.local)?$/, '').split('.').length !== 2 : port === undefined) return undefined;
  const service = parseDependency(host, callerNamespace);
  return service ? { service, ...(port !== undefined ? { port } : {}) } : undefined;
}

/**
 * The route configuration a listener of `target` reads, among the service's proxyless route
 * configurations (named like its virtual hosts, `<name>.<namespace>.svc:<port>`, in HTTP port
 * order); undefined when the service has no such HTTP port.
 */
export function routeConfigFor(target: ListenerTarget, routeConfigNames: readonly string[]): string | undefined {
  if (target.port === undefined) return routeConfigNames[0];
  const suffix = `:${target.port}`;
  return routeConfigNames.find((n) => n.endsWith(suffix));
}

/**
 * What a listener name resolves to among the services a node has: the service and the name of
 * the route configuration its listener reads; undefined when it does not exist.
 */
export function resolveApiListener(
  name: string,
  callerNamespace: string,
  routeConfigsOf: (service: ServiceKey) => readonly { name: string }[] | undefined,
): { service: ServiceKey; routeConfig: string } | undefined {
  const target = parseListenerName(name, callerNamespace);
  const configs = target && routeConfigsOf(target.service);
  const routeConfig = configs && routeConfigFor(target, configs.map((c) => c.name));
  return routeConfig ? { service: target.service, routeConfig } : undefined;
}

/**
 * The api_listener of one name. Its filters are those gRPC clients implement: fault injection
 * (gRFC A33; marked optional, so a client built without it still accepts the listener — it then
 * skips the per-route fault configs) and the router, which gRPC requires last. The sidecar's
 * local rate limit filter is left out: no gRPC client implements it, and a non-optional filter a
 * client does not know makes it reject the whole listener.
 */
export function generateApiListener(name: string, routeConfigName: string): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: routeConfigName,
    rds: { routeConfigName, configSource: { ads: {}, resourceApiVersion: ApiVersion.V3 } },
    httpFilters: [
      { name: FILTER.fault, typedConfig: pack(TYPE.fault, HTTPFault, HTTPFault.fromPartial({})), isOptional: true },
      { name: FILTER.router, typedConfig: packAny(TYPE_URL.router, Router.fromPartial({})) },
    ],
  });
  return Listener.fromPartial({ name, apiListener: { apiListener: packAny(TYPE_URL.httpConnectionManager, hcm) } });
}

/**
 * One route configuration per virtual host of a service (one per HTTP port), named like the
 * virtual host. It holds that virtual host alone, with domain `*`: the configuration is reached
 * only through a listener of this service and port, whatever name the client used for it.
 */
export function generateProxylessRoutes(virtualHosts: readonly VirtualHost[]): RouteConfiguration[] {
  return virtualHosts.map((v) =>
    RouteConfiguration.fromPartial({
      name: v.name,
      virtualHosts: [{ ...v, domains: ['*'], routes: v.routes.flatMap((r) => proxylessRoute(r) ?? []) }],
      validateClusters: false,
    }),
  );
}

/**
 * A sidecar route as a gRPC client should see it, or undefined when it can never match a gRPC call:
 * - query parameter matches: a gRPC request has no query string (gRFC A28), so such a route never
 *   matches — it is left out rather than left to clients that would ignore the matcher;
 * - `:method`: every gRPC call is a POST (gRPC over HTTP/2), so a POST matcher always holds and is
 *   dropped (clients do not see pseudo-headers as metadata), any other method never does;
 * - timeout → also `max_stream_duration`: gRPC reads a route's timeout from there, not from
 *   `timeout` (gRFC A31);
 * - retries: a policy with no retries is dropped (gRPC rejects `num_retries` 0, gRFC A44); gRPC
 *   retries on the gRPC codes of `retry_on` and ignores the HTTP conditions;
 * - per-route filter configs: only fault injection's (A33) is kept; the local rate limit's would
 *   make the client reject the configuration.
 * Header additions and removals, HTTP retry conditions and cookie or source-IP hashing stay as
 * they are: gRPC clients ignore them.
 */
function proxylessRoute(r: Route): Route | undefined {
  const match = r.match;
  if (match?.queryParameters.length) return undefined;
  const headers: HeaderMatcher[] = [];
  for (const h of match?.headers ?? []) {
    if (h.name !== ':method') {
      headers.push(h);
      continue;
    }
    const isPost = h.stringMatch?.exact === 'POST' && !h.invertMatch;
    if (!isPost) return undefined;
  }
  const typedPerFilterConfig = Object.fromEntries(Object.entries(r.typedPerFilterConfig).filter(([name]) => name === FILTER.fault));
  const action = r.route && { ...r.route };
  if (action) {
    if (action.timeout && (action.timeout.seconds || action.timeout.nanos)) action.maxStreamDuration = { maxStreamDuration: action.timeout };
    if (action.retryPolicy && (action.retryPolicy.numRetries ?? 1) < 1) delete action.retryPolicy;
  }
  return { ...r, ...(match ? { match: { ...match, headers } } : {}), ...(action ? { route: action } : {}), typedPerFilterConfig };
}
