import { describe, expect, it } from '@jest/globals';
import type { AuthorizationPolicy } from '@octo-mesh/api';
import { HttpFilter } from '@octo-mesh/proto';
import { Permission, Principal } from '@octo-mesh/proto/gen/envoy/config/rbac/v3/rbac.js';
import { authorityRegex, inboundAuthorization, pathPermission, sourcePrincipal, operationPermission, translateAuthorization } from './authz.js';
import { openAnys } from './readable.js';

const policy = (name: string, spec: Record<string, unknown>, generation = 1): AuthorizationPolicy =>
  ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'demo', generation }, spec }) as AuthorizationPolicy;

/** The filters as readable Envoy JSON (typed_config opened). */
const readable = (filters: HttpFilter[]) => filters.map((f) => openAnys(HttpFilter.toJSON(f)));
const anyId = { any: true };
const regex = (re: string) => ({ authenticated: { principalName: { safeRegex: { regex: re } } } });
const NS = (ns: string) => regex(`spiffe://[^/]+/ns/${ns}/sa/[^/]+`);
const SA = (ns: string, sa: string) => regex(`spiffe://[^/]+/ns/${ns}/sa/${sa}`);

describe('AuthorizationPolicy sources → RBAC principals', () => {
  // source, principal (proto JSON)
  it.each<[string, Record<string, unknown>, unknown]>([
    ['one namespace', { namespaces: ['shop'] }, NS('shop')],
    ['namespaces OR', { namespaces: ['a', 'b'] }, { orIds: { ids: [NS('a'), NS('b')] } }],
    ['a service account, dots escaped', { serviceAccounts: ['shop/front.end'] }, SA('shop', 'front\\.end')],
    ['a principal, exact', { principals: ['spiffe://td/ns/a/sa/b'] }, { authenticated: { principalName: { exact: 'spiffe://td/ns/a/sa/b' } } }],
    ['fields AND', { namespaces: ['a'], serviceAccounts: ['a/x'] }, { andIds: { ids: [NS('a'), SA('a', 'x')] } }],
    ['notNamespaces needs an identity', { notNamespaces: ['a'] }, { andIds: { ids: [{ authenticated: {} }, { notId: NS('a') }] } }],
    ['namespace AND not a service account', { namespaces: ['a'], notServiceAccounts: ['a/admin'] }, { andIds: { ids: [NS('a'), { authenticated: {} }, { notId: SA('a', 'admin') }] } }],
  ])('%s', (_name, source, want) => {
    expect(Principal.toJSON(sourcePrincipal(source as never))).toEqual(want);
  });
});

describe('AuthorizationPolicy operations → RBAC permissions', () => {
  const path = (m: Record<string, string>) => ({ urlPath: { path: { ...m } } });
  const method = (m: string) => ({ header: { name: ':method', stringMatch: { exact: m } } });
  // pattern, permission
  it.each<[string, unknown]>([
    ['/exact', path({ exact: '/exact' })],
    ['/api/*', path({ prefix: '/api/' })],
    ['*.json', path({ suffix: '.json' })],
    ['*', { any: true }],
  ])('path %s', (pattern, want) => {
    expect(Permission.toJSON(pathPermission(pattern))).toEqual(want);
  });
  it('ANDs fields, ORs values, negates not*', () => {
    expect(Permission.toJSON(operationPermission({ paths: ['/a', '/b*'], methods: ['GET'], notMethods: ['DELETE'] }))).toEqual({
      andRules: { rules: [{ orRules: { rules: [path({ exact: '/a' }), path({ prefix: '/b' })] } }, method('GET'), { notRule: method('DELETE') }] },
    });
  });
});

