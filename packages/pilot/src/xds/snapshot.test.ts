import { describe, expect, it } from '@jest/globals';
import { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, TYPE_URL } from '@octo-mesh/proto';
import { makeResource } from './resource.js';
import { InconsistentSnapshotError, Snapshot } from './snapshot.js';
import { SnapshotCache } from './cache.js';

const cluster = (name: string, eds = name) =>
  makeResource(TYPE_URL.cluster, name, Cluster, Cluster.fromPartial({ name }), 't', { references: [{ typeUrl: TYPE_URL.endpoint, name: eds }] });
const cla = (name: string, n = 0) => makeResource(TYPE_URL.endpoint, name, ClusterLoadAssignment, ClusterLoadAssignment.fromPartial({ clusterName: name, endpoints: Array.from({ length: n }, () => ({})) }), 't');
const listener = (rds: string) => makeResource(TYPE_URL.listener, 'l', Listener, Listener.fromPartial({ name: 'l' }), 't', { references: [{ typeUrl: TYPE_URL.route, name: rds }] });
const route = (name: string) => makeResource(TYPE_URL.route, name, RouteConfiguration, RouteConfiguration.fromPartial({ name }), 't');

describe('Snapshot', () => {
  it('versions a type by content: same resources, same version; any change, a new one', () => {
    const a = Snapshot.of({ [TYPE_URL.cluster]: [cluster('a'), cluster('b')] });
    const b = Snapshot.of({ [TYPE_URL.cluster]: [cluster('b'), cluster('a')] });
    expect(a.version(TYPE_URL.cluster)).toBe(b.version(TYPE_URL.cluster));
    expect(Snapshot.of({ [TYPE_URL.cluster]: [cluster('a')] }).version(TYPE_URL.cluster)).not.toBe(a.version(TYPE_URL.cluster));
    expect(a.version(TYPE_URL.route)).toBe('');
  });

  it('keeps unchanged types as the same object when replacing others', () => {
    const a = Snapshot.of({ [TYPE_URL.cluster]: [cluster('a')], [TYPE_URL.endpoint]: [cla('a')] });
    const b = a.with({ [TYPE_URL.endpoint]: [cla('a', 2)] });
    expect(b.get(TYPE_URL.cluster)).toBe(a.get(TYPE_URL.cluster));
    expect(b.version(TYPE_URL.endpoint)).not.toBe(a.version(TYPE_URL.endpoint));
    expect(a.with({ [TYPE_URL.endpoint]: [cla('a')] }).get(TYPE_URL.endpoint)).toBe(a.get(TYPE_URL.endpoint));
  });

  // columns: what the snapshot holds, expected problems
  it.each([
    ['consistent', { [TYPE_URL.listener]: [listener('r')], [TYPE_URL.route]: [route('r')], [TYPE_URL.cluster]: [cluster('a')], [TYPE_URL.endpoint]: [cla('a')] }, []],
    ['missing EDS', { [TYPE_URL.cluster]: [cluster('a')], [TYPE_URL.endpoint]: [] }, ['Cluster a references missing ClusterLoadAssignment a']],
    ['orphan EDS', { [TYPE_URL.cluster]: [], [TYPE_URL.endpoint]: [cla('x')] }, ['ClusterLoadAssignment x is not referenced by any cluster']],
    ['missing RDS', { [TYPE_URL.listener]: [listener('r')], [TYPE_URL.route]: [route('other')] }, ['Listener l references missing RouteConfiguration r', 'RouteConfiguration other is not referenced by any listener']],
  ])('consistency: %s', (_name, types, problems) => {
    const s = Snapshot.of(types);
    expect(s.consistencyProblems()).toEqual(problems);
    if (problems.length) expect(() => new SnapshotCache().setSnapshot('n', s)).toThrow(InconsistentSnapshotError);
  });

  it('rejects duplicate names within a type', () => {
    expect(() => Snapshot.of({ [TYPE_URL.cluster]: [cluster('a'), cluster('a')] })).toThrow('duplicate');
  });

  it('the cache tells subscribers of the node, and only them, about a new snapshot', () => {
    const cache = new SnapshotCache();
    const seen: string[] = [];
    const off = cache.subscribe('n1', (s) => seen.push(`n1:${s.version(TYPE_URL.cluster)}`));
    cache.subscribe('n2', () => seen.push('n2'));
    const s = Snapshot.of({ [TYPE_URL.cluster]: [] });
    cache.setSnapshot('n1', s);
    cache.setSnapshot('n1', s); // same snapshot: no news
    off();
    cache.setSnapshot('n1', Snapshot.of({ [TYPE_URL.cluster]: [cluster('a', 'a')] }).with({ [TYPE_URL.endpoint]: [cla('a')] }));
    expect(seen).toEqual([`n1:${s.version(TYPE_URL.cluster)}`]);
  });
});
