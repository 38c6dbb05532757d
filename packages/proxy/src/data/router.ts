import type { HeaderMatch, QueryMatch, RouteModel, RouteTable, StringMatch, VirtualHostModel, WeightedTarget } from '../model.js';

/** What route matching looks at: lower-case header names; `:method`, `:path`, `:authority` included. */
export interface RequestView {
  method: string;
  /** Path and query as received, e.g. `/api/v1?x=1`. */
  path: string;
  authority: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * Envoy's virtual host selection: an exact domain, then the longest `*.suffix` / `suffix`
 * wildcard, then the longest `prefix*`, then `*`. The authority is tried as received and, when it
 * carries a port, without it; an exact match on either beats any wildcard.
 */
export function selectVirtualHost(table: RouteTable, authority: string): VirtualHostModel | undefined {
  // Precomputed per (immutable) table: an exact domain is one map lookup, the common case.
  const exact = exactDomains(table);
  const quick = exact.get(authority);
  if (quick) return quick;
  const host = authority.toLowerCase();
  const colon = host.lastIndexOf(':');
  const bare = colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : undefined;
  const exactFull = exact.get(host);
  if (exactFull) return exactFull;
  const exactBare = bare === undefined ? undefined : exact.get(bare);
  if (exactBare) return exactBare;
  const full = findHost(table, host);
  if (full.exact) return full.vh;
  const noPort = bare === undefined ? undefined : findHost(table, bare);
  if (noPort?.exact) return noPort.vh;
  if (!noPort?.vh) return full.vh;
  return full.score >= noPort.score ? full.vh : noPort.vh;
}

const exactByTable = new WeakMap<RouteTable, Map<string, VirtualHostModel>>();

/** Exact (wildcard-free) domains of a table → their virtual host; the first one listing a domain wins, as in `findHost`. */
function exactDomains(table: RouteTable): Map<string, VirtualHostModel> {
  let m = exactByTable.get(table);
  if (m) return m;
  m = new Map();
  for (const vh of table.virtualHosts) for (const d of vh.domains) if (!d.includes('*') && !m.has(d)) m.set(d, vh);
  exactByTable.set(table, m);
  return m;
}

function findHost(table: RouteTable, host: string): { vh?: VirtualHostModel; exact: boolean; score: number } {
  let best: VirtualHostModel | undefined;
  let bestScore = -1;
  for (const vh of table.virtualHosts) {
    for (const d of vh.domains) {
      let score = -1;
      if (d === host) return { vh, exact: true, score: Infinity };
      if (d === '*') score = 0;
      else if (d.startsWith('*') && host.endsWith(d.slice(1)) && host.length > d.length - 1) score = 2_000_000 + d.length;
      else if (d.endsWith('*') && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1) score = 1_000_000 + d.length;
      if (score > bestScore) {
        bestScore = score;
        best = vh;
      }
    }
  }
  return best ? { vh: best, exact: false, score: bestScore } : { exact: false, score: -1 };
}

/** The first route of the virtual host whose match accepts the request. */
export function matchRoute(vh: VirtualHostModel, req: RequestView): RouteModel | undefined {
  const q = req.path.indexOf('?');
  const pathOnly = q < 0 ? req.path : req.path.slice(0, q);
  let lower: string | undefined;
  let query: URLSearchParams | undefined;
  next: for (const r of vh.routes) {
    const m = r.match;
    const p = m.caseSensitive ? pathOnly : (lower ??= pathOnly.toLowerCase());
    if (m.path.kind === 'prefix' ? !p.startsWith(m.path.value) : m.path.kind === 'exact' ? p !== m.path.value : !m.path.regex.test(p)) continue;
    if (m.grpc && !String(req.headers['content-type'] ?? '').startsWith('application/grpc')) continue;
    for (const h of m.headers) if (!headerMatches(h, req)) continue next;
    if (m.query.length) {
      query ??= new URLSearchParams(q < 0 ? '' : req.path.slice(q + 1));
      for (const qm of m.query) if (!queryMatches(qm, query)) continue next;
    }
    return r;
  }
  return undefined;
}

function headerValue(req: RequestView, name: string): string | undefined {
  if (name === ':method') return req.method;
  if (name === ':path') return req.path;
  if (name === ':authority' || name === 'host') return req.authority;
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function headerMatches(h: HeaderMatch, req: RequestView): boolean {
  const v = headerValue(req, h.name);
  let r: boolean;
  if (h.match.kind === 'present') r = (v !== undefined) === h.match.present;
  else if (v === undefined) r = false;
  else if (h.match.kind === 'range') {
    const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
    r = n >= h.match.start && n < h.match.end;
  } else r = stringMatches(h.match, v);
  return h.invert ? !r : r;
}

function queryMatches(q: QueryMatch, params: URLSearchParams): boolean {
  const v = params.get(q.name);
  if (q.match.kind === 'present') return (v !== null) === q.match.present;
  return v !== null && stringMatches(q.match, v);
}

export function stringMatches(m: StringMatch, value: string): boolean {
  if (m.kind === 'regex') return m.regex.test(value);
  const v = m.ignoreCase ? value.toLowerCase() : value;
  const want = m.ignoreCase ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'exact':
      return v === want;
    case 'prefix':
      return v.startsWith(want);
    case 'suffix':
      return v.endsWith(want);
    case 'contains':
      return v.includes(want);
  }
}

/** Picks a weighted target; `random` in [0, 1). */
export function pickWeighted(targets: readonly WeightedTarget[], total: number, random: number): string {
  let x = random * total;
  for (const t of targets) {
    if (x < t.weight) return t.cluster;
    x -= t.weight;
  }
  return targets[targets.length - 1]!.cluster;
}
