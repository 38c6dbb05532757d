import type { ClusterModel, EndpointHealth, EndpointModel, EndpointSet, SocketAddr } from '../model.js';
import { addrKey } from '../model.js';
import { isEjected, newOutlierState, type OutlierState } from './outlier.js';
import type { PeerEvidence } from './p2p-decision.js';

/** An upstream endpoint with the runtime state that survives config updates (keyed by address). */
export class Host {
  readonly key: string;
  address: SocketAddr;
  weight = 1;
  health: EndpointHealth = 'healthy';
  priority = 0;
  locality = '';
  /** Endpoint weight scaled by its locality's share; what the balancers use. */
  lbWeight = 1;
  active = 0;
  requests = 0;
  failures = 0;
  readonly outlier: OutlierState = newOutlierState();
  /** The central checker's verdict when it decides this host's health (EDS metadata). */
  central: EndpointModel['central'];
  /**
   * Selective P2P checks' state for this host (p2p-decision.ts); dropped when the central verdict
   * changes, since fresh local evidence wins only until then.
   */
  p2p: PeerEvidence | undefined;
  /** What this sidecar's own probes decided against the central verdict, while fresh (p2p-check.ts). */
  override: 'healthy' | 'unhealthy' | undefined;
  constructor(address: SocketAddr) {
    this.address = address;
    this.key = addrKey(address);
  }
  get healthy(): boolean {
    return this.health === 'healthy' || this.health === 'degraded';
  }
  /** In rotation: not ejected, and healthy by the central verdict unless this sidecar's fresh evidence overrides it. */
  available(now: number): boolean {
    if (isEjected(this.outlier, now)) return false;
    return this.override === undefined ? this.healthy : this.override === 'healthy';
  }
}

/** FNV-1a, 32 bit: the hash for ring-hash keys and ring points. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche so that near-identical keys spread over the ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Level {
  priority: number;
  hosts: Host[];
  available: Host[];
  /** Percent of hosts that are healthy and not ejected (before overprovisioning). */
  healthyPct: number;
}

/**
 * The hosts of one cluster and the balancing over them: priority levels (lower first; load spills
 * over as health drops, scaled by the overprovisioning factor), the panic threshold (below it a
 * level balances over all its hosts), then the cluster's policy among the candidates.
 */
export class HostSet {
  hosts: Host[] = [];
  private levels: Level[] = [];
  /** Cumulative load per level, summing to 1. */
  private loads: number[] = [];
  private nextExpiry = Infinity;
  private dirty = true;
  private rr = new Map<Host[], { cursor: number; current: Map<Host, number> }>();
  private rings = new Map<Host[], { points: Uint32Array; hosts: Host[] }>();

  constructor(
    public cluster: ClusterModel,
    private readonly random: () => number = Math.random,
  ) {}

  /** Replaces the endpoint set, keeping the state of hosts whose address stays. */
  update(set: EndpointSet | undefined): void {
    const old = new Map(this.hosts.map((h) => [h.key, h]));
    const next: Host[] = [];
    for (const loc of set?.localities ?? []) {
      const share = loc.weight / Math.max(1, loc.endpoints.length);
      for (const e of loc.endpoints) {
        const key = addrKey(e.address);
        const h = old.get(key) ?? new Host(e.address);
        if (h.p2p && (h.health !== e.health || h.central?.healthy !== e.central?.healthy || h.central?.since !== e.central?.since)) {
          // A new central verdict: local evidence gathered against the old one no longer wins.
          h.p2p = undefined;
          h.override = undefined;
        }
        h.address = e.address;
        h.weight = e.weight;
        h.health = e.health;
        h.central = e.central;
        h.priority = loc.priority;
        h.locality = loc.locality;
        h.lbWeight = e.weight * share;
        next.push(h);
      }
    }
    this.hosts = next;
    this.overprovisioning = set?.overprovisioningFactor ?? 1.4;
    this.invalidate();
  }

  private overprovisioning = 1.4;

  /** Call when a host's ejection state changed. */
  invalidate(): void {
    this.dirty = true;
  }

  get ejectedCount(): number {
    const now = Date.now();
    return this.hosts.reduce((n, h) => n + (isEjected(h.outlier, now) ? 1 : 0), 0);
  }

