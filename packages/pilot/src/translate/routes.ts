/**
 * Route generator: the virtual hosts of one service (one per HTTP-ish port), from the governing
 * RoutePolicy's ordered rules. A node's route configuration is the concatenation of the virtual
 * hosts of the services it depends on (see node.ts).
 *
 * Mapping onto Envoy:
 * - a rule with N matches becomes N routes with the same action (Envoy ORs routes, ANDs inside a
 *   match); a rule without matches becomes one catch-all route;
 * - every virtual host ends with a catch-all `default` route to the whole service, so a policy
 *   whose rules do not cover a request still reaches the service;
 * - destinations → `cluster` (one) or `weighted_clusters` (several), subsets being separate clusters;
 * - fault and rate limit → `typed_per_filter_config` of the HTTP fault and local rate limit
 *   filters, which the outbound listener installs disabled;
 * - RingHash → a `hash_policy` on every route of the port.
 */
import type { RoutePolicy, RoutePolicyRule } from '@octo-mesh/api';
import { HTTPFault, LocalRateLimit, VirtualHost, type HeaderMatcher, type HeaderValueOption, type Route, type RouteAction } from '@octo-mesh/proto';
import { HeaderValueOption_HeaderAppendAction } from '@octo-mesh/proto/gen/envoy/config/core/v3/base.js';
import type { RouteAction_HashPolicy, RouteMatch, QueryParameterMatcher } from '@octo-mesh/proto/gen/envoy/config/route/v3/route_components.js';
import { nameOf, type Service, type ServicePort } from '../model.js';
import { clusterName, FILTER, fieldError, pack, percentOf, protoDuration, serviceHost, TYPE } from './common.js';
import { coveredPorts } from './clusters.js';

type HttpMatch = NonNullable<RoutePolicyRule['matches']>[number];
type PartialRoute = Omit<Partial<Route>, 'route' | 'match'> & { route?: PartialAction; match?: Partial<RouteMatch> };
type PartialAction = Omit<Partial<RouteAction>, 'weightedClusters' | 'retryPolicy'> & {
  weightedClusters?: { clusters: { name: string; weight: number }[] };
  retryPolicy?: Record<string, unknown>;
};

/**
 * The virtual hosts as a caller in `callerNamespace` sees them: the bare `name` (and `name:port`)
 * means a service of the caller's own namespace, so those domains are dropped for callers
 * elsewhere — otherwise two services of one name in different namespaces would claim the same
 * domain in one route configuration, which Envoy rejects.
 */
export function virtualHostsFor(vhosts: readonly VirtualHost[], serviceNamespace: string, callerNamespace: string): VirtualHost[] {
  if (serviceNamespace === callerNamespace) return [...vhosts];
  return vhosts.map((v) => ({ ...v, domains: v.domains.filter((d) => d.split(':')[0]!.includes('.')) }));
}

/** Host names a caller may use for a service, shortest first. */
export function hostAliases(service: Service): string[] {
  const { name, namespace } = nameOf(service);
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
}

const isHttp = (p: ServicePort) => p.protocol !== 'tcp';

export function generateVirtualHosts(service: Service, policy: RoutePolicy | undefined): VirtualHost[] {
  const covered = coveredPorts(service, policy);
  const host = serviceHost(service);
  const aliases = hostAliases(service);
  const httpPorts = service.spec.ports.filter(isHttp);
  return httpPorts.map((port, i) => {
    const governed = covered.has(port.port) ? policy : undefined;
    // The port-less host names go to the first HTTP port, as a client omits the port only for that one.
    const domains = [...(i === 0 ? aliases : []), ...aliases.map((a) => `${a}:${port.port}`)];
    const routes = (governed?.spec.rules ?? []).flatMap((rule, r) => ruleRoutes(rule, `spec.rules[${r}]`, r, port.port, host, governed!));
    routes.push({ name: 'default', match: { prefix: '/' }, route: action(clusterName(port.port, '', host), governed) });
    return VirtualHost.fromPartial({ name: `${host}:${port.port}`, domains, routes } as Parameters<typeof VirtualHost.fromPartial>[0]);
  });
}

