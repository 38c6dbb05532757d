import { describe, expect, it } from '@jest/globals';
import { Cluster, ClusterLoadAssignment, DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Listener, TYPE_URL, packAny } from '@octo-mesh/proto';
import { encodeDeltaAck, encodeSotwAck, parseDeltaResponse, parseSotwResponse } from './xds-wire.js';

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

  // Hand-encoded ACKs, decoded with the generated codec: each must read back as the request the
  // codec would have made (multi-byte lengths and non-ASCII included; empty names of a repeated field kept).
  const long = `outbound|8080||${'x'.repeat(200)}.shop.svc`;
  it.each([
    ['an ACK without names', { versionInfo: 'v1', typeUrl: TYPE_URL.cluster, responseNonce: '1a', resourceNames: [] }],
    ['an EDS ACK with names', { versionInfo: 'abc', typeUrl: TYPE_URL.endpoint, responseNonce: 'z', resourceNames: ['outbound|8080||common.bench.svc', long, 'ünïcode'] }],
    ['a subscription change before any response', { versionInfo: '', typeUrl: TYPE_URL.route, responseNonce: '', resourceNames: ['outbound', ''] }],
  ])('encodes a SotW request: %s', (_what, ack) => {
    expect(DiscoveryRequest.decode(encodeSotwAck(ack))).toEqual(DiscoveryRequest.fromPartial(ack));
  });

  it.each([
    ['an ACK', { typeUrl: TYPE_URL.endpoint, responseNonce: 'n9', resourceNamesSubscribe: [], resourceNamesUnsubscribe: [] }],
    ['a subscription change', { typeUrl: TYPE_URL.endpoint, responseNonce: '', resourceNamesSubscribe: ['a', long], resourceNamesUnsubscribe: ['b'] }],
  ])('encodes a delta request: %s', (_what, ack) => {
    expect(DeltaDiscoveryRequest.decode(encodeDeltaAck(ack))).toEqual(DeltaDiscoveryRequest.fromPartial(ack));
  });
});
