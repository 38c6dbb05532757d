import { describe, expect, it } from '@jest/globals';
import { METHOD_ACCESS } from '@octo-mesh/contracts';
import { AggregatedDiscoveryServiceService, DispatcherService, MetaServerService, ServiceRegistryService, SidecarStatusServiceService } from '@octo-mesh/proto';
import { uriSan } from './mtls.js';

describe('control-plane mTLS', () => {
  it('has an access rule for every method the control plane serves (a new RPC is refused until placed)', () => {
    const served = [MetaServerService, ServiceRegistryService, DispatcherService, SidecarStatusServiceService, AggregatedDiscoveryServiceService].flatMap((s) => Object.values(s).map((m) => m.path));
    expect(served.length).toBeGreaterThan(15);
    expect(served.filter((p) => !METHOD_ACCESS[p])).toEqual([]);
    expect(Object.keys(METHOD_ACCESS).filter((p) => !served.includes(p))).toEqual([]);
  });

  it.each([
    ['URI:spiffe://cluster.local/ns/a/sa/b', 'spiffe://cluster.local/ns/a/sa/b'],
    ['DNS:octo-ca, URI:spiffe://cluster.local/ns/octo-system/sa/octo-ca, IP Address:127.0.0.1', 'spiffe://cluster.local/ns/octo-system/sa/octo-ca'],
    ['DNS:example.com', undefined],
    [undefined, undefined],
  ])('reads the URI SAN of %s', (subjectaltname, want) => {
    expect(uriSan(subjectaltname === undefined ? undefined : { subjectaltname })).toBe(want);
  });
});