describe('translateAuthorization', () => {
  it('emits nothing without policies', () => {
    expect(translateAuthorization([])).toEqual({ filters: [], verdicts: [] });
  });

  it('puts DENY before ALLOW, one RBAC policy per rule keyed <ns>/<name>[rule i], any for a missing from/to', () => {
    const t = translateAuthorization([
      policy('readers', { service: 'catalog', rules: [{ from: [{ serviceAccounts: ['demo/frontend'] }], to: [{ methods: ['GET'] }] }, { to: [{ paths: ['/healthz'] }] }] }),
      policy('lockdown', { service: 'catalog', action: 'DENY', rules: [{ from: [{ notNamespaces: ['demo'] }] }] }),
    ]);
    expect(t.verdicts).toEqual([
      { policy: 'demo/lockdown', generation: 1, action: 'DENY', accepted: true },
      { policy: 'demo/readers', generation: 1, action: 'ALLOW', accepted: true },
    ]);
    expect(readable(t.filters)).toEqual([
      {
        name: 'envoy.filters.http.rbac',
        typedConfig: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
          rules: {
            action: 'DENY',
            policies: { 'demo/lockdown[rule 0]': { permissions: [anyId], principals: [{ andIds: { ids: [{ authenticated: {} }, { notId: NS('demo') }] } }] } },
          },
        },
      },
      {
        name: 'envoy.filters.http.rbac',
        typedConfig: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
          // proto3 JSON leaves out the default action (ALLOW) and an empty map.
          rules: {
            policies: {
              'demo/readers[rule 0]': { permissions: [{ header: { name: ':method', stringMatch: { exact: 'GET' } } }], principals: [SA('demo', 'frontend')] },
              'demo/readers[rule 1]': { permissions: [{ urlPath: { path: { exact: '/healthz' } } }], principals: [anyId] },
            },
          },
        },
      },
    ]);
  });

  it('keeps an ALLOW filter with no policies for an ALLOW policy without rules (deny all)', () => {
    const t = translateAuthorization([policy('nothing', { service: 'payments' })]);
    expect(readable(t.filters)).toEqual([{ name: 'envoy.filters.http.rbac', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', rules: {} } }]);
  });

  it('emits a DENY filter only for DENY policies (everything else allowed)', () => {
    const t = translateAuthorization([policy('d', { service: 'a', action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] })]);
    expect(readable(t.filters).map((f) => (f as { typedConfig: { rules: { action?: string } } }).typedConfig.rules.action ?? 'ALLOW')).toEqual(['DENY']);
  });

  // spec, verdict reason, what is enforced
  it.each<[string, Record<string, unknown>, string, string[]]>([
    ['a bad ALLOW allows nothing', { service: 'a', rules: [{ from: [{ serviceAccounts: ['frontend'] }] }] }, 'spec.rules[0].from[0].serviceAccounts[0]: must be <namespace>/<service account>', ['ALLOW:']],
    ['a bad DENY denies everything', { service: 'a', action: 'DENY', rules: [{ to: [{ methods: ['FETCH'] }] }] }, 'spec.rules[0].to[0].methods[0]: Invalid option', ['DENY:demo/bad[rule 0]']],
    ['an unknown action denies everything', { service: 'a', action: 'AUDIT' }, 'spec.action: Invalid option', ['DENY:demo/bad[rule 0]']],
  ])('fails closed on an invalid policy: %s', (_name, spec, reason, enforced) => {
    const t = translateAuthorization([policy('bad', spec, 4)]);
    expect(t.verdicts).toEqual([expect.objectContaining({ policy: 'demo/bad', generation: 4, accepted: false, reason: expect.stringContaining(reason) })]);
    const summary = readable(t.filters).map((f) => {
      const rules = (f as { typedConfig: { rules: { action?: string; policies?: Record<string, unknown> } } }).typedConfig.rules;
      return `${rules.action ?? 'ALLOW'}:${Object.keys(rules.policies ?? {}).join(',')}`;
    });
    expect(summary).toEqual(enforced);
  });
});

