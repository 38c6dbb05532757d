import { describe, expect, it } from '@jest/globals';
import {
  ANNOTATIONS,
  LeaseAssignment,
  isLive,
  latestRenewal,
  leaseName,
  recordFromLease,
  registeredLease,
  releasedLease,
  renewedLease,
  suspectedLease,
  type LeaseObject,
  type PilotLeaseRecord,
} from './lease-assign.js';

const WORKLOADS = Array.from({ length: 3000 }, (_, i) => `demo/app-${i}`);
const RAMP = 60_000;

/** A pilot record: joined at `joinedAt`, 3 s lease, renewed at `renewTime` (default: late enough to be live in every test). */
const pilot = (id: string, joinedAt = 0, extra: Partial<PilotLeaseRecord> = {}): PilotLeaseRecord => ({
  name: leaseName(id),
  id,
  xdsAddress: `${id}:15010`,
  adminAddress: '',
  zone: '',
  renewTime: 1_000_000,
  durationMs: 3000,
  joinedAt,
  workloads: {},
  ...extra,
});

const assignAll = (a: LeaseAssignment) => new Map(WORKLOADS.map((w) => [w, a.pilotFor(w)!.id]));
const at = (records: PilotLeaseRecord[], now: number) => new LeaseAssignment(records, now, { rampMs: RAMP, vnodes: 256 });

describe('pilot Leases', () => {
  it.each([
    ['pilot-0', 'pilot-pilot-0'],
    ['p1', 'pilot-p1'],
  ])('names the Lease of %s %s', (id, name) => expect(leaseName(id)).toBe(name));

  it('gives ids that are not DNS labels distinct valid names', () => {
    const names = ['Pilot_A', 'pilot-a', 'pilot.a', '', 'x'.repeat(300)].map(leaseName);
    expect(new Set(names).size).toBe(5);
    for (const n of names) expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  });

  it('round-trips a registration through the Lease, and keeps the join time while the pilot lives', () => {
    const reg = { id: 'p1', xdsAddress: '10.0.0.1:15010', adminAddress: '10.0.0.1:15014', zone: 'z1' };
    const created = registeredLease(undefined, reg, 'mesh', 2500, 1000);
    expect(created.spec).toMatchObject({ holderIdentity: 'p1', leaseDurationSeconds: 3, leaseTransitions: 0 });
    expect(created.metadata?.labels).toEqual({ 'mesh.octo.io/pilot-lease': 'true' });
    expect(recordFromLease(created)).toEqual({ name: 'pilot-p1', id: 'p1', xdsAddress: '10.0.0.1:15010', adminAddress: '10.0.0.1:15014', zone: 'z1', renewTime: 1000, durationMs: 3000, joinedAt: 1000, workloads: {} });
    const again = registeredLease({ ...created, metadata: { ...created.metadata, resourceVersion: '7' } }, reg, 'mesh', 2500, 3000);
    expect(again.metadata?.resourceVersion).toBe('7');
    expect(recordFromLease(again)).toMatchObject({ joinedAt: 1000, renewTime: 3000 });
    expect(again.spec?.leaseTransitions).toBe(0);
    const rejoined = registeredLease(again, reg, 'mesh', 2500, 3000 + 3001);
    expect(recordFromLease(rejoined)).toMatchObject({ joinedAt: 6001, renewTime: 6001 });
    expect(rejoined.spec?.leaseTransitions).toBe(1);
  });

  it('renews a live Lease with the reported workloads; a lapsed, foreign or missing one means register again', () => {
    const lease = registeredLease(undefined, { id: 'p1', xdsAddress: 'a:1', adminAddress: '', zone: '' }, 'mesh', 3000, 0);
    const sidecars = [
      { nodeId: 'c-0', namespace: 'demo', workload: 'catalog' },
      { nodeId: 'c-1', namespace: 'demo', workload: 'catalog' },
      { nodeId: 'f-0', namespace: '', workload: 'frontend' },
    ];
    const renewed = renewedLease(suspectedLease(lease, 500), 'p1', sidecars, 3000, 1000)!;
    expect(recordFromLease(renewed)).toMatchObject({ renewTime: 1000, joinedAt: 0, workloads: { 'default/frontend': 1, 'demo/catalog': 2 } });
    expect(renewed.metadata?.annotations?.[ANNOTATIONS.unreachableAt]).toBeUndefined();
    expect(renewedLease(lease, 'p2', sidecars, 3000, 1000)).toBeUndefined();
    expect(renewedLease(lease, 'p1', sidecars, 3000, 3001)).toBeUndefined();
    expect(renewedLease(undefined, 'p1', sidecars, 3000, 1000)).toBeUndefined();
  });

  it('reads a released Lease, or one that is not a pilot Lease, as no pilot', () => {
    const lease = registeredLease(undefined, { id: 'p1', xdsAddress: 'a:1', adminAddress: '', zone: '' }, 'mesh', 3000, 0);
    expect(releasedLease(lease, 'p2')).toBeUndefined();
    expect(recordFromLease(releasedLease(lease, 'p1')!)).toBeUndefined();
    expect(recordFromLease({ metadata: { name: 'x' }, spec: { holderIdentity: 'kube-scheduler', renewTime: new Date(0) } } satisfies LeaseObject)).toBeUndefined();
    const bad = { ...lease, metadata: { ...lease.metadata, annotations: { ...lease.metadata?.annotations, [ANNOTATIONS.workloads]: 'nope' } } };
    expect(recordFromLease(bad)?.workloads).toEqual({});
  });

  it('counts a pilot dead once renewTime + duration has passed', () => {
    expect([2999, 3000, 3001].map((now) => isLive(pilot('p1', 0, { renewTime: 0 }), now))).toEqual([true, true, false]);
  });
});

