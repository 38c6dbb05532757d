import { describe, expect, it } from '@jest/globals';
import { Cluster, DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Node, RouteConfiguration, TYPE_URL, VirtualHost } from '@octo-mesh/proto';
import { makeResource } from '../xds/resource.js';
import { Snapshot } from '../xds/snapshot.js';
import { NODE_FIELD, requestDecoder } from './ads.js';
import { deltaResponse, lengthDelimited, sotwResponse, withoutField } from './encode.js';

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

describe('withoutField: a request without the node it repeats', () => {
  const node = Node.fromPartial({ id: 'a.demo', cluster: 'demo', metadata: { namespace: 'demo', dependencies: ['catalog', 'reviews'], labels: { app: 'a' } } as never });
  const bytes = (r: Partial<DiscoveryRequest>) => Buffer.from(DiscoveryRequest.encode(DiscoveryRequest.fromPartial(r)).finish());
  const full = { node, typeUrl: TYPE_URL.endpoint, versionInfo: 'v1', responseNonce: '3', resourceNames: ['x', 'y'], errorDetail: { code: 3, message: 'bad', details: [] } };
  const { node: _, ...rest } = full;

  // columns: name, bytes, what they decode to without field 1
  it.each<[string, Buffer, Partial<DiscoveryRequest>]>([
    ['node first', bytes(full), rest],
    ['node between other fields', Buffer.concat([bytes({ versionInfo: 'v1' }), bytes({ node }), bytes({ typeUrl: TYPE_URL.endpoint, resourceNames: ['x'] })]), { versionInfo: 'v1', typeUrl: TYPE_URL.endpoint, resourceNames: ['x'] }],
    ['node twice (merged by a decoder)', Buffer.concat([bytes({ node }), bytes({ typeUrl: 'T' }), bytes({ node })]), { typeUrl: 'T' }],
    ['no node', bytes(rest), rest],
  ])('%s', (_name, b, expected) => {
    expect(DiscoveryRequest.decode(withoutField(b, NODE_FIELD.sotw))).toEqual(DiscoveryRequest.fromPartial(expected));
  });

  it('returns bytes without the field, or that cannot be walked, as they are', () => {
    const b = bytes(rest);
    expect(withoutField(b, NODE_FIELD.sotw)).toBe(b);
    const truncated = bytes(full).subarray(0, 10);
    expect(withoutField(truncated, NODE_FIELD.sotw)).toBe(truncated);
    const group = Buffer.from([0x13, 0x14]); // field 2, start/end group
    expect(withoutField(group, NODE_FIELD.sotw)).toBe(group);
  });

  it("a stream's decoder reads the node until a request names one, then skips it (SotW and delta)", () => {
    const sotw = requestDecoder((x) => DiscoveryRequest.decode(x), NODE_FIELD.sotw);
    // columns: request, node id decoded
    const steps: [Partial<DiscoveryRequest>, string | undefined][] = [
      [{ typeUrl: 'T' }, undefined],
      [{ node: Node.fromPartial({ cluster: 'no id' }), typeUrl: 'T' }, ''],
      [{ node, typeUrl: TYPE_URL.cluster }, 'a.demo'],
      [{ node, typeUrl: TYPE_URL.listener }, undefined],
      [{ node: Node.fromPartial({ id: 'other' }), typeUrl: TYPE_URL.endpoint }, undefined],
    ];
    expect(steps.map(([r]) => sotw(bytes(r)).node?.id)).toEqual(steps.map(([, id]) => id));
    const delta = requestDecoder((x) => DeltaDiscoveryRequest.decode(x), NODE_FIELD.delta);
    const d = (r: Partial<DeltaDiscoveryRequest>) => Buffer.from(DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial(r)).finish());
    expect(delta(d({ node, typeUrl: 'T' })).node?.id).toBe('a.demo');
    expect(delta(d({ node, typeUrl: 'T', resourceNamesSubscribe: ['x'] }))).toEqual(DeltaDiscoveryRequest.fromPartial({ typeUrl: 'T', resourceNamesSubscribe: ['x'] }));
  });
});
