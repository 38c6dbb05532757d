import { describe, expect, it } from '@jest/globals';
import {
  CHECKER_ADMIN_ANNOTATION,
  CHECKER_LEASE_LABEL,
  checkerChanges,
  checkerFromLease,
  checkerLeaseName,
  heartbeatCheckerLease,
  isCheckerLive,
  liveCheckers,
  releasedCheckerLease,
} from './checker-lease.js';
import { leaseName, type LeaseObject } from './lease-assign.js';

/** A checker Lease as the API server returns it: held by `id`, renewed at `renew`, duration `seconds`. */
const lease = (id: string | undefined, renew: number, seconds = 3, extra: { acquire?: number; rv?: string; name?: string } = {}): LeaseObject => ({
  metadata: { name: extra.name ?? checkerLeaseName(id ?? 'gone'), namespace: 'mesh', resourceVersion: extra.rv ?? '5', labels: { [CHECKER_LEASE_LABEL]: 'true' }, annotations: { [CHECKER_ADMIN_ANNOTATION]: `${id}:15014` } },
  spec: { ...(id ? { holderIdentity: id } : {}), leaseDurationSeconds: seconds, renewTime: new Date(renew), acquireTime: new Date(extra.acquire ?? renew), leaseTransitions: 2 },
});

describe('checker Leases', () => {
  it.each([
    // id, Lease name
    ['c1', 'checker-c1'],
    ['health-7c9d-1', 'checker-health-7c9d-1'],
  ])('names the Lease of %s %s', (id, name) => expect(checkerLeaseName(id)).toBe(name));

  it('gives ids that are not DNS labels distinct valid names, never a pilot Lease name', () => {
    const ids = ['Checker_A', 'checker-a', 'checker.a', '', 'x'.repeat(300), 'host.example-1234'];
    const names = ids.map(checkerLeaseName);
    expect(new Set(names).size).toBe(ids.length);
    for (const n of names) expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    for (const id of ids) expect(checkerLeaseName(id)).not.toBe(leaseName(id));
  });

  it.each([
    // what, Lease, record (undefined: no checker)
    ['held', lease('c1', 1000), { name: 'checker-c1', id: 'c1', adminAddress: 'c1:15014', renewTime: 1000, durationMs: 3000, joinedAt: 1000 }],
    ['released (no holder)', lease(undefined, 1000), undefined],
    ['no renewTime', { metadata: { name: 'checker-c1' }, spec: { holderIdentity: 'c1' } }, undefined],
    ['no name', { spec: { holderIdentity: 'c1', renewTime: new Date(1000) } }, undefined],
    ['no acquireTime: joined at its renewal', { metadata: { name: 'checker-c1' }, spec: { holderIdentity: 'c1', renewTime: new Date(1000) } }, { name: 'checker-c1', id: 'c1', adminAddress: '', renewTime: 1000, durationMs: 0, joinedAt: 1000 }],
    ['an invalid renewTime', { metadata: { name: 'checker-c1' }, spec: { holderIdentity: 'c1', renewTime: new Date('not a time') } }, undefined],
  ] as [string, LeaseObject, unknown][])('reads a Lease: %s', (_what, l, record) => expect(checkerFromLease(l)).toEqual(record));

  it.each([
    // now, live (renewed at 1000 for 3 s: live through 4000 inclusive)
    [1000, true],
    [4000, true],
    [4001, false],
  ])('at %d a Lease renewed at 1000 for 3 s is live: %s', (now, live) => expect(isCheckerLive(checkerFromLease(lease('c1', 1000))!, now)).toBe(live));

  it.each([
    // what, current Lease, now, joined, acquireTime, renewTime, leaseTransitions
    ['absent: created', undefined, 5000, true, 5000, 5000, 0],
    ['live: renewed, join time kept', lease('c1', 4000, 3, { acquire: 1000 }), 5000, false, 1000, 5000, 2],
    ['live, renewTime ahead of this clock: never goes back', lease('c1', 5500, 3, { acquire: 1000 }), 5000, false, 1000, 5500, 2],
    ['lapsed: rejoins, the Lease reused', lease('c1', 1000), 4001, true, 4001, 4001, 3],
    ['released: rejoins', lease(undefined, 4000, 3, { name: 'checker-c1' }), 5000, true, 5000, 5000, 3],
    ['held by another id (a name collision): taken over as a join', lease('other', 4000, 3, { name: 'checker-c1' }), 5000, true, 5000, 5000, 3],
  ] as [string, LeaseObject | undefined, number, boolean, number, number, number][])(
    'a heartbeat on a Lease %s',
    (_what, current, now, joined, acquire, renew, transitions) => {
      const out = heartbeatCheckerLease(current, 'c1', '10.0.0.9:15014', 'mesh', 2500, now);
      expect(out.joined).toBe(joined);
      expect(out.lease.metadata).toMatchObject({ name: 'checker-c1', namespace: 'mesh', labels: { [CHECKER_LEASE_LABEL]: 'true' }, annotations: { [CHECKER_ADMIN_ANNOTATION]: '10.0.0.9:15014' } });
      expect(out.lease.metadata?.resourceVersion).toBe(current?.metadata?.resourceVersion);
      expect(out.lease.spec).toEqual({ holderIdentity: 'c1', leaseDurationSeconds: 3, acquireTime: new Date(acquire), renewTime: new Date(renew), leaseTransitions: transitions });
      expect(isCheckerLive(checkerFromLease(out.lease)!, now)).toBe(true);
    },
  );

  it('drops the admin address a heartbeat no longer gives', () => {
    const out = heartbeatCheckerLease(lease('c1', 4000), 'c1', '', 'mesh', 3000, 5000);
    expect(out.lease.metadata?.annotations).toEqual({});
    expect(checkerFromLease(out.lease)?.adminAddress).toBe('');
  });

  it.each([
    // what, current Lease, released (undefined: nothing to release)
    ['held by it: released, not live anywhere', lease('c1', 4000), true],
    ['already released', lease(undefined, 4000, 3, { name: 'checker-c1' }), false],
    ['held by another', lease('c2', 4000, 3, { name: 'checker-c1' }), false],
    ['absent', undefined, false],
  ] as [string, LeaseObject | undefined, boolean][])('a deregistration on a Lease %s', (_what, current, released) => {
    const out = releasedCheckerLease(current, 'c1');
    expect(out !== undefined).toBe(released);
    if (!out) return;
    expect(out.spec?.holderIdentity).toBeUndefined();
    expect(out.metadata?.resourceVersion).toBe(current?.metadata?.resourceVersion);
    expect(checkerFromLease(out)).toBeUndefined();
  });

  it('lists the live checkers sorted by id: lapsed and released ones left out, one entry per holder', () => {
    const leases = [
      lease('c3', 9000),
      lease('c1', 8000),
      lease('lapsed', 1000),
      lease(undefined, 9000, 3, { name: 'checker-released' }),
      lease('c2', 7000),
      lease('c2', 8500, 3, { name: 'checker-c2-copy' }),
      lease('B', 9000),
    ];
    const live = liveCheckers(leases, 10_000);
    expect(live.map((c) => c.id)).toEqual(['B', 'c1', 'c2', 'c3']);
    expect(live.find((c) => c.id === 'c2')?.name).toBe('checker-c2-copy');
    expect(liveCheckers(leases, 13_000).map((c) => c.id)).toEqual([]);
  });

  it.each([
    // before, live now, joined, left
    [[], ['a', 'b'], ['a', 'b'], []],
    [['a', 'b'], ['a', 'b'], [], []],
    [['a', 'c', 'b'], ['a', 'd'], ['d'], ['b', 'c']],
  ])('from %j to %j: joined %j, left %j', (before, live, joined, left) => expect(checkerChanges(new Set(before), live)).toEqual({ joined, left }));
});
