import { describe, expect, it } from '@jest/globals';
import { Cluster, DeltaDiscoveryResponse, DiscoveryResponse, RouteConfiguration, TYPE_URL, VirtualHost } from '@octo-mesh/proto';
import { makeResource } from '../xds/resource.js';
import { Snapshot } from '../xds/snapshot.js';
import { deltaResponse, lengthDelimited, sotwResponse } from './encode.js';

const cluster = (name: string) => makeResource(TYPE_URL.cluster, name, Cluster, Cluster.fromPartial({ name }), 'test');

describe('pre-encoded ADS responses', () => {
  const snap = Snapshot.of({ [TYPE_URL.cluster]: [cluster('a'), cluster('b'), cluster('c'.repeat(300))] });
  const ts = snap.get(TYPE_URL.cluster)!;

  it('decode to the DiscoveryResponse the generated codec would make', () => {
    const got = DiscoveryResponse.decode(sotwResponse(ts, 'n1').bytes);
    expect(got.versionInfo).toBe(ts.version);
    expect(got.typeUrl).toBe(TYPE_URL.cluster);
    expect(got.nonce).toBe('n1');
    expect(got.resources.map((r) => Cluster.decode(r.value).name)).toEqual(['a', 'b', 'c'.repeat(300)]);
    expect(got.resources.every((r) => r.typeUrl === TYPE_URL.cluster)).toBe(true);
  });

  it('hold only the named resources of a named subscription, and differ only in the nonce across streams', () => {
    const named = DiscoveryResponse.decode(sotwResponse(ts, 'x', ['b', 'missing']).bytes);
    expect(named.resources.map((r) => Cluster.decode(r.value).name)).toEqual(['b']);
    const one = sotwResponse(ts, 'n1').bytes;
    const two = sotwResponse(ts, 'n2').bytes;
    expect(one.subarray(0, one.length - 4).equals(two.subarray(0, two.length - 4))).toBe(true);
  });

  it('decode to the DeltaDiscoveryResponse the generated codec would make', () => {
    const got = DeltaDiscoveryResponse.decode(deltaResponse(TYPE_URL.cluster, 'v9', [...ts.resources.values()].slice(0, 2), ['gone', 'also-gone'], 'n7').bytes);
    expect(got).toMatchObject({ systemVersionInfo: 'v9', typeUrl: TYPE_URL.cluster, nonce: 'n7', removedResources: ['gone', 'also-gone'] });
    expect(got.resources.map((r) => [r.name, r.version, Cluster.decode(r.resource!.value).name])).toEqual([
      ['a', ts.resources.get('a')!.version, 'a'],
      ['b', ts.resources.get('b')!.version, 'b'],
    ]);
  });

  it('splices encoded virtual hosts into a RouteConfiguration byte-for-byte as the codec encodes it', () => {
    const vhs = [VirtualHost.fromPartial({ name: 'x', domains: ['x'] }), VirtualHost.fromPartial({ name: 'y', domains: ['y', 'y:80'] })];
    const spliced = Buffer.concat([lengthDelimited(1, Buffer.from('outbound')), ...vhs.map((v) => lengthDelimited(2, Buffer.from(VirtualHost.encode(v).finish())))]);
    expect(spliced.equals(Buffer.from(RouteConfiguration.encode(RouteConfiguration.fromPartial({ name: 'outbound', virtualHosts: vhs })).finish()))).toBe(true);
  });
});