  private rebuild(now: number): void {
    const byPriority = new Map<number, Host[]>();
    for (const h of this.hosts) {
      let l = byPriority.get(h.priority);
      if (!l) byPriority.set(h.priority, (l = []));
      l.push(h);
    }
    this.nextExpiry = Infinity;
    for (const h of this.hosts) if (isEjected(h.outlier, now)) this.nextExpiry = Math.min(this.nextExpiry, h.outlier.ejectedUntil);
    this.levels = [...byPriority.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([priority, hosts]) => {
        const available = hosts.filter((h) => h.available(now));
        return { priority, hosts, available, healthyPct: (available.length / hosts.length) * 100 };
      });
    // Priority load: each level takes min(100, health·overprovisioning) of what is left.
    const health = this.levels.map((l) => Math.min(100, l.healthyPct * this.overprovisioning));
    const totalHealth = Math.min(100, health.reduce((a, b) => a + b, 0));
    let left = 100;
    let cum = 0;
    this.loads = health.map((h) => {
      const take = totalHealth > 0 ? Math.min(left, (h * 100) / totalHealth) : 0;
      left -= take;
      cum += take;
      return cum / 100;
    });
    this.rr.clear();
    this.rings.clear();
    this.dirty = false;
  }

  /**
   * Chooses a host, or undefined when the cluster has none. `hashKey` is used by ring hash
   * (absent: random). `exclude` lets a retry prefer another host.
   */
  choose(hashKey?: number, exclude?: Host): Host | undefined {
    const now = Date.now();
    if (this.dirty || now >= this.nextExpiry) this.rebuild(now);
    if (this.levels.length === 0) return undefined;
    let level = this.levels[0]!;
    const allDown = this.loads.every((l) => l === 0);
    if (!allDown && this.levels.length > 1) {
      const x = this.random();
      const i = this.loads.findIndex((l) => x < l);
      level = this.levels[i < 0 ? this.levels.length - 1 : i]!;
    }
    let candidates = level.healthyPct < this.cluster.panicThreshold || level.available.length === 0 ? level.hosts : level.available;
    if (exclude && candidates.length > 1 && candidates.includes(exclude)) candidates = candidates.filter((h) => h !== exclude);
    if (candidates.length === 1) return candidates[0];
    switch (this.cluster.lbPolicy) {
      case 'random':
        return this.weightedRandom(candidates);
      case 'least_request':
        return this.leastRequest(candidates);
      case 'ring_hash':
        return hashKey === undefined ? this.weightedRandom(candidates) : this.ringLookup(candidates, hashKey);
      default:
        return this.roundRobin(candidates);
    }
  }

  private weightedRandom(c: Host[]): Host {
    const total = c.reduce((s, h) => s + h.lbWeight, 0);
    let x = this.random() * total;
    for (const h of c) {
      if (x < h.lbWeight) return h;
      x -= h.lbWeight;
    }
    return c[c.length - 1]!;
  }

  /** Smooth weighted round robin (equal weights degrade to plain rotation). */
  private roundRobin(c: Host[]): Host {
    let st = this.rr.get(c);
    if (!st) this.rr.set(c, (st = { cursor: Math.floor(this.random() * c.length), current: new Map() }));
    const w0 = c[0]!.lbWeight;
    if (c.every((h) => h.lbWeight === w0)) return c[st.cursor++ % c.length]!;
    let total = 0;
    let best: Host | undefined;
    let bestW = -Infinity;
    for (const h of c) {
      const w = (st.current.get(h) ?? 0) + h.lbWeight;
      st.current.set(h, w);
      total += h.lbWeight;
      if (w > bestW) {
        bestW = w;
        best = h;
      }
    }
    st.current.set(best!, bestW - total);
    return best!;
  }

  /** Power of `choice_count` choices: the fewest active requests per unit of weight wins. */
  private leastRequest(c: Host[]): Host {
    let best: Host | undefined;
    for (let i = 0; i < this.cluster.choiceCount; i++) {
      const h = c[Math.floor(this.random() * c.length)]!;
      if (!best || (h.active + 1) / h.lbWeight < (best.active + 1) / best.lbWeight) best = h;
    }
    return best!;
  }

  private ringLookup(c: Host[], key: number): Host {
    let ring = this.rings.get(c);
    if (!ring) this.rings.set(c, (ring = buildRing(c, this.cluster.minRingSize)));
    const pts = ring.points;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return ring.hosts[lo === pts.length ? 0 : lo]!;
  }
}

/** A consistent-hash ring: each host gets points in proportion to its weight. */
export function buildRing(hosts: Host[], minSize: number): { points: Uint32Array; hosts: Host[] } {
  const total = hosts.reduce((s, h) => s + h.lbWeight, 0);
  const entries: { p: number; h: Host }[] = [];
  for (const h of hosts) {
    const n = Math.max(1, Math.ceil((minSize * h.lbWeight) / total));
    for (let i = 0; i < n; i++) entries.push({ p: hash32(`${h.key}_${i}`), h });
  }
  entries.sort((a, b) => a.p - b.p);
  return { points: Uint32Array.from(entries.map((e) => e.p)), hosts: entries.map((e) => e.h) };
}
