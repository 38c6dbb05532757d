import type { RouteConfiguration } from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route.js';
import type { VirtualHost, Route, RouteMatch, RouteAction, HeaderMatcher, RetryPolicy } from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route_components.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import type {
  ClusterAction,
  FaultSpec,
  HashPolicy,
  HeaderMatch,
  PathMatch,
  QueryMatch,
  RateLimitSpec,
  Result,
  RetrySpec,
  RouteMatchModel,
  RouteModel,
  RouteTable,
  VirtualHostModel,
} from '../model.js';
import { RETRY_ON as RETRY_ON_LIST } from '@octo-mesh/api/retry-on.js';
import { ROUTE_CONFIGURATION, checkFields } from './allow-list.js';
import { FILTER, compileRegex, durationMs, faultSpec, guard, headerAdds, headerNames, invalid, rateLimitSpec, stringMatch } from './common.js';

/** Envoy's default route timeout. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

/** Retry conditions this proxy understands: the mesh's list (Envoy names; gRPC ones match `grpc-status`). */
export const RETRY_ON: ReadonlySet<string> = new Set(RETRY_ON_LIST);

/** Translates and validates one RouteConfiguration (RDS resource or HCM inline `route_config`). */
export function translateRouteConfiguration(rc: RouteConfiguration): Result<RouteTable> {
  return guard(`route configuration ${JSON.stringify(rc.name)}`, () => {
    checkFields(ROUTE_CONFIGURATION, rc, '');
    return routeTable(rc);
  });
}

export function routeTable(rc: RouteConfiguration, path = ''): RouteTable {
  const p = (s: string) => (path ? `${path}.${s}` : s);
  // Envoy's validate_clusters refuses a table naming an unknown cluster; here it answers 503 cluster-not-found.
  if (rc.validateClusters) invalid(p('validate_clusters'), 'true is not implemented (an unknown cluster answers 503 cluster-not-found)');
  const seen = new Set<string>();
  const virtualHosts = rc.virtualHosts.map((vh, i) => {
    const out = virtualHost(vh, p(`virtual_hosts[${i}]`));
    for (const d of out.domains) {
      if (seen.has(d)) invalid(p(`virtual_hosts[${i}].domains`), `domain ${JSON.stringify(d)} appears in more than one virtual host`);
      seen.add(d);
    }
    return out;
  });
  return {
    name: rc.name,
    virtualHosts,
    requestHeadersToAdd: headerAdds(rc.requestHeadersToAdd, p('request_headers_to_add')),
    requestHeadersToRemove: headerNames(rc.requestHeadersToRemove, p('request_headers_to_remove')),
    responseHeadersToAdd: headerAdds(rc.responseHeadersToAdd, p('response_headers_to_add')),
    responseHeadersToRemove: headerNames(rc.responseHeadersToRemove, p('response_headers_to_remove')),
  };
}

function virtualHost(vh: VirtualHost, path: string): VirtualHostModel {
  if (!vh.name) invalid(`${path}.name`, 'must not be empty');
  if (vh.domains.length === 0) invalid(`${path}.domains`, 'must list at least one domain');
  const domains = vh.domains.map((d, i) => {
    const dom = d.toLowerCase();
    const stars = dom.split('*').length - 1;
    if (!dom || stars > 1 || (stars === 1 && dom !== '*' && !dom.startsWith('*') && !dom.endsWith('*')))
      invalid(`${path}.domains[${i}]`, `invalid domain ${JSON.stringify(d)} (a wildcard may only lead or trail)`);
    return dom;
  });
  const out: VirtualHostModel = {
    name: vh.name,
    domains,
    routes: vh.routes.map((r, i) => route(r, `${path}.routes[${i}]`)),
    requestHeadersToAdd: headerAdds(vh.requestHeadersToAdd, `${path}.request_headers_to_add`),
    requestHeadersToRemove: headerNames(vh.requestHeadersToRemove, `${path}.request_headers_to_remove`),
    responseHeadersToAdd: headerAdds(vh.responseHeadersToAdd, `${path}.response_headers_to_add`),
    responseHeadersToRemove: headerNames(vh.responseHeadersToRemove, `${path}.response_headers_to_remove`),
  };
  if (vh.retryPolicy) out.retry = retrySpec(vh.retryPolicy, `${path}.retry_policy`);
  Object.assign(out, perFilter(vh.typedPerFilterConfig, `${path}.typed_per_filter_config`));
  return out;
}

