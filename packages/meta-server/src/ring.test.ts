import { describe, expect, it } from '@jest/globals';
import { HashRing } from './ring.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `demo/workload-${i}`);

function spread(ring: HashRing): Map<string, number> {
  const counts = new Map<string, number>(ring.members.map((m) => [m, 0]));
  for (const k of KEYS) counts.set(ring.lookup(k)!, (counts.get(ring.lookup(k)!) ?? 0) + 1);
  return counts;
}

const pilots = (n: number) => Array.from({ length: n }, (_, i) => `pilot-${i}`);

describe('HashRing', () => {
  // columns: pilots — every pilot's share of 10,000 keys is within ±10% of an even split
  it.each([2, 3, 4, 5, 8, 10, 16])('balances 10,000 keys across %i pilots within ±10%%', (n) => {
    const counts = spread(new HashRing(pilots(n)));
    const even = KEYS.length / n;
    for (const [m, c] of counts) expect([m, Math.abs(c - even) / even]).toEqual([m, expect.any(Number)]);
    const worst = Math.max(...[...counts.values()].map((c) => Math.abs(c - even) / even));
    expect(worst).toBeLessThanOrEqual(0.1);
  });

  // columns: pilots before — a joining pilot takes about 1/(n+1) of the keys, all from others, none move between old pilots
  it.each([2, 3, 5, 9])('when a pilot joins %i, only keys moving to it move (≈1/N)', (n) => {
    const before = new HashRing(pilots(n));
    const after = new HashRing([...pilots(n), 'pilot-new']);
    let moved = 0;
    for (const k of KEYS) {
      const a = before.lookup(k)!;
      const b = after.lookup(k)!;
      if (a !== b) {
        moved++;
        expect(b).toBe('pilot-new');
      }
    }
    const ideal = KEYS.length / (n + 1);
    expect(Math.abs(moved - ideal) / ideal).toBeLessThanOrEqual(0.1);
  });

  it.each([3, 4, 10])('when one of %i pilots leaves, only its keys move, spread over all the others', (n) => {
    const before = new HashRing(pilots(n));
    const after = new HashRing(pilots(n).filter((p) => p !== 'pilot-1'));
    const gained = new Map<string, number>();
    for (const k of KEYS) {
      const a = before.lookup(k)!;
      const b = after.lookup(k)!;
      if (a !== 'pilot-1') expect(b).toBe(a);
      else gained.set(b, (gained.get(b) ?? 0) + 1);
    }
    expect(gained.size).toBe(n - 1);
    const moved = [...gained.values()].reduce((s, x) => s + x, 0);
    for (const g of gained.values()) expect(g).toBeGreaterThan((moved / (n - 1)) * 0.6);
  });

  it('excluding a member is the same as removing it', () => {
    const all = new HashRing(pilots(4));
    const without = new HashRing(pilots(4).filter((p) => p !== 'pilot-2'));
    for (const k of KEYS.slice(0, 2000)) expect(all.lookup(k, new Set(['pilot-2']))).toBe(without.lookup(k));
  });

  it('is stable across instances and member order; empty rings own nothing', () => {
    expect(new HashRing(['b', 'a', 'c']).lookup('demo/frontend')).toBe(new HashRing(['c', 'a', 'b']).lookup('demo/frontend'));
    expect(new HashRing([]).lookup('x')).toBeUndefined();
    expect(new HashRing(['a']).lookup('x', new Set(['a']))).toBeUndefined();
  });
});
