import { describe, expect, it } from '@jest/globals';
import { Cluster, ClusterLoadAssignment, DeltaDiscoveryResponse, DiscoveryResponse, Listener, TYPE_URL, packAny } from '@octo-mesh/proto';
import { parseDeltaResponse, parseSotwResponse } from './xds-wire.js';

describe('xds-wire', () => {
  it('reads a SotW response: version, type, nonce and resource names, resources left encoded', () => {
    const res = DiscoveryResponse.fromPartial({
      versionInfo: 'v7',
      typeUrl: TYPE_URL.cluster,
      nonce: 'n3',
      resources: [packAny(TYPE_URL.cluster, Cluster.fromPartial({ name: 'outbound|8080||catalog.shop.svc', connectTimeout: { seconds: 1 } })), packAny(TYPE_URL.cluster, Cluster.fromPartial({ name: 'inbound|9000||local' }))],
    });
    const bytes = DiscoveryResponse.encode(res).finish();
    expect(parseSotwResponse(bytes)).toEqual({ versionInfo: 'v7', typeUrl: TYPE_URL.cluster, nonce: 'n3', names: ['outbound|8080||catalog.shop.svc', 'inbound|9000||local'], removed: [], bytes: bytes.length });
  });

  it('reads a delta response: added names and removed ones', () => {
    const res = DeltaDiscoveryResponse.fromPartial({
      systemVersionInfo: 's1',
      typeUrl: TYPE_URL.endpoint,
      nonce: 'd1',
      resources: [{ name: 'outbound|8080||catalog.shop.svc', version: 'a', resource: packAny(TYPE_URL.endpoint, ClusterLoadAssignment.fromPartial({ clusterName: 'outbound|8080||catalog.shop.svc' })) }],
      removedResources: ['outbound|8080||old.shop.svc'],
    });
    const out = parseDeltaResponse(DeltaDiscoveryResponse.encode(res).finish());
    expect(out).toMatchObject({ versionInfo: 's1', typeUrl: TYPE_URL.endpoint, nonce: 'd1', names: ['outbound|8080||catalog.shop.svc'], removed: ['outbound|8080||old.shop.svc'] });
  });

  it('names a listener by its name field', () => {
    const bytes = DiscoveryResponse.encode(DiscoveryResponse.fromPartial({ typeUrl: TYPE_URL.listener, resources: [packAny(TYPE_URL.listener, Listener.fromPartial({ name: 'outbound' }))] })).finish();
    expect(parseSotwResponse(bytes).names).toEqual(['outbound']);
  });
});
