/**
 * Shared by the meta server (sidecars → pilots, keyed by workload) and the health checker
 * (services → checker replicas, keyed by service): one hash, so both spread keys the same way.
 */
import { createHash } from 'node:crypto';

/** A 64-bit position on the ring (first 8 bytes of md5: uniform, stable across processes and versions). */
export function ringHash(s: string): bigint {
  return createHash('md5').update(s).digest().readBigUInt64BE(0);
}

/**
 * A consistent-hash ring with virtual nodes: each member owns `vnodes` points; a key belongs to
 * the first point at or after its hash (wrapping). Adding or removing a member moves only the keys
 * of the arcs it gains or loses — about 1/N of them — and spreads a removed member's keys over
 * all the others. Immutable: build a new ring when membership changes.
 */
export class HashRing {
  private readonly points: bigint[];
  private readonly owners: string[];
  readonly members: readonly string[];

  constructor(members: Iterable<string>, readonly vnodes = 2048) {
    this.members = [...new Set(members)].sort();
    const pts: { p: bigint; m: string }[] = [];
    for (const m of this.members) for (let i = 0; i < vnodes; i++) pts.push({ p: ringHash(`${m}#${i}`), m });
    pts.sort((a, b) => (a.p < b.p ? -1 : a.p > b.p ? 1 : a.m.localeCompare(b.m)));
    this.points = pts.map((x) => x.p);
    this.owners = pts.map((x) => x.m);
  }

  /**
   * The member owning `key`, skipping members in `exclude` (walking on clockwise, so an excluded
   * member's keys spread like a removed member's). Undefined when no member is eligible.
   */
  lookup(key: string, exclude?: ReadonlySet<string>): string | undefined {
    const n = this.points.length;
    if (!n) return undefined;
    const h = ringHash(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    for (let i = 0; i < n; i++) {
      const m = this.owners[(lo + i) % n]!;
      if (!exclude?.has(m)) return m;
    }
    return undefined;
  }
}
