/**
 * AuthorizationPolicy → Envoy's HTTP RBAC filter (envoy.extensions.filters.http.rbac.v3.RBAC), for
 * the inbound listener of the service's instances. The mapping follows Istio's (its authz
 * builder): one RBAC policy per rule, keyed `<namespace>/<name>[rule <i>]`; each `to` entry is a
 * permission (the entries OR), each `from` entry a principal (the entries OR), the fields of one
 * entry AND-ed (`and_rules` / `and_ids`), the values of one field OR-ed (`or_rules` / `or_ids`),
 * `not*` fields negated (`not_rule` / `not_id`). A rule without `from` (`to`) gets `any`.
 *
 * Identities are SPIFFE IDs, `spiffe://<trust domain>/ns/<ns>/sa/<sa>` (packages/identity). The
 * trust domain is not matched: only certificates that chain to the mesh's trust bundle are
 * verified at all, so the namespace and service account are what tell callers apart. A namespace
 * becomes an anchored RE2 `safe_regex` over the whole ID, a service account likewise, a principal
 * an `exact` match. `notNamespaces`/`notServiceAccounts` also require an authenticated peer
 * (`and_ids: [authenticated {}, not_id …]`): Envoy's `not_id` alone would match a plaintext
 * caller, which has no identity to be "not in" a namespace.
 *
 * Combination (Istio's): a DENY filter with every DENY policy's rules first, then an ALLOW filter
 * with every ALLOW policy's rules. An ALLOW policy without rules contributes no RBAC policy but
 * still makes the ALLOW filter exist, so it denies everything the other ALLOW policies do not allow.
 *
 * Policies are re-validated (a YAML-directory source has no API server in front of it). One that
 * fails fails closed and is reported: an invalid ALLOW policy allows nothing, an invalid DENY
 * policy denies everything — a broken policy must never open a service.
 */
import { authorizationPolicy, resourceKey, type AuthorizationOperation, type AuthorizationPolicy, type AuthorizationSource } from '@octo-mesh/api';
import { HttpFilter } from '@octo-mesh/proto';
import { RBAC } from '@octo-mesh/proto/gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC_Action, type Permission, type Policy, type Principal } from '@octo-mesh/proto/gen/envoy/config/rbac/v3/rbac.js';
import { pack } from './common.js';

export const RBAC_FILTER = 'envoy.filters.http.rbac';
export const RBAC_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';

/** What translation made of one AuthorizationPolicy (for its status). */
export interface AuthorizationVerdict {
  /** `namespace/name`. */
  policy: string;
  generation: number;
  action: 'ALLOW' | 'DENY';
  accepted: boolean;
  /** Why it was rejected (names the field), or absent. */
  reason?: string;
}

export interface AuthorizationTranslation {
  /** The RBAC filters for the inbound HTTP connection manager, before its router: DENY, then ALLOW. */
  filters: HttpFilter[];
  verdicts: AuthorizationVerdict[];
  /**
   * The RBAC policies per action, each present when the service has a policy of that action
   * (an ALLOW policy without rules: present and empty), for {@link inboundAuthorization}.
   */
  rules?: { ALLOW?: Record<string, Policy>; DENY?: Record<string, Policy> };
}

/** The key of an RBAC policy made from rule `i` of a policy. */
export const rbacPolicyName = (policy: string, rule: number): string => `${policy}[rule ${rule}]`;

const any = { any: true };

/** RE2 for a SPIFFE ID in a namespace (any service account) or of one service account. */
export function identityRegex(namespace: string, serviceAccount?: string): string {
  const sa = serviceAccount === undefined ? '[^/]+' : serviceAccount.replace(/[.]/g, '\\.');
  return `spiffe://[^/]+/ns/${namespace}/sa/${sa}`;
}

const regexId = (re: string): Principal => ({ authenticated: { principalName: { safeRegex: { regex: re } } } }) as Principal;
const exactId = (id: string): Principal => ({ authenticated: { principalName: { exact: id } } }) as Principal;
const orIds = (ids: Principal[]): Principal => (ids.length === 1 ? ids[0]! : ({ orIds: { ids } } as Principal));
const orRules = (rules: Permission[]): Permission => (rules.length === 1 ? rules[0]! : ({ orRules: { rules } } as Permission));
const splitSa = (ref: string): [string, string] => {
  const slash = ref.indexOf('/');
  return [ref.slice(0, slash), ref.slice(slash + 1)];
};