function ruleRoutes(rule: RoutePolicyRule, path: string, index: number, port: number, host: string, policy: RoutePolicy): PartialRoute[] {
  const name = rule.name ?? `rule-${index}`;
  const dests = rule.route;
  const base: PartialAction =
    dests.length === 1
      ? action(clusterName(port, dests[0]!.subset ?? '', host), policy)
      : {
          ...action(undefined, policy),
          weightedClusters: {
            clusters: dests.map((d) => ({ name: clusterName(port, d.subset ?? '', host), weight: d.weight ?? 0 })),
          },
        };
  if (rule.timeout) base.timeout = protoDuration(rule.timeout, `${path}.timeout`);
  if (rule.retries) {
    const r = rule.retries;
    base.retryPolicy = {
      retryOn: r.retryOn.join(','),
      numRetries: r.attempts,
      ...(r.perTryTimeout ? { perTryTimeout: protoDuration(r.perTryTimeout, `${path}.retries.perTryTimeout`) } : {}),
      retriableStatusCodes: r.retriableStatusCodes ?? [],
      ...(r.backoff
        ? {
            retryBackOff: {
              baseInterval: protoDuration(r.backoff.baseInterval, `${path}.retries.backoff.baseInterval`),
              ...(r.backoff.maxInterval ? { maxInterval: protoDuration(r.backoff.maxInterval, `${path}.retries.backoff.maxInterval`) } : {}),
            },
          }
        : {}),
    };
  }
  const perFilter: NonNullable<Route['typedPerFilterConfig']> = {};
  if (rule.fault) perFilter[FILTER.fault] = pack(TYPE.fault, HTTPFault, fault(rule.fault, `${path}.fault`));
  if (rule.rateLimit) perFilter[FILTER.localRateLimit] = pack(TYPE.localRateLimit, LocalRateLimit, rateLimit(rule.rateLimit, `${path}.rateLimit`, name));
  const headerOps = {
    requestHeadersToAdd: headerAdds(rule.requestHeaders),
    requestHeadersToRemove: rule.requestHeaders?.remove ?? [],
    responseHeadersToAdd: headerAdds(rule.responseHeaders),
    responseHeadersToRemove: rule.responseHeaders?.remove ?? [],
  };
  const matches: (HttpMatch | undefined)[] = rule.matches?.length ? rule.matches : [undefined];
  return matches.map((m, j) => ({
    name: matches.length > 1 ? `${name}.${j}` : name,
    match: routeMatch(m, `${path}.matches[${j}]`),
    route: base,
    typedPerFilterConfig: perFilter,
    ...headerOps,
  }));
}

function action(cluster: string | undefined, policy: RoutePolicy | undefined): PartialAction {
  const ring = policy?.spec.loadBalancer?.ringHash;
  const hash: RouteAction_HashPolicy[] = [];
  if (ring?.hashOn === 'header') hash.push({ header: { headerName: ring.header! }, terminal: false });
  if (ring?.hashOn === 'cookie')
    hash.push({
      cookie: { name: ring.cookie!.name, ...(ring.cookie!.ttl ? { ttl: protoDuration(ring.cookie!.ttl, 'spec.loadBalancer.ringHash.cookie.ttl') } : {}), path: '', attributes: [] },
      terminal: false,
    });
  if (ring?.hashOn === 'sourceIP') hash.push({ connectionProperties: { sourceIp: true }, terminal: false });
  return { ...(cluster !== undefined ? { cluster } : {}), ...(hash.length ? { hashPolicy: hash } : {}) };
}