describe('inboundAuthorization: the services one workload backs', () => {
  /** Each filter as `ACTION: policy → permissions (JSON)`, short enough to read in a table. */
  const summary = (filters: HttpFilter[]) =>
    readable(filters).map((f) => {
      const rules = (f as { typedConfig: { rules: { action?: string; policies?: Record<string, { permissions: unknown[] }> } } }).typedConfig.rules;
      return { action: rules.action ?? 'ALLOW', policies: Object.fromEntries(Object.entries(rules.policies ?? {}).map(([k, v]) => [k, v.permissions])) };
    });
  const authority = (key: string) => ({ header: { name: ':authority', stringMatch: { safeRegex: { regex: authorityRegex(key) } } } });
  const none = (...keys: string[]) => ({ notRule: { orRules: { rules: keys.map(authority) } } });
  const get = { header: { name: ':method', stringMatch: { exact: 'GET' } } };
  const deny = policy('no-batch', { service: 'catalog-api', action: 'DENY', rules: [{ from: [{ serviceAccounts: ['demo/batch'] }] }] });
  const allowApi = policy('api-readers', { service: 'catalog-api', rules: [{ to: [{ methods: ['GET'] }] }] });
  const allowCatalog = policy('catalog-callers', { service: 'catalog', rules: [{ from: [{ namespaces: ['demo'] }] }] });
  const svc = (key: string, ...ps: AuthorizationPolicy[]) => ({ key, authz: ps.length ? translateAuthorization(ps) : undefined });

  it('keeps one service\'s filters as they are', () => {
    const one = translateAuthorization([allowCatalog]);
    expect(inboundAuthorization([{ key: 'demo/catalog', authz: one }])).toBe(one.filters);
    expect(inboundAuthorization([svc('demo/catalog'), svc('demo/catalog-api')])).toEqual([]);
  });

  // services (with their policies), filters as summary
  it.each<[string, ReturnType<typeof svc>[], unknown]>([
    [
      'a DENY of a service named unlike the workload applies to every request, whatever the Host',
      [svc('demo/catalog'), svc('demo/catalog-api', deny)],
      [{ action: 'DENY', policies: { 'demo/no-batch[rule 0]': [{ any: true }] } }],
    ],
    [
      'the one service with ALLOW policies decides its Host and unknown Hosts; the other admits its own',
      [svc('demo/catalog'), svc('demo/catalog-api', allowApi)],
      [
        {
          action: 'ALLOW',
          policies: {
            'demo/api-readers[rule 0]': [{ andRules: { rules: [{ orRules: { rules: [authority('demo/catalog-api'), none('demo/catalog', 'demo/catalog-api')] } }, get] } }],
            'demo/catalog[no ALLOW policy]': [authority('demo/catalog')],
          },
        },
      ],
    ],
    [
      'two services with ALLOW policies: each by its Host, an unknown Host matches neither (denied)',
      [svc('demo/catalog', allowCatalog), svc('demo/catalog-api', allowApi, deny)],
      [
        { action: 'DENY', policies: { 'demo/no-batch[rule 0]': [{ any: true }] } },
        {
          action: 'ALLOW',
          policies: {
            'demo/api-readers[rule 0]': [{ andRules: { rules: [authority('demo/catalog-api'), get] } }],
            'demo/catalog-callers[rule 0]': [{ andRules: { rules: [authority('demo/catalog'), { any: true }] } }],
          },
        },
      ],
    ],
    [
      'an invalid DENY of any backed service denies everything on the workload',
      [svc('demo/catalog', allowCatalog), svc('demo/catalog-api', policy('bad', { service: 'catalog-api', action: 'DENY', rules: [{ to: [{ methods: ['FETCH'] }] }] }))],
      [
        { action: 'DENY', policies: { 'demo/bad[rule 0]': [{ any: true }] } },
        { action: 'ALLOW', policies: { 'demo/catalog-callers[rule 0]': [{ andRules: { rules: [{ orRules: { rules: [authority('demo/catalog'), none('demo/catalog', 'demo/catalog-api')] } }, { any: true }] } }], 'demo/catalog-api[no ALLOW policy]': [authority('demo/catalog-api')] } },
      ],
    ],
  ])('%s', (_name, services, want) => {
    expect(summary(inboundAuthorization(services))).toEqual(want);
  });

  // authority, names service (true/false)
  it.each<[string, boolean]>([
    ['catalog-api', true],
    ['catalog-api:8080', true],
    ['catalog-api.demo', true],
    ['catalog-api.demo.svc:80', true],
    ['catalog-api.demo.svc.cluster.local', true],
    ['catalog-api.other', false],
    ['catalog-apix', false],
    ['catalog-api.demo.svc.cluster.local.evil', false],
    ['10.0.0.7:15006', false],
  ])('authority %s names demo/catalog-api: %s', (host, want) => {
    expect(new RegExp(`^(?:${authorityRegex('demo/catalog-api')})$`).test(host)).toBe(want);
  });
});