/** One `from` entry: its present fields AND-ed. */
export function sourcePrincipal(s: AuthorizationSource): Principal {
  const parts: Principal[] = [];
  if (s.principals) parts.push(orIds(s.principals.map(exactId)));
  if (s.namespaces) parts.push(orIds(s.namespaces.map((ns) => regexId(identityRegex(ns)))));
  if (s.serviceAccounts) parts.push(orIds(s.serviceAccounts.map((r) => regexId(identityRegex(...splitSa(r))))));
  const negated: Principal[] = [];
  if (s.notNamespaces) negated.push({ notId: orIds(s.notNamespaces.map((ns) => regexId(identityRegex(ns)))) } as Principal);
  if (s.notServiceAccounts) negated.push({ notId: orIds(s.notServiceAccounts.map((r) => regexId(identityRegex(...splitSa(r))))) } as Principal);
  // A caller without an identity is in no namespace: "not in X" needs an identity first.
  if (negated.length) parts.push({ authenticated: {} } as Principal, ...negated);
  return parts.length === 1 ? parts[0]! : ({ andIds: { ids: parts } } as Principal);
}

/** An AuthorizationPolicy path pattern as a permission: `*` any, `/p*` prefix, `*s` suffix, else exact. */
export function pathPermission(pattern: string): Permission {
  if (pattern === '*') return any as Permission;
  const m = pattern.endsWith('*') ? { prefix: pattern.slice(0, -1) } : pattern.startsWith('*') ? { suffix: pattern.slice(1) } : { exact: pattern };
  return { urlPath: { path: { ...m } } } as Permission;
}

const methodPermission = (m: string): Permission => ({ header: { name: ':method', stringMatch: { exact: m } } }) as Permission;

/** One `to` entry: its present fields AND-ed. */
export function operationPermission(o: AuthorizationOperation): Permission {
  const parts: Permission[] = [];
  if (o.paths) parts.push(orRules(o.paths.map(pathPermission)));
  if (o.methods) parts.push(orRules(o.methods.map(methodPermission)));
  if (o.notPaths) parts.push({ notRule: orRules(o.notPaths.map(pathPermission)) } as Permission);
  if (o.notMethods) parts.push({ notRule: orRules(o.notMethods.map(methodPermission)) } as Permission);
  return parts.length === 1 ? parts[0]! : ({ andRules: { rules: parts } } as Permission);
}

function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out;
}

const generationOf = (p: AuthorizationPolicy): number => p.metadata.generation ?? 0;

/** The RBAC policies of one (valid) AuthorizationPolicy. */
export function rbacPolicies(p: AuthorizationPolicy): Record<string, Policy> {
  const key = resourceKey(p);
  const out: Record<string, Policy> = {};
  (p.spec.rules ?? []).forEach((r, i) => {
    out[rbacPolicyName(key, i)] = {
      permissions: r.to ? r.to.map(operationPermission) : [any as Permission],
      principals: r.from ? r.from.map(sourcePrincipal) : [any as Principal],
    } as Policy;
  });
  return out;
}

/**
 * Translates the AuthorizationPolicies of one service (any order). Without policies there is no
 * filter at all: the service admits every caller, as without Istio policies.
 */
export function translateAuthorization(policies: readonly AuthorizationPolicy[]): AuthorizationTranslation {
  const verdicts: AuthorizationVerdict[] = [];
  const rules = { ALLOW: {} as Record<string, Policy>, DENY: {} as Record<string, Policy> };
  const present = { ALLOW: false, DENY: false };
  for (const raw of [...policies].sort((a, b) => resourceKey(a).localeCompare(resourceKey(b)))) {
    const key = resourceKey(raw);
    const generation = generationOf(raw);
    const parsed = authorizationPolicy.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      // Fail closed: what the author meant is unknown, so an ALLOW allows nothing and anything
      // else (DENY, or an action we cannot read) denies everything.
      const action = (raw.spec as { action?: unknown } | undefined)?.action === 'ALLOW' || (raw.spec as { action?: unknown } | undefined)?.action === undefined ? 'ALLOW' : 'DENY';
      present[action] = true;
      if (action === 'DENY') rules.DENY[rbacPolicyName(key, 0)] = { permissions: [any], principals: [any] } as Policy;
      verdicts.push({ policy: key, generation, action, accepted: false, reason: `${issuePath(i.path)}: ${i.message}` });
      continue;
    }
    const p = parsed.data;
    present[p.spec.action] = true;
    Object.assign(rules[p.spec.action], rbacPolicies(p));
    verdicts.push({ policy: key, generation, action: p.spec.action, accepted: true });
  }
  const kept = { ...(present.ALLOW ? { ALLOW: rules.ALLOW } : {}), ...(present.DENY ? { DENY: rules.DENY } : {}) };
  return { filters: rbacFilters(kept), verdicts, ...(verdicts.length ? { rules: kept } : {}) };
}

