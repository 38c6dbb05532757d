/**
 * Translates the `envoy.filters.http.rbac` filter's typed_config
 * (envoy.extensions.filters.http.rbac.v3.RBAC) into the model data/rbac.ts evaluates. The subset
 * is the allow-list's (`RBAC`, `RBAC_POLICY` in allow-list.ts): actions ALLOW and DENY; permissions
 * `any`, `and_rules`, `or_rules`, `not_rule`, `header`, `url_path`; principals `any`, `and_ids`,
 * `or_ids`, `not_id`, `authenticated` (with an optional `principal_name`), `header`, `url_path`.
 * Anything else (a CEL `condition`, `destination_port`, `source_ip`, shadow rules, the `matcher`
 * API, action LOG) is refused by name, so a policy is never half enforced.
 */
import { RBAC } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC_Action, type Permission, type Principal } from '@octo-mesh/proto/gen/proxy/envoy/config/rbac/v3/rbac.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import type { RbacFilterModel, RbacPermission, RbacPolicyModel, RbacPrincipal } from '../data/rbac.js';
import { RBAC as RBAC_RULE, RBAC_POLICY, checkFields } from './allow-list.js';
import { invalid, stringMatch } from './common.js';
import { headerMatch } from './route.js';

export const RBAC_FILTER = 'envoy.filters.http.rbac';
export const RBAC_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';

/** Deeper nesting than this is refused (a config, not an attack surface, but evaluation recurses). */
const MAX_DEPTH = 32;

/**
 * The filter's model, or undefined when the config has no `rules` (Envoy then enforces nothing).
 * @throws InvalidField naming the first unsupported or malformed field below `path`.
 */
export function rbacSpec(any: Any, path: string): RbacFilterModel | undefined {
  if (any.typeUrl !== RBAC_TYPE_URL) invalid(`${path}.type_url`, `expected ${RBAC_TYPE_URL}, got ${any.typeUrl}`);
  let c: RBAC;
  try {
    c = RBAC.decode(any.value);
  } catch (err) {
    return invalid(path, `cannot decode ${any.typeUrl}: ${(err as Error).message}`);
  }
  checkFields(RBAC_RULE, c, path);
  const rules = c.rules;
  if (!rules) return undefined;
  const rp = `${path}.rules`;
  let action: RbacFilterModel['action'];
  if (rules.action === RBAC_Action.ALLOW) action = 'ALLOW';
  else if (rules.action === RBAC_Action.DENY) action = 'DENY';
  else return invalid(`${rp}.action`, `only ALLOW and DENY are implemented, got ${RBAC_Action[rules.action] ?? rules.action}`);
  const policies: RbacPolicyModel[] = Object.keys(rules.policies)
    .sort()
    .map((name) => {
      const pp = `${rp}.policies[${JSON.stringify(name)}]`;
      const pol = rules.policies[name]!;
      checkFields(RBAC_POLICY, pol, pp);
      if (pol.permissions.length === 0) invalid(`${pp}.permissions`, 'must have at least one permission');
      if (pol.principals.length === 0) invalid(`${pp}.principals`, 'must have at least one principal');
      return {
        name,
        permissions: pol.permissions.map((p, i) => permission(p, `${pp}.permissions[${i}]`, 0)),
        principals: pol.principals.map((p, i) => principal(p, `${pp}.principals[${i}]`, 0)),
      };
    });
  return { action, policies };
}

function depth(path: string, d: number): void {
  if (d > MAX_DEPTH) invalid(path, `nested more than ${MAX_DEPTH} levels deep`);
}

function permission(p: Permission, path: string, d: number): RbacPermission {
  depth(path, d);
  if (p.any !== undefined) {
    if (!p.any) invalid(`${path}.any`, 'must be true when set');
    return { kind: 'any' };
  }
  if (p.andRules) return { kind: 'and', rules: p.andRules.rules.map((r, i) => permission(r, `${path}.and_rules.rules[${i}]`, d + 1)) };
  if (p.orRules) return { kind: 'or', rules: p.orRules.rules.map((r, i) => permission(r, `${path}.or_rules.rules[${i}]`, d + 1)) };
  if (p.notRule) return { kind: 'not', rule: permission(p.notRule, `${path}.not_rule`, d + 1) };
  if (p.header) return { kind: 'header', match: headerMatch(p.header, `${path}.header`) };
  if (p.urlPath) return { kind: 'urlPath', match: stringMatch(p.urlPath.path, `${path}.url_path.path`) };
  return invalid(path, 'a permission needs one of any, and_rules, or_rules, not_rule, header, url_path');
}

function principal(p: Principal, path: string, d: number): RbacPrincipal {
  depth(path, d);
  if (p.any !== undefined) {
    if (!p.any) invalid(`${path}.any`, 'must be true when set');
    return { kind: 'any' };
  }
  if (p.andIds) return { kind: 'and', ids: p.andIds.ids.map((r, i) => principal(r, `${path}.and_ids.ids[${i}]`, d + 1)) };
  if (p.orIds) return { kind: 'or', ids: p.orIds.ids.map((r, i) => principal(r, `${path}.or_ids.ids[${i}]`, d + 1)) };
  if (p.notId) return { kind: 'not', id: principal(p.notId, `${path}.not_id`, d + 1) };
  if (p.authenticated) {
    const name = p.authenticated.principalName;
    return name ? { kind: 'authenticated', name: stringMatch(name, `${path}.authenticated.principal_name`) } : { kind: 'authenticated' };
  }
  if (p.header) return { kind: 'header', match: headerMatch(p.header, `${path}.header`) };
  if (p.urlPath) return { kind: 'urlPath', match: stringMatch(p.urlPath.path, `${path}.url_path.path`) };
  return invalid(path, 'a principal needs one of any, and_ids, or_ids, not_id, authenticated, header, url_path');
}
