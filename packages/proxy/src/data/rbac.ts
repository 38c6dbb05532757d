/**
 * The HTTP RBAC filter (`envoy.filters.http.rbac`): whether a request may reach the service,
 * judged on who the peer is (its verified certificate's URI SAN, a SPIFFE ID) and what the request
 * asks for. The model mirrors Envoy's `envoy.config.rbac.v3` (see
 * https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto), restricted to
 * what translate/rbac.ts accepts; evaluation is pure and table-tested (rbac.test.ts).
 *
 * Envoy's semantics, kept here:
 * - a policy matches when any of its permissions and any of its principals match;
 * - an ALLOW filter lets a request through when some policy matches, else denies it (so an ALLOW
 *   filter without policies denies everything); a DENY filter denies when some policy matches;
 * - filters run in order and the first denial answers the request;
 * - `and` of nothing is true, `or` of nothing is false;
 * - `authenticated` matches a connection whose peer presented a verified certificate (with
 *   `principal_name`: whose URI SAN matches it); a plaintext peer has no principal, so it matches
 *   no `authenticated` principal, and `not_id` of one matches it (as in Envoy);
 * - policies are tried in name order (Envoy keeps them in an ordered map), so the policy a
 *   denial names is deterministic.
 */
import type net from 'node:net';
import type { HeaderMatch, StringMatch } from '../model.js';
import { peerPrincipal } from './peer.js';
import { headerMatches, stringMatches, type RequestView } from './router.js';

export type RbacPermission =
  | { kind: 'any' }
  | { kind: 'and'; rules: RbacPermission[] }
  | { kind: 'or'; rules: RbacPermission[] }
  | { kind: 'not'; rule: RbacPermission }
  | { kind: 'header'; match: HeaderMatch }
  | { kind: 'urlPath'; match: StringMatch };

export type RbacPrincipal =
  | { kind: 'any' }
  | { kind: 'and'; ids: RbacPrincipal[] }
  | { kind: 'or'; ids: RbacPrincipal[] }
  | { kind: 'not'; id: RbacPrincipal }
  /** Without `name`: any verified peer. */
  | { kind: 'authenticated'; name?: StringMatch }
  | { kind: 'header'; match: HeaderMatch }
  | { kind: 'urlPath'; match: StringMatch };

export interface RbacPolicyModel {
  name: string;
  permissions: RbacPermission[];
  principals: RbacPrincipal[];
}

/** One RBAC filter of an HTTP filter chain; policies sorted by name. */
export interface RbacFilterModel {
  action: 'ALLOW' | 'DENY';
  policies: RbacPolicyModel[];
}

/** What a decision is made on: the request, and the peer's verified identity if it has one. */
export interface RbacRequest extends RequestView {
  /** URI SAN of the peer's verified certificate; undefined on plaintext or unverified connections. */
  principal: string | undefined;
}

export type RbacDecision =
  | { allowed: true; /** The ALLOW policy that let it through (the last ALLOW filter's), if any. */ policy?: string }
  | { allowed: false; action: 'ALLOW' | 'DENY'; /** The DENY policy that matched; none when no ALLOW policy did. */ policy?: string };

/** The URL path part of `:path`: without query and fragment (Envoy's PathMatcher). */
export function urlPath(path: string): string {
  let end = path.length;
  const q = path.indexOf('?');
  if (q >= 0) end = q;
  const h = path.indexOf('#');
  if (h >= 0 && h < end) end = h;
  return path.slice(0, end);
}

/** A request with its URL path worked out once, however many `url_path` matchers read it. */
type Facts = RbacRequest & { urlPath?: string };
const pathOf = (req: Facts): string => (req.urlPath ??= urlPath(req.path));

// A regex over the principal is the costly part of a decision (re2js, linear but ~1 us), and a
// callee sees few distinct callers: each matcher remembers its verdicts per principal (bounded).
const MEMO_LIMIT = 1024;
const principalMemo = new WeakMap<StringMatch, Map<string, boolean>>();
function principalNameMatches(m: StringMatch, principal: string): boolean {
  if (m.kind !== 'regex') return stringMatches(m, principal);
  let memo = principalMemo.get(m);
  if (!memo) principalMemo.set(m, (memo = new Map()));
  let v = memo.get(principal);
  if (v === undefined) {
    v = stringMatches(m, principal);
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(principal, v);
  }
  return v;
}

export function permissionMatches(p: RbacPermission, req: Facts): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.rules.every((r) => permissionMatches(r, req));
    case 'or':
      return p.rules.some((r) => permissionMatches(r, req));
    case 'not':
      return !permissionMatches(p.rule, req);
    case 'header':
      return headerMatches(p.match, req);
    case 'urlPath':
      return stringMatches(p.match, pathOf(req));
  }
}

export function principalMatches(p: RbacPrincipal, req: Facts): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.ids.every((r) => principalMatches(r, req));
    case 'or':
      return p.ids.some((r) => principalMatches(r, req));
    case 'not':
      return !principalMatches(p.id, req);
    case 'authenticated':
      return req.principal !== undefined && (p.name === undefined || principalNameMatches(p.name, req.principal));
    case 'header':
      return headerMatches(p.match, req);
    case 'urlPath':
      return stringMatches(p.match, pathOf(req));
  }
}

/** The first policy (in name order) that matches the request. */
export function matchingPolicy(filter: RbacFilterModel, req: Facts): string | undefined {
  for (const pol of filter.policies)
    if (pol.permissions.some((p) => permissionMatches(p, req)) && pol.principals.some((p) => principalMatches(p, req))) return pol.name;
  return undefined;
}

/** Runs the filters in order; the first that denies decides. */
export function evaluateRbac(filters: readonly RbacFilterModel[], request: RbacRequest): RbacDecision {
  const req: Facts = { ...request };
  let allowedBy: string | undefined;
  for (const f of filters) {
    const matched = matchingPolicy(f, req);
    if (f.action === 'DENY' && matched !== undefined) return { allowed: false, action: 'DENY', policy: matched };
    if (f.action === 'ALLOW') {
      if (matched === undefined) return { allowed: false, action: 'ALLOW' };
      allowedBy = matched;
    }
  }
  return allowedBy === undefined ? { allowed: true } : { allowed: true, policy: allowedBy };
}

/** The body Envoy's RBAC filter answers a denied request with. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';
/** The reason header value of a denial (x-octo-reason). */
export const RBAC_DENIED_REASON = 'rbac-denied';
/** The header naming the DENY policy that matched. */
export const RBAC_POLICY_HEADER = 'x-octo-rbac-policy';

// A connection's certificate does not change (no renegotiation), so its principal is read once.
const principals = new WeakMap<object, { value: string | undefined }>();

/** The verified peer principal of the connection a request came on (cached per connection). */
export function connectionPrincipal(socket: unknown): string | undefined {
  if (!socket || typeof socket !== 'object') return undefined;
  let c = principals.get(socket);
  if (!c) {
    c = { value: peerPrincipal(socket as net.Socket) };
    principals.set(socket, c);
  }
  return c.value;
}