function rbacFilters(rules: { ALLOW?: Record<string, Policy>; DENY?: Record<string, Policy> }): HttpFilter[] {
  const filters: HttpFilter[] = [];
  for (const action of ['DENY', 'ALLOW'] as const) {
    const policies = rules[action];
    if (!policies) continue;
    const config = RBAC.fromPartial({ rules: { action: action === 'DENY' ? RBAC_Action.DENY : RBAC_Action.ALLOW, policies } });
    filters.push(HttpFilter.fromPartial({ name: RBAC_FILTER, typedConfig: pack(RBAC_TYPE_URL, RBAC, config) }));
  }
  return filters;
}

/** One service a sidecar's workload backs, with its translated policies (absent: it has none). */
export interface BackedService {
  /** `namespace/name`. */
  key: string;
  authz?: AuthorizationTranslation | undefined;
}

/**
 * An RE2 for the `:authority` (Host) of a request to a service: the names a caller's sidecar
 * routes by (translate/routes.ts hostAliases), with any port. Only lower case: a request naming
 * the service otherwise matches no service and gets the strictest treatment (below).
 */
export function authorityRegex(key: string): string {
  const slash = key.indexOf('/');
  const ns = key.slice(0, slash);
  const name = key.slice(slash + 1);
  return `(${name}|${name}\\.${ns}|${name}\\.${ns}\\.svc|${name}\\.${ns}\\.svc\\.cluster\\.local)(:[0-9]+)?`;
}

const authority = (key: string): Permission => ({ header: { name: ':authority', stringMatch: { safeRegex: { regex: authorityRegex(key) } } } }) as Permission;

/** The name of the ALLOW-filter policy that admits a backed service without ALLOW policies. */
export const openServicePolicyName = (key: string): string => `${key}[no ALLOW policy]`;

/**
 * The RBAC filters of the inbound listener of a sidecar whose workload backs these services (in
 * any order; Pilot's backedServices decides them from the endpoints). One service: its filters,
 * unchanged. Several (Istio's workload semantics for DENY, the service the caller named for ALLOW):
 *
 * - DENY: every DENY policy of every service applies to every request, whatever its Host. The
 *   Host is the caller's choice, so a DENY scoped by it could be bypassed by naming another
 *   service of the same workload; the price is that a DENY rule of one service also denies the
 *   same request to the others (make the rule name paths or methods to narrow it).
 * - ALLOW, when any service has ALLOW policies: a request whose `:authority` names service S
 *   (authorityRegex) needs an ALLOW policy of S to match when S has any; a service without
 *   ALLOW policies admits requests naming it. A request naming none of the services (a pod
 *   address, an upper-case name, another Host) is ambiguous and must pass every service's ALLOW
 *   set: the rules of the one service with ALLOW policies, or nothing (denied) when several have.
 *
 * Fails closed: an invalid policy keeps the fail-closed rules translateAuthorization gave it.
 */
export function inboundAuthorization(services: readonly BackedService[]): HttpFilter[] {
  const withPolicies = [...services].filter((s) => s.authz?.rules).sort((a, b) => a.key.localeCompare(b.key));
  if (!withPolicies.length) return [];
  if (services.length === 1) return withPolicies[0]!.authz!.filters;
  const DENY: Record<string, Policy> = {};
  for (const s of withPolicies) Object.assign(DENY, s.authz!.rules!.DENY ?? {});
  const allowing = withPolicies.filter((s) => s.authz!.rules!.ALLOW);
  let ALLOW: Record<string, Policy> | undefined;
  if (allowing.length) {
    ALLOW = {};
    const keys = [...new Set(services.map((s) => s.key))].sort();
    const named = (key: string): Permission =>
      // The one service with ALLOW policies also decides requests that name no service.
      allowing.length === 1 && allowing[0]!.key === key ? ({ orRules: { rules: [authority(key), { notRule: { orRules: { rules: keys.map(authority) } } }] } } as Permission) : authority(key);
    for (const s of allowing)
      for (const [name, p] of Object.entries(s.authz!.rules!.ALLOW!))
        ALLOW[name] = { ...p, permissions: p.permissions.map((perm) => ({ andRules: { rules: [named(s.key), perm] } }) as Permission) } as Policy;
    for (const key of keys) if (!allowing.some((s) => s.key === key)) ALLOW[openServicePolicyName(key)] = { permissions: [authority(key)], principals: [any as Principal] } as Policy;
  }
  return rbacFilters({ ...(Object.keys(DENY).length || withPolicies.some((s) => s.authz!.rules!.DENY) ? { DENY } : {}), ...(ALLOW ? { ALLOW } : {}) });
}