/** Reads the per-route (or per-virtual-host) overrides of the local rate limit and fault filters. */
export function perFilter(cfg: Record<string, Any>, path: string): { rateLimit?: RateLimitSpec; fault?: FaultSpec } {
  const out: { rateLimit?: RateLimitSpec; fault?: FaultSpec } = {};
  for (const [name, any] of Object.entries(cfg)) {
    if (name === FILTER.localRateLimit) out.rateLimit = rateLimitSpec(any, `${path}["${name}"]`);
    else if (name === FILTER.fault) out.fault = faultSpec(any, `${path}["${name}"]`);
    else invalid(`${path}["${name}"]`, 'unsupported filter override');
  }
  return out;
}

function route(r: Route, path: string): RouteModel {
  if (!r.match) invalid(`${path}.match`, 'is required');
  const out: RouteModel = {
    name: r.name,
    match: routeMatch(r.match, `${path}.match`),
    action: { kind: 'direct', status: 404, body: '' },
    requestHeadersToAdd: headerAdds(r.requestHeadersToAdd, `${path}.request_headers_to_add`),
    requestHeadersToRemove: headerNames(r.requestHeadersToRemove, `${path}.request_headers_to_remove`),
    responseHeadersToAdd: headerAdds(r.responseHeadersToAdd, `${path}.response_headers_to_add`),
    responseHeadersToRemove: headerNames(r.responseHeadersToRemove, `${path}.response_headers_to_remove`),
  };
  if (r.route) out.action = clusterAction(r.route, `${path}.route`);
  else if (r.directResponse) {
    const status = r.directResponse.status;
    if (status < 200 || status >= 600) invalid(`${path}.direct_response.status`, `must be in [200, 600), got ${status}`);
    out.action = { kind: 'direct', status, body: r.directResponse.body?.inlineString ?? '' };
  } else invalid(path, 'route or direct_response is required (redirects are not implemented)');
  Object.assign(out, perFilter(r.typedPerFilterConfig, `${path}.typed_per_filter_config`));
  return out;
}

function routeMatch(m: RouteMatch, path: string): RouteMatchModel {
  const caseSensitive = m.caseSensitive ?? true;
  let pm: PathMatch;
  if (m.prefix !== undefined) pm = { kind: 'prefix', value: m.prefix };
  else if (m.path !== undefined) pm = { kind: 'exact', value: m.path };
  else if (m.safeRegex !== undefined) pm = { kind: 'regex', regex: compileRegex(m.safeRegex.regex, `${path}.safe_regex.regex`, !caseSensitive) };
  else if (m.pathSeparatedPrefix !== undefined) {
    // Approximated as a prefix that must end at a path segment boundary: a regex.
    const esc = m.pathSeparatedPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    pm = { kind: 'regex', regex: compileRegex(`${esc}(?:[/?#].*)?`, `${path}.path_separated_prefix`, !caseSensitive) };
  } else return invalid(path, 'one of prefix, path, safe_regex or path_separated_prefix is required');
  if (pm.kind !== 'regex' && !caseSensitive) pm = { ...pm, value: pm.value.toLowerCase() };
  return {
    path: pm,
    caseSensitive,
    headers: m.headers.map((h, i) => headerMatch(h, `${path}.headers[${i}]`)),
    query: m.queryParameters.map((q, i): QueryMatch => {
      const qp = `${path}.query_parameters[${i}]`;
      if (!q.name) invalid(`${qp}.name`, 'must not be empty');
      if (q.presentMatch !== undefined) return { name: q.name, match: { kind: 'present', present: q.presentMatch } };
      return { name: q.name, match: stringMatch(q.stringMatch, `${qp}.string_match`) };
    }),
    grpc: m.grpc !== undefined,
  };
}

export function headerMatch(h: HeaderMatcher, path: string): HeaderMatch {
  const name = h.name.toLowerCase();
  if (!name) invalid(`${path}.name`, 'must not be empty');
  const base = { name, invert: h.invertMatch };
  if (h.exactMatch !== undefined) return { ...base, match: { kind: 'exact', value: h.exactMatch, ignoreCase: false } };
  if (h.prefixMatch !== undefined) return { ...base, match: { kind: 'prefix', value: h.prefixMatch, ignoreCase: false } };
  if (h.suffixMatch !== undefined) return { ...base, match: { kind: 'suffix', value: h.suffixMatch, ignoreCase: false } };
  if (h.containsMatch !== undefined) return { ...base, match: { kind: 'contains', value: h.containsMatch, ignoreCase: false } };
  if (h.safeRegexMatch !== undefined) return { ...base, match: { kind: 'regex', regex: compileRegex(h.safeRegexMatch.regex, `${path}.safe_regex_match.regex`) } };
  if (h.rangeMatch !== undefined) {
    if (!(h.rangeMatch.start < h.rangeMatch.end)) invalid(`${path}.range_match`, 'start must be less than end');
    return { ...base, match: { kind: 'range', start: h.rangeMatch.start, end: h.rangeMatch.end } };
  }
  if (h.presentMatch !== undefined) return { ...base, match: { kind: 'present', present: h.presentMatch } };
  if (h.stringMatch !== undefined) return { ...base, match: stringMatch(h.stringMatch, `${path}.string_match`) };
  // Envoy: a matcher with no match specifier matches when the header is present.
  return { ...base, match: { kind: 'present', present: true } };
}

