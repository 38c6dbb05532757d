import { describe, expect, it } from '@jest/globals';
import { decideAccess, decideAdminAccess, meshCaSettingsError, roleOf, spiffeIdOrError } from './access.js';
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

  // The chart names its service accounts <release>-<role>: the prefix is configuration.
  it.each([
    [id('mesh', 'prod-pilot'), 'prod-', 'pilot'],
    [id('mesh', 'prod-meta-server'), 'prod-', 'meta-server'],
    [id('mesh', 'octo-pilot'), 'prod-', undefined], // the default prefix holds nothing once another is set
    [id('mesh', 'prod-pilot'), 'octo-', undefined],
  ])('%s with prefix %s holds role %s', (uri, prefix, role) => {
    expect(roleOf(parseSpiffeId(uri) as never, 'mesh', prefix)).toBe(role);
  });

  it('names the prefixed account a method needs when it refuses', () => {
    const d = decideAccess('/octo.mesh.v1.MetaServer/RegisterPilot', id('mesh', 'prod-dispatcher'), { trustDomain: 'cluster.local', controlNamespace: 'mesh', rolePrefix: 'prod-' });
    expect(d).toMatchObject({ allowed: false, code: 'permission-denied' });
    expect((d as { reason: string }).reason).toContain('ns/mesh/sa/prod-pilot');
    expect(decideAccess('/octo.mesh.v1.MetaServer/RegisterPilot', id('mesh', 'prod-pilot'), { trustDomain: 'cluster.local', controlNamespace: 'mesh', rolePrefix: 'prod-' })).toMatchObject({ allowed: true, role: 'pilot' });
  });

  it.each([
    [{}, undefined],
    [{ tlsDir: '/t' }, undefined],
    [{ caUrl: 'https://ca:15016', tlsDir: '/t', caTrustBundleFile: '/b', caTokenFile: '/k' }, undefined],
    [{ caUrl: 'https://ca:15016', caTrustBundleFile: '/b', caTokenFile: '/k' }, 'tlsDir'],
    [{ caUrl: 'https://ca:15016', tlsDir: '/t', caTokenFile: '/k' }, 'caTrustBundleFile'],
    [{ caUrl: 'https://ca:15016', tlsDir: '/t', caTrustBundleFile: '/b' }, 'caTokenFile'],
    [{ tlsDir: '/t', caTokenFile: '/k' }, 'caUrl'],
    [{ adminMtls: true }, 'adminMtls'],
    [{ adminMtls: true, tlsDir: '/t' }, undefined],
    [{ adminMtls: false }, undefined],
  ])('CA settings %j → error on %s', (c, field) => {
    expect(meshCaSettingsError(c)?.field).toBe(field);
  });

  // Debug reads over an mTLS admin port: administrators and the operator's fleet poller only.
  it.each([
    ['/debug/syncz', id('octo-system', 'octo-admin'), true, 'admin'],
    ['/debug/rollouts', id('octo-system', 'octo-operator'), true, 'operator'],
    ['/debug/syncz', id('octo-system', 'octo-pilot'), false, 'permission-denied'],
    ['/debug/syncz', id('demo', 'octo-admin'), false, 'permission-denied'], // the role's name in another namespace is no role
    ['/debug/syncz', id('default', 'reviews'), false, 'permission-denied'],
    ['/debug/syncz', id('octo-system', 'octo-admin', 'other.domain'), false, 'unauthenticated'],
    ['/debug/syncz', undefined, false, 'unauthenticated'],
  ])('admin route %s for %s: allowed %s (%s)', (path, uri, allowed, codeOrRole) => {
    const d = decideAdminAccess(path, uri, opts);
    expect(d.allowed).toBe(allowed);
    if (d.allowed) expect(d.role).toBe(codeOrRole);
    else {
      expect(d.code).toBe(codeOrRole);
      expect(d.reason).toContain(`GET ${path}`);
    }
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
