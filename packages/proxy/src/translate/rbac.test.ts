import { describe, expect, it } from '@jest/globals';
import { RBAC } from '@octo-mesh/proto/gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import { RBAC_Action } from '@octo-mesh/proto/gen/envoy/config/rbac/v3/rbac.js';
import { evaluateRbac, type RbacDecision, type RbacFilterModel } from '../data/rbac.js';
import { guard } from './common.js';
import { RBAC_TYPE_URL, rbacSpec } from './rbac.js';

// Partial protos as fromPartial takes them (its generic signature is checked at the call).
type Perm = Record<string, unknown>;
type Prin = Record<string, unknown>;
type Config = Record<string, unknown>;

const pack = (rbac: Config) => ({ typeUrl: RBAC_TYPE_URL, value: Buffer.from(RBAC.encode(RBAC.fromPartial(rbac as never)).finish()) });
const translate = (rbac: Config) => guard('rbac', () => rbacSpec(pack(rbac), 'typed_config'));
const filter = (action: RBAC_Action, policies: Record<string, { permissions: Perm[]; principals: Prin[] }>): RbacFilterModel => {
  const r = translate({ rules: { action, policies } });
  if (!r.ok) throw new Error(r.error);
  return r.value!;
};

const FRONTEND = 'spiffe://cluster.local/ns/demo/sa/frontend';
const BATCH = 'spiffe://cluster.local/ns/jobs/sa/batch';
const EVIL = 'spiffe://cluster.local/ns/demo-evil/sa/frontend';

const method = (m: string): Perm => ({ header: { name: ':method', stringMatch: { exact: m } } });
const path = (p: Perm): Perm => ({ urlPath: p });
const sa = (id: string): Prin => ({ authenticated: { principalName: { exact: id } } });
const ns = (n: string): Prin => ({ authenticated: { principalName: { safeRegex: { regex: `spiffe://[^/]+/ns/${n}/sa/[^/]+` } } } });

const req = (m: string, p: string, principal: string | undefined, headers: Record<string, string> = {}) => ({ method: m, path: p, authority: 'catalog', headers, principal });

