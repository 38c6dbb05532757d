import { describe, expect, it } from '@jest/globals';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import { cla, edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';
import { ConfigStore } from './config-store.js';

// A response whose resources are byte for byte those in force is not rebuilt (issue 18: a pilot may
// send a reconnecting proxy what it has under a version the proxy did not know).
const cluster = (name: string, connectMs = 1000) => pack(TYPE_URL.cluster, edsCluster(name, { connect_timeout: `${connectMs / 1000}s` }));
const endpoints = (name: string, port: number) => pack(TYPE_URL.endpoint, cla(name, [port]));
const listener = (name: string) => pack(TYPE_URL.listener, httpListener(name, { rds: 'routes' }));
const routes = (cluster: string) => pack(TYPE_URL.route, routeConfig('routes', [{ name: 'all', match: { prefix: '/' }, route: { cluster } }]));
const anys = (...rs: { any: Any }[]) => rs.map((r) => r.any);
/** The same bytes in a new buffer: equal content, not the same object. */
const copy = (a: Any): Any => ({ typeUrl: a.typeUrl, value: Buffer.from(a.value) });

/** A store holding clusters a and b, their endpoints, a listener and its routes (all at version "1"). */
function held(): ConfigStore {
  const s = new ConfigStore();
  for (const [t, rs] of [
    [TYPE_URL.cluster, anys(cluster('a'), cluster('b'))],
    [TYPE_URL.endpoint, anys(endpoints('a', 8001), endpoints('b', 8002))],
    [TYPE_URL.listener, anys(listener('out'))],
    [TYPE_URL.route, anys(routes('a'))],
  ] as const) {
    const r = s.applySotw(t, '1', rs);
    if (!r.ok || r.unchanged) throw new Error(`setup: ${t} not applied`);
  }
  return s;
}

describe('ConfigStore: a response with nothing new in it', () => {
  // columns: what the response is, its type URL, its resources, whether it is unchanged
  it.each([
    ['the same clusters, in new buffers and another order', TYPE_URL.cluster, () => anys(cluster('b'), cluster('a')).map(copy), true],
    ['the same listener', TYPE_URL.listener, () => anys(listener('out')).map(copy), true],
    ['one of the two load assignments, the same (EDS updates the names it carries)', TYPE_URL.endpoint, () => anys(endpoints('a', 8001)), true],
    ['the same routes', TYPE_URL.route, () => anys(routes('a')), true],
    ['one cluster fewer (a CDS response is the whole set)', TYPE_URL.cluster, () => anys(cluster('a')), false],
    ['one cluster more', TYPE_URL.cluster, () => anys(cluster('a'), cluster('b'), cluster('c')), false],
    ['a cluster with one field changed', TYPE_URL.cluster, () => anys(cluster('a', 2000), cluster('b')), false],
    ['a load assignment with another port', TYPE_URL.endpoint, () => anys(endpoints('a', 9001)), false],
    ['routes to another cluster', TYPE_URL.route, () => anys(routes('b')), false],
    ['the same cluster twice (refused, as ever)', TYPE_URL.cluster, () => anys(cluster('a'), cluster('a')), false],
  ])('%s', (_what, typeUrl, resources, unchanged) => {
    const s = held();
    const before = s.snapshot;
    const r = s.applySotw(typeUrl, '2', resources());
    expect(r.ok && r.unchanged === true).toBe(unchanged);
    if (unchanged) {
      // Nothing translated or rebuilt: the very maps and models in force stay; only the version moved.
      expect(s.snapshot.clusters).toBe(before.clusters);
      expect(s.snapshot.listeners).toBe(before.listeners);
      expect(s.snapshot.routeTables).toBe(before.routeTables);
      expect(s.snapshot.endpoints).toBe(before.endpoints);
      expect(s.version(typeUrl)).toBe('2');
      expect(s.snapshot.versions[typeUrl]).toBe('2');
    } else if (r.ok) {
      expect(s.snapshot.clusters).not.toBe(before.clusters);
    }
  });

  it('reports each resource kept at the version it was sent with again, and a checkpoint taken before still restores the old one', () => {
    const s = held();
    const undo = s.checkpoint();
    expect(s.applySotw(TYPE_URL.endpoint, '2', anys(endpoints('a', 8001)))).toMatchObject({ ok: true, unchanged: true });
    expect(s.resourceVersions(TYPE_URL.endpoint)).toEqual({ a: '2', b: '1' });
    undo();
    expect(s.resourceVersions(TYPE_URL.endpoint)).toEqual({ a: '1', b: '1' });
    expect(s.version(TYPE_URL.endpoint)).toBe('1');
  });

  // columns: what the delta response is, its resources (name, version, bytes), removed names, whether it is unchanged
  it.each([
    ['the same two clusters under new versions', () => [cluster('a'), cluster('b')].map((c, i) => ({ name: c.name, version: `v${i + 2}`, any: copy(c.any) })), [], true],
    ['one of them, the same', () => [{ name: 'a', version: 'v9', any: cluster('a').any }], [], true],
    ['removing a name not held', () => [], ['zz'], true],
    ['removing one held', () => [], ['b'], false],
    ['a cluster with one field changed', () => [{ name: 'a', version: 'v9', any: cluster('a', 2000).any }], [], false],
    ['a new cluster', () => [{ name: 'c', version: 'v9', any: cluster('c').any }], [], false],
    ["a's bytes under b's name (refused, as ever)", () => [{ name: 'b', version: 'v9', any: cluster('a').any }], [], false],
  ])('delta: %s', (_what, resources, removed, unchanged) => {
    const s = new ConfigStore();
    const first = s.applyDelta(TYPE_URL.cluster, 's1', [cluster('a'), cluster('b')].map((c) => ({ name: c.name, version: 'v1', any: c.any })), []);
    expect(first).toMatchObject({ ok: true });
    const before = s.snapshot;
    const r = s.applyDelta(TYPE_URL.cluster, 's2', resources(), removed);
    expect(r.ok && r.unchanged === true).toBe(unchanged);
    if (unchanged) {
      expect(s.snapshot.clusters).toBe(before.clusters);
      for (const x of resources()) expect(s.resourceVersions(TYPE_URL.cluster)[x.name]).toBe(x.version);
    }
  });
});