function clusterAction(a: RouteAction, path: string): ClusterAction {
  let clusters: ClusterAction['clusters'];
  if (a.cluster !== undefined) {
    if (!a.cluster) invalid(`${path}.cluster`, 'must not be empty');
    clusters = [{ cluster: a.cluster, weight: 1 }];
  } else if (a.weightedClusters !== undefined) {
    const wc = a.weightedClusters.clusters;
    if (wc.length === 0) invalid(`${path}.weighted_clusters.clusters`, 'must list at least one cluster');
    clusters = wc.map((c, i) => {
      if (!c.name) invalid(`${path}.weighted_clusters.clusters[${i}].name`, 'must not be empty (cluster_header is not implemented)');
      const weight = c.weight ?? 0;
      if (!Number.isInteger(weight) || weight < 0) invalid(`${path}.weighted_clusters.clusters[${i}].weight`, `must be a non-negative integer, got ${weight}`);
      return { cluster: c.name, weight };
    });
  } else return invalid(path, 'cluster or weighted_clusters is required (cluster_header and plugins are not implemented)');
  const sum = clusters.reduce((s, c) => s + c.weight, 0);
  if (sum <= 0) invalid(`${path}.weighted_clusters`, 'the sum of weights must be greater than 0');
  const totalWeight = a.weightedClusters?.totalWeight ?? sum;
  if (totalWeight !== sum) invalid(`${path}.weighted_clusters.total_weight`, `is ${totalWeight} but the weights sum to ${sum}`);
  const out: ClusterAction = {
    kind: 'cluster',
    clusters,
    totalWeight,
    timeoutMs: durationMs(a.timeout, DEFAULT_ROUTE_TIMEOUT_MS),
    hashPolicy: a.hashPolicy.map((h, i): HashPolicy => {
      const hp = `${path}.hash_policy[${i}]`;
      if (h.header) return { kind: 'header', name: h.header.headerName.toLowerCase(), terminal: h.terminal };
      if (h.cookie) return { kind: 'cookie', name: h.cookie.name, terminal: h.terminal };
      if (h.connectionProperties) return { kind: 'source-ip', terminal: h.terminal };
      if (h.queryParameter) return { kind: 'query', name: h.queryParameter.name, terminal: h.terminal };
      return invalid(hp, 'header, cookie, connection_properties or query_parameter is required');
    }),
    upgrades: Object.fromEntries(a.upgradeConfigs.map((u) => [u.upgradeType.toLowerCase(), u.enabled ?? true])),
  };
  if (a.retryPolicy) out.retry = retrySpec(a.retryPolicy, `${path}.retry_policy`);
  if (a.prefixRewrite) out.prefixRewrite = a.prefixRewrite;
  if (a.hostRewriteLiteral) out.hostRewrite = a.hostRewriteLiteral;
  return out;
}

export function retrySpec(r: RetryPolicy, path: string): RetrySpec {
  const retryOn = r.retryOn
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const cond of retryOn) if (!RETRY_ON.has(cond)) invalid(`${path}.retry_on`, `unsupported condition ${JSON.stringify(cond)}`);
  const baseIntervalMs = durationMs(r.retryBackOff?.baseInterval, 25);
  if (r.retryBackOff && !(baseIntervalMs > 0)) invalid(`${path}.retry_back_off.base_interval`, 'must be greater than 0');
  const maxIntervalMs = durationMs(r.retryBackOff?.maxInterval, baseIntervalMs * 10);
  if (maxIntervalMs < baseIntervalMs) invalid(`${path}.retry_back_off.max_interval`, 'must not be less than base_interval');
  for (const [i, c] of r.retriableStatusCodes.entries())
    if (c < 100 || c >= 600) invalid(`${path}.retriable_status_codes[${i}]`, `not an HTTP status: ${c}`);
  return {
    retryOn,
    numRetries: r.numRetries ?? 1,
    perTryTimeoutMs: durationMs(r.perTryTimeout, 0),
    retriableStatusCodes: [...r.retriableStatusCodes],
    baseIntervalMs,
    maxIntervalMs,
  };
}