describe('LeaseAssignment', () => {
  it('spreads workloads over live pilots within ±10%, one pilot per workload', () => {
    const counts = new Map<string, number>();
    for (const p of assignAll(at([pilot('p1'), pilot('p2'), pilot('p3')], RAMP)).values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    for (const n of counts.values()) expect(Math.abs(n / WORKLOADS.length - 1 / 3)).toBeLessThan(0.1 / 3);
  });

  it('is a function of the records and the time: same inputs, same answers (any replica)', () => {
    const records = [pilot('p1'), pilot('p2', 1000), pilot('p3', 20_000)];
    expect(assignAll(at(records, 30_000))).toEqual(assignAll(at([...records].reverse(), 30_000)));
  });

  it('when a pilot lease lapses, only its workloads move, spread over the others', () => {
    const records = [pilot('p1'), pilot('p2'), pilot('p3', 0, { renewTime: 0 })];
    const before = assignAll(at(records.map((p) => ({ ...p, renewTime: 100_000 })), 100_000));
    const after = assignAll(at(records, 100_000));
    const movedTo = new Set<string>();
    for (const w of WORKLOADS)
      if (before.get(w) !== 'p3') expect(after.get(w)).toBe(before.get(w));
      else movedTo.add(after.get(w)!);
    expect([...movedTo].sort()).toEqual(['p1', 'p2']);
  });

  it('a joining pilot takes ≈1/N gradually: nothing at first, about half its arc at half the ramp, all of it after; only to it, never back', () => {
    const old = [pilot('p1'), pilot('p2')];
    const before = assignAll(at(old, 100_000));
    const joined = [...old, pilot('p3', 100_000)];
    let prev = new Set<string>();
    const shares: number[] = [];
    for (const t of [0, 0.25, 0.5, 0.75, 1, 2]) {
      const a = at(joined, 100_000 + t * RAMP);
      const now = assignAll(a);
      const moved = new Set(WORKLOADS.filter((w) => now.get(w) !== before.get(w)));
      for (const w of moved) expect(now.get(w)).toBe('p3');
      for (const w of prev) expect(moved.has(w)).toBe(true); // monotone: nothing goes back
      shares.push(moved.size / WORKLOADS.length);
      prev = moved;
    }
    expect(shares[0]).toBe(0);
    expect(shares[2]! / shares[4]!).toBeGreaterThan(0.4);
    expect(shares[2]! / shares[4]!).toBeLessThan(0.6);
    expect(shares[4]).toBeGreaterThan(0.28);
    expect(shares[4]).toBeLessThan(0.39);
    expect(shares[5]).toBe(shares[4]);
  });

  it('the first pilot to join takes everything at once; a pilot that rejoins ramps again', () => {
    const a = at([pilot('p2', 5), pilot('p1', 10)], 10);
    expect(new Set(assignAll(a).values())).toEqual(new Set(['p2']));
    expect(a.share('p2')).toBe(1);
    expect(a.share('p1')).toBe(0);
  });

  it('skips a suspect pilot until it renews, unless every pilot is suspect', () => {
    const records = [pilot('p1'), pilot('p2')];
    const w = WORKLOADS.find((x) => at(records, RAMP).pilotFor(x)!.id === 'p1')!;
    const suspect = [pilot('p1', 0, { unreachableAt: 2_000_000 }), pilot('p2')];
    expect(at(suspect, RAMP).pilotFor(w)!.id).toBe('p2');
    expect(at([pilot('p1', 0, { unreachableAt: 2_000_000, renewTime: 3_000_000 }), pilot('p2')], RAMP).pilotFor(w)!.id).toBe('p1');
    expect(at([pilot('p1', 0, { unreachableAt: 2_000_000 }), pilot('p2', 0, { unreachableAt: 2_000_000 })], RAMP).pilotFor(w)!.id).toBe('p1');
  });

  it('tells a pilot to shed the sidecars of workloads served elsewhere, and reports pending moves', () => {
    const sidecars = WORKLOADS.slice(0, 100).map((w) => ({ nodeId: `${w}-0`, namespace: 'demo', workload: w.slice('demo/'.length) }));
    const workloads = Object.fromEntries(WORKLOADS.slice(0, 100).map((w) => [w, 1]));
    const a = at([pilot('p1', 0, { workloads }), pilot('p2', 0)], RAMP);
    const shed = a.shed('p1', sidecars);
    expect(shed.length).toBeGreaterThan(30);
    expect(shed.length).toBeLessThan(70);
    for (const n of shed) expect(a.pilotFor(n.replace(/-0$/, ''))!.id).toBe('p2');
    expect(a.pendingMoves()).toBe(shed.length);
    expect(a.table()).toHaveLength(100);
  });

  it('has no answer without a held Lease', () => {
    expect(at([], 0).pilotFor('demo/x')).toBeUndefined();
  });

  // Heartbeats are written through the meta servers: when they (or the API server) are down longer
  // than a Lease, every Lease lapses though the pilots serve on.
  it.each([
    // [renewTimes (3 s Leases), now, pilots kept]
    [[0], 3001, ['p0']],
    [[10_000, 9_000], 20_000, ['p0', 'p1']], // both were live at the latest renewal (10 s)
    [[10_000, 6_000], 20_000, ['p0']], // p1 had lapsed before p0's last renewal: gone for good
    [[10_000, 7_000, 0], 60_000, ['p0', 'p1']],
  ])('when every Lease lapsed (renewed at %j, now %d), keeps those live at the latest renewal: %j', (renewTimes, now, kept) => {
    const a = at(renewTimes.map((renewTime, i) => pilot(`p${i}`, 0, { renewTime })), now);
    expect(a.keptLapsed).toBe(true);
    expect(a.live.map((p) => p.id)).toEqual(kept);
    expect(new Set(assignAll(a).values())).toEqual(new Set(kept));
  });

  it('keeps no pilot whose Lease lapsed before the latest renewal of a Lease since released (it crashed, the others left)', () => {
    const records = [pilot('p0', 0, { renewTime: 10_000 })];
    expect(new LeaseAssignment(records, 60_000, { rampMs: RAMP, latestRenewal: 20_000 }).live).toEqual([]);
    expect(new LeaseAssignment(records, 60_000, { rampMs: RAMP, latestRenewal: 12_000 }).live.map((p) => p.id)).toEqual(['p0']);
    expect(latestRenewal([{ spec: { renewTime: new Date(5) } }, { spec: {} }, { spec: { renewTime: new Date(9) } }])).toBe(9);
    expect(latestRenewal([{ spec: {} }])).toBeUndefined();
  });

  it('keeps nothing lapsed while one pilot is live', () => {
    const a = at([pilot('p0', 0, { renewTime: 0 }), pilot('p1', 0, { renewTime: 20_000 })], 20_000);
    expect(a.keptLapsed).toBe(false);
    expect(a.live.map((p) => p.id)).toEqual(['p1']);
  });
});