function routeMatch(m: HttpMatch | undefined, path: string): RouteMatch {
  const out: RouteMatch = { headers: [], queryParameters: [], dynamicMetadata: [] };
  const p = m?.path;
  if (p?.exact !== undefined) out.path = p.exact;
  else if (p?.regex !== undefined) out.safeRegex = { regex: p.regex };
  else out.prefix = p?.prefix ?? '/';
  if (m?.method) out.headers.push(header(':method', { exact: m.method }));
  for (const h of m?.headers ?? []) {
    if (h.present !== undefined) out.headers.push({ ...header(h.name.toLowerCase(), undefined), presentMatch: true, invertMatch: !h.present });
    else out.headers.push(header(h.name.toLowerCase(), h.exact !== undefined ? { exact: h.exact } : h.prefix !== undefined ? { prefix: h.prefix } : { regex: h.regex! }));
  }
  (m?.queryParams ?? []).forEach((q, k) => {
    const qp: QueryParameterMatcher = { name: q.name };
    if (q.present === false) fieldError(`${path}.queryParams[${k}].present`, 'false (parameter absent) cannot be expressed in Envoy route matching');
    if (q.present) qp.presentMatch = true;
    else if (q.exact !== undefined) qp.stringMatch = { exact: q.exact, ignoreCase: false };
    else qp.stringMatch = { safeRegex: { regex: q.regex! }, ignoreCase: false };
    out.queryParameters.push(qp);
  });
  return out;
}

function header(name: string, m: { exact?: string; prefix?: string; regex?: string } | undefined): HeaderMatcher {
  const h: HeaderMatcher = { name, invertMatch: false, treatMissingHeaderAsEmpty: false };
  if (m?.exact !== undefined) h.stringMatch = { exact: m.exact, ignoreCase: false };
  else if (m?.prefix !== undefined) h.stringMatch = { prefix: m.prefix, ignoreCase: false };
  else if (m?.regex !== undefined) h.stringMatch = { safeRegex: { regex: m.regex }, ignoreCase: false };
  return h;
}

function fault(f: NonNullable<RoutePolicyRule['fault']>, path: string): HTTPFault {
  return HTTPFault.fromPartial({
    ...(f.delay ? { delay: { fixedDelay: protoDuration(f.delay.fixedDelay, `${path}.delay.fixedDelay`), percentage: percentOf(f.delay.percent) } } : {}),
    ...(f.abort
      ? {
          abort: {
            ...(f.abort.httpStatus !== undefined ? { httpStatus: f.abort.httpStatus } : { grpcStatus: f.abort.grpcStatus! }),
            percentage: percentOf(f.abort.percent),
          },
        }
      : {}),
  });
}

function rateLimit(r: NonNullable<RoutePolicyRule['rateLimit']>, path: string, statName: string): LocalRateLimit {
  const fill = protoDuration(r.fillInterval, `${path}.fillInterval`);
  if (fill.seconds * 1000 + fill.nanos / 1e6 < 50) fieldError(`${path}.fillInterval`, `must be at least 50ms, got ${r.fillInterval}`);
  const all = { defaultValue: percentOf(100), runtimeKey: '' };
  return LocalRateLimit.fromPartial({
    statPrefix: `rate_limit_${statName}`,
    status: { code: r.statusCode },
    tokenBucket: { maxTokens: r.maxTokens, tokensPerFill: r.tokensPerFill, fillInterval: fill },
    filterEnabled: { ...all, runtimeKey: 'local_rate_limit_enabled' },
    filterEnforced: { ...all, runtimeKey: 'local_rate_limit_enforced' },
  });
}

function headerAdds(ops: { set?: Record<string, string>; add?: Record<string, string> } | undefined): HeaderValueOption[] {
  const out: HeaderValueOption[] = [];
  for (const [key, value] of Object.entries(ops?.set ?? {}))
    out.push({ header: { key, value, rawValue: Buffer.alloc(0) }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD, keepEmptyValue: false });
  for (const [key, value] of Object.entries(ops?.add ?? {}))
    out.push({ header: { key, value, rawValue: Buffer.alloc(0) }, appendAction: HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD, keepEmptyValue: false });
  return out;
}
