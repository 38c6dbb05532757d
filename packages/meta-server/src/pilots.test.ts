import { describe, expect, it } from '@jest/globals';
import { PilotDirectory, stallOf } from './pilots.js';

const reg = (id: string) => ({ id, xdsAddress: `127.0.0.1:${id}`, adminAddress: '', zone: '' });
const WORKLOADS = Array.from({ length: 300 }, (_, i) => `app-${i}`);

function withPilots(ids: string[], now = 0): PilotDirectory {
  const d = new PilotDirectory({ ttlMs: 3000 });
  for (const id of ids) d.register(reg(id), now);
  return d;
}

function assignAll(d: PilotDirectory): Map<string, string> {
  return new Map(WORKLOADS.map((w) => [w, d.locate('demo', w)!.pilot.id]));
}

describe('PilotDirectory', () => {
  it('gives every sidecar of a workload the same pilot, and spreads workloads over pilots', () => {
    const d = withPilots(['p1', 'p2']);
    const first = d.locate('demo', 'catalog')!;
    expect(first.move).toMatchObject({ reason: 'new', workload: 'demo/catalog' });
    expect(d.locate('demo', 'catalog')!.pilot.id).toBe(first.pilot.id);
    expect(d.locate('demo', 'catalog')!.move).toBeUndefined();
    const counts = new Map<string, number>();
    for (const p of assignAll(d).values()) counts.set(p, (counts.get(p) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(['p1', 'p2']);
  });

  it('when a pilot dies, only its workloads move, and they spread over the rest', () => {
    const d = withPilots(['p1', 'p2', 'p3']);
    const before = assignAll(d);
    d.heartbeat('p1', [], 2000);
    d.heartbeat('p3', [], 2000);
    expect(d.expire(4000)).toEqual(['p2']);
    const after = assignAll(d);
    const movedTo = new Set<string>();
    for (const w of WORKLOADS) {
      if (before.get(w) !== 'p2') expect([w, after.get(w)]).toEqual([w, before.get(w)]);
      else movedTo.add(after.get(w)!);
    }
    expect([...movedTo].sort()).toEqual(['p1', 'p3']);
  });

  it('when a pilot joins, nothing moves at once; rebalance moves ≈1/N, only to it, within the budget per call', () => {
    const d = withPilots(['p1', 'p2']);
    const before = assignAll(d);
    d.register(reg('p3'), 1);
    expect(assignAll(d)).toEqual(before); // sticky
    const pending = d.pendingMoves();
    expect(pending / WORKLOADS.length).toBeGreaterThan(0.25);
    expect(pending / WORKLOADS.length).toBeLessThan(0.42);
    let rounds = 0;
    let moved = 0;
    for (;;) {
      const moves = d.rebalance(10);
      if (!moves.length) break;
      rounds++;
      expect(moves.length).toBeLessThanOrEqual(10);
      for (const m of moves) expect(m).toMatchObject({ to: 'p3', reason: 'rebalance' });
      moved += moves.length;
    }
    expect(moved).toBe(pending);
    expect(rounds).toBe(Math.ceil(pending / 10));
    expect(d.pendingMoves()).toBe(0);
  });

  it('counts a workload by its sidecars against the budget', () => {
    const d = withPilots(['p1']);
    for (const w of WORKLOADS.slice(0, 50)) d.locate('demo', w);
    d.heartbeat('p1', WORKLOADS.slice(0, 50).flatMap((w) => Array.from({ length: 4 }, (_, i) => ({ nodeId: `${w}-${i}`, namespace: 'demo', workload: w }))), 1);
    d.register(reg('p2'), 1);
    const moves = d.rebalance(10);
    expect(moves.length).toBe(2); // 4 sidecars each: 2 workloads = 8 sidecars ≤ 10
  });

  it("tells the old pilot to shed a moved workload's sidecars", () => {
    const d = withPilots(['p1']);
    for (const w of WORKLOADS) d.locate('demo', w);
    d.register(reg('p2'), 1);
    const moves = d.rebalance(1000);
    const sidecars = WORKLOADS.map((w) => ({ nodeId: `${w}-0`, namespace: 'demo', workload: w }));
    const { shed } = d.heartbeat('p1', sidecars, 2)!;
    expect(shed.sort()).toEqual(moves.map((m) => `${m.workload.slice('demo/'.length)}-0`).sort());
    for (const m of moves) expect(d.locate('demo', m.workload.slice('demo/'.length))!.pilot.id).toBe('p2');
  });

  it('a pilot reported unreachable is skipped until it heartbeats again', () => {
    const d = withPilots(['p1', 'p2']);
    const home = d.locate('demo', 'catalog')!.pilot.id;
    const other = home === 'p1' ? 'p2' : 'p1';
    const moved = d.locate('demo', 'catalog', home)!;
    expect(moved.pilot.id).toBe(other);
    expect(moved.move?.reason).toBe('failover');
    expect(d.get(home)!.suspect).toBe(true);
    d.heartbeat(home, [], 10);
    expect(d.get(home)!.suspect).toBe(false);
  });

  it('after a meta server restart, adopts assignments from heartbeats; unknown pilots must register again', () => {
    const d = new PilotDirectory({ ttlMs: 3000 });
    expect(d.heartbeat('p1', [], 0)).toBeUndefined();
    d.register(reg('p1'), 0);
    d.register(reg('p2'), 0);
    const r = d.heartbeat('p1', [{ nodeId: 'catalog-0', namespace: 'demo', workload: 'catalog' }], 1)!;
    expect(r.adopted).toEqual([{ workload: 'demo/catalog', from: undefined, to: 'p1', reason: 'adopted' }]);
    expect(d.locate('demo', 'catalog')!.pilot.id).toBe('p1');
  });

  it('has no answer without pilots, and a deregistered pilot hands its workloads over at once', () => {
    const d = new PilotDirectory({ ttlMs: 3000 });
    expect(d.locate('demo', 'x')).toBeUndefined();
    d.register(reg('p1'), 0);
    d.register(reg('p2'), 0);
    const home = d.locate('demo', 'x')!.pilot.id;
    d.deregister(home);
    expect(d.locate('demo', 'x')!.pilot.id).not.toBe(home);
  });

  // Issue 18: after both pilots restarted, the meta server logged "workload assigned pilot-a →
  // pilot-a (failover)" again and again: with every pilot suspect the fallback picked the same one.
  it('when every pilot is suspect a workload stays where it is, and no move is recorded', () => {
    const d = withPilots(['p1']);
    const first = d.locate('demo', 'catalog')!;
    const again = d.locate('demo', 'catalog', 'p1')!;
    expect(again.pilot.id).toBe(first.pilot.id);
    expect(again.move).toBeUndefined();
  });

  // A meta server that did not run for a while (CPU starvation, a long GC) does not charge the
  // stall to the leases: the heartbeats sent meanwhile wait unread in its sockets.
  it.each([
    // [last heartbeat, sweep at, stalled ms, expired?]  (TTL 3,000 ms)
    [0, 2999, 0, false],
    [0, 3001, 0, true],
    [0, 6000, 3500, false], // 6 s since the heartbeat, 3.5 s of them stalled: 2.5 s charged
    [0, 6000, 2999, true], // 3,001 ms charged
    [0, 60_000, 1000, true], // a pilot that is gone stays gone
  ])('heartbeat at %d, sweep at %d after a %d ms stall: expired %s', (hb, at, stalled, expired) => {
    const d = withPilots(['p1']);
    d.heartbeat('p1', [], hb);
    expect(d.expire(at, stalled)).toEqual(expired ? ['p1'] : []);
  });

  it.each([
    [0, 500, 500, 0],
    [0, 499, 500, 0],
    [0, 4500, 500, 4000],
  ])('stallOf(last sweep %d, now %d, interval %d) = %d', (last, now, interval, want) => {
    expect(stallOf(last, now, interval)).toBe(want);
  });
});
