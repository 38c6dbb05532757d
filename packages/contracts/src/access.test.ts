import { describe, expect, it } from '@jest/globals';
import { decideAccess, roleOf, spiffeIdOrError } from './access.js';
import { parseSpiffeId } from './spiffe.js';

const opts = { trustDomain: 'cluster.local', controlNamespace: 'octo-system' };
const id = (ns: string, sa: string, td = 'cluster.local') => `spiffe://${td}/ns/${ns}/sa/${sa}`;

describe('control-plane access', () => {
  it.each([
    ['spiffe://cluster.local/ns/default/sa/reviews', { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'reviews' }],
    ['https://cluster.local/ns/a/sa/b', /"https:\/\/cluster.local\/ns\/a\/sa\/b": scheme: /],
    ['spiffe://cluster.local/ns/a/sa', /path: /],
    ['spiffe://cluster.local/ns/A_B/sa/b', /namespace: "A_B" is not valid/],
  ])('reads %s without throwing', (uri, want) => {
    const got = spiffeIdOrError(uri);
    if (want instanceof RegExp) expect((got as { error: string }).error).toMatch(want);
    else expect(got).toEqual(want);
  });

  it.each([
    [id('octo-system', 'octo-pilot'), 'pilot'],
    [id('octo-system', 'octo-admin'), 'admin'],
    [id('octo-system', 'octo-nobody'), undefined],
    [id('default', 'octo-pilot'), undefined], // a workload naming its account octo-pilot in its own namespace holds no role
    [id('octo-system', 'pilot'), undefined],
  ])('%s holds role %s', (uri, role) => {
    expect(roleOf(parseSpiffeId(uri) as never, 'octo-system')).toBe(role);
  });

  it.each([
    // [method, caller, allowed?, code or role]
    ['/octo.mesh.v1.MetaServer/RegisterPilot', id('octo-system', 'octo-pilot'), true, 'pilot'],
    ['/octo.mesh.v1.MetaServer/RegisterPilot', id('default', 'reviews'), false, 'permission-denied'],
    ['/octo.mesh.v1.MetaServer/RegisterPilot', id('default', 'octo-pilot'), false, 'permission-denied'],
    ['/octo.mesh.v1.MetaServer/RegisterPilot', id('octo-system', 'octo-pilot', 'other.domain'), false, 'unauthenticated'],
    ['/octo.mesh.v1.MetaServer/RegisterPilot', undefined, false, 'unauthenticated'],
    ['/octo.mesh.v1.MetaServer/RegisterPilot', 'spiffe://cluster.local/anything', false, 'unauthenticated'],
    ['/octo.mesh.v1.MetaServer/Locate', id('default', 'reviews'), true, undefined],
    ['/octo.mesh.v1.Dispatcher/Apply', id('octo-system', 'octo-operator'), true, 'operator'],
    ['/octo.mesh.v1.Dispatcher/Apply', id('octo-system', 'octo-pilot'), false, 'permission-denied'],
    ['/octo.mesh.v1.Dispatcher/Apply', id('default', 'reviews'), false, 'permission-denied'],
    ['/octo.mesh.v1.Dispatcher/Watch', id('octo-system', 'octo-pilot'), true, 'pilot'],
    ['/octo.mesh.v1.Dispatcher/Watch', id('default', 'reviews'), false, 'permission-denied'],
    ['/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', id('default', 'reviews'), true, undefined],
    ['/octo.mesh.v1.Dispatcher/Unknown', id('octo-system', 'octo-admin'), false, 'permission-denied'],
  ] as const)('%s by %s → allowed %s (%s)', (method, uri, allowed, detail) => {
    const d = decideAccess(method, uri, opts);
    expect(d.allowed).toBe(allowed);
    if (d.allowed) expect(d.role).toBe(detail);
    else {
      expect(d.code).toBe(detail);
      expect(d.reason).toContain(method);
    }
  });
});