describe('RBAC translation', () => {
  it('keeps the action, sorts policies by name and builds matchers', () => {
    const f = filter(RBAC_Action.DENY, {
      'b/p[rule 0]': { permissions: [{ any: true }], principals: [sa(FRONTEND)] },
      'a/p[rule 0]': { permissions: [{ orRules: { rules: [method('GET'), path({ path: { prefix: '/x' } })] } }], principals: [{ notId: { any: true } }] },
    });
    expect(f.action).toBe('DENY');
    expect(f.policies.map((p) => p.name)).toEqual(['a/p[rule 0]', 'b/p[rule 0]']);
    expect(f.policies[0]!.permissions[0]).toEqual({
      kind: 'or',
      rules: [
        { kind: 'header', match: { name: ':method', invert: false, match: { kind: 'exact', value: 'GET', ignoreCase: false } } },
        { kind: 'urlPath', match: { kind: 'prefix', value: '/x', ignoreCase: false } },
      ],
    });
    expect(f.policies[0]!.principals[0]).toEqual({ kind: 'not', id: { kind: 'any' } });
  });

  it('enforces nothing without rules (as Envoy)', () => {
    expect(translate({})).toEqual({ ok: true, value: undefined });
  });

  // config → the error, naming the field
  it.each<[string, Config, string]>([
    ['LOG action', { rules: { action: RBAC_Action.LOG } }, 'typed_config.rules.action: only ALLOW and DENY are implemented, got LOG'],
    ['a CEL condition', { rules: { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: { constExpr: { boolValue: true } } } } } }, 'typed_config.rules.policies["p"].condition: not implemented'],
    ['destination_port', { rules: { policies: { p: { permissions: [{ destinationPort: 80 }], principals: [{ any: true }] } } } }, 'typed_config.rules.policies["p"].permissions[0].destination_port: not implemented'],
    ['a nested source_ip', { rules: { policies: { p: { permissions: [{ any: true }], principals: [{ orIds: { ids: [{ sourceIp: { addressPrefix: '10.0.0.0' } }] } }] } } } }, 'principals[0].or_ids.ids[0].source_ip: not implemented'],
    ['shadow rules', { shadowRules: { action: RBAC_Action.DENY } }, 'typed_config.shadow_rules: not implemented'],
    ['no permissions', { rules: { policies: { p: { principals: [{ any: true }] } } } }, 'typed_config.rules.policies["p"].permissions: must have at least one permission'],
    ['no principals', { rules: { policies: { p: { permissions: [{ any: true }] } } } }, 'typed_config.rules.policies["p"].principals: must have at least one principal'],
    ['an empty permission', { rules: { policies: { p: { permissions: [{}], principals: [{ any: true }] } } } }, 'permissions[0]: a permission needs one of'],
    ['a bad regex', { rules: { policies: { p: { permissions: [{ any: true }], principals: [{ authenticated: { principalName: { safeRegex: { regex: '(?=x)' } } } }] } } } }, 'principals[0].authenticated.principal_name.safe_regex.regex: invalid regex'],
    ['any: false', { rules: { policies: { p: { permissions: [{ any: false }], principals: [{ any: true }] } } } }, 'permissions[0].any: must be true when set'],
  ])('refuses %s', (_name, rbac, error) => {
    const r = translate(rbac);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain(error);
  });

  it('refuses another type URL', () => {
    const r = guard('rbac', () => rbacSpec({ typeUrl: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', value: Buffer.alloc(0) }, 'typed_config'));
    expect(!r.ok && r.error).toContain('typed_config.type_url: expected type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC');
  });
});

describe('RBAC evaluation (Envoy semantics)', () => {
  const allowFrontendReads = filter(RBAC_Action.ALLOW, {
    'demo/readers[rule 0]': { permissions: [{ andRules: { rules: [method('GET'), path({ path: { prefix: '/products' } })] } }], principals: [sa(FRONTEND)] },
    'demo/readers[rule 1]': { permissions: [path({ path: { exact: '/metrics' } })], principals: [ns('jobs')] },
  });
  const denyAdmin = filter(RBAC_Action.DENY, {
    'demo/lockdown[rule 0]': { permissions: [path({ path: { prefix: '/admin' } })], principals: [{ notId: sa(FRONTEND) }] },
  });
  const allowNothing = filter(RBAC_Action.ALLOW, {});
  const allowAny = filter(RBAC_Action.ALLOW, { 'demo/open[rule 0]': { permissions: [{ any: true }], principals: [{ any: true }] } });
  const allowAuthenticated = filter(RBAC_Action.ALLOW, { 'demo/mtls[rule 0]': { permissions: [{ any: true }], principals: [{ authenticated: {} }] } });

  // filters, request, decision
  it.each<[string, RbacFilterModel[], ReturnType<typeof req>, RbacDecision]>([
    ['frontend reads products', [allowFrontendReads], req('GET', '/products/1?x=1', FRONTEND), { allowed: true, policy: 'demo/readers[rule 0]' }],
    ['frontend may not write', [allowFrontendReads], req('POST', '/products/1', FRONTEND), { allowed: false, action: 'ALLOW' }],
    ['another identity may not read', [allowFrontendReads], req('GET', '/products', EVIL), { allowed: false, action: 'ALLOW' }],
    ['any identity of jobs scrapes /metrics', [allowFrontendReads], req('GET', '/metrics', BATCH), { allowed: true, policy: 'demo/readers[rule 1]' }],
    ['the query is not part of url_path', [allowFrontendReads], req('GET', '/metrics?a=b', BATCH), { allowed: true, policy: 'demo/readers[rule 1]' }],
    ['namespace regex is a full match (demo-evil is not demo)', [filter(RBAC_Action.ALLOW, { p: { permissions: [{ any: true }], principals: [ns('demo')] } })], req('GET', '/', EVIL), { allowed: false, action: 'ALLOW' }],
    ['plaintext matches no authenticated principal', [allowFrontendReads], req('GET', '/products', undefined), { allowed: false, action: 'ALLOW' }],
    ['ALLOW without policies denies everything', [allowNothing], req('GET', '/', FRONTEND), { allowed: false, action: 'ALLOW' }],
    ['any principal admits plaintext', [allowAny], req('GET', '/', undefined), { allowed: true, policy: 'demo/open[rule 0]' }],
    ['authenticated without a name admits any verified peer', [allowAuthenticated], req('GET', '/', BATCH), { allowed: true, policy: 'demo/mtls[rule 0]' }],
    ['authenticated without a name refuses plaintext', [allowAuthenticated], req('GET', '/', undefined), { allowed: false, action: 'ALLOW' }],
    ['DENY matches another identity on /admin', [denyAdmin, allowAny], req('GET', '/admin/x', BATCH), { allowed: false, action: 'DENY', policy: 'demo/lockdown[rule 0]' }],
    ['not_id of authenticated matches plaintext (Envoy)', [denyAdmin], req('GET', '/admin', undefined), { allowed: false, action: 'DENY', policy: 'demo/lockdown[rule 0]' }],
    ['DENY spares the named identity, ALLOW then decides', [denyAdmin, allowFrontendReads], req('GET', '/admin', FRONTEND), { allowed: false, action: 'ALLOW' }],
    ['DENY not matching, no ALLOW filter: allowed', [denyAdmin], req('GET', '/products', BATCH), { allowed: true }],
    ['DENY wins over a matching ALLOW', [denyAdmin, allowAny], req('DELETE', '/admin', undefined), { allowed: false, action: 'DENY', policy: 'demo/lockdown[rule 0]' }],
    ['no filters: allowed', [], req('GET', '/', undefined), { allowed: true }],
    ['and of nothing matches, or of nothing does not', [filter(RBAC_Action.ALLOW, { a: { permissions: [{ andRules: { rules: [] } }], principals: [{ orIds: { ids: [] } }] }, b: { permissions: [{ andRules: { rules: [] } }], principals: [{ andIds: { ids: [] } }] } })], req('GET', '/', undefined), { allowed: true, policy: 'b' }],
    ['suffix path', [filter(RBAC_Action.DENY, { p: { permissions: [path({ path: { suffix: '.bak' } })], principals: [{ any: true }] } })], req('GET', '/db.bak?download=1', FRONTEND), { allowed: false, action: 'DENY', policy: 'p' }],
    ['header permission on an ordinary header', [filter(RBAC_Action.ALLOW, { p: { permissions: [{ header: { name: 'x-team', exactMatch: 'blue' } }], principals: [{ any: true }] } })], req('GET', '/', undefined, { 'x-team': 'blue' }), { allowed: true, policy: 'p' }],
  ])('%s', (_name, filters, request, want) => {
    expect(evaluateRbac(filters, request)).toEqual(want);
  });
});
