import { HashRing } from './ring.js';

export interface PilotRegistration {
  id: string;
  xdsAddress: string;
  adminAddress: string;
  zone: string;
}

export interface SidecarRef {
  nodeId: string;
  namespace: string;
  workload: string;
}

export interface PilotState extends PilotRegistration {
  registeredAt: number;
  lastHeartbeat: number;
  /** A sidecar reported it unreachable; not handed out until it heartbeats again. */
  suspect: boolean;
  /** Sidecars with an open stream to it, from its last heartbeat. */
  sidecars: SidecarRef[];
}

export interface Move {
  workload: string;
  from: string | undefined;
  to: string;
  reason: 'new' | 'failover' | 'rebalance' | 'adopted';
}

export interface PilotDirectoryOptions {
  /** A pilot without a heartbeat for this long is dead. */
  ttlMs: number;
  vnodes?: number;
}

/** `namespace/workload`: the unit of assignment, so one app's sidecars share a pilot and its config cache. */
export const workloadKey = (namespace: string, workload: string) => `${namespace || 'default'}/${workload}`;

/**
 * Which pilots are alive and which pilot serves which workload. A pure state machine: every method
 * takes the time explicitly, nothing here does I/O or reads a clock, so the server, tests and a
 * future Lease-backed implementation drive it the same way.
 *
 * Assignments are sticky: a workload stays on its pilot while that pilot lives, even when the ring
 * would now choose another (a pilot joined). {@link rebalance} moves such workloads a bounded
 * number of sidecars at a time; {@link heartbeat} then tells the old pilot to shed their streams.
 * When a pilot dies, only its workloads move, to their ring successors among the live pilots.
 */
export class PilotDirectory {
  private readonly pilots = new Map<string, PilotState>();
  private readonly assignments = new Map<string, string>();
  private ring: HashRing;
  /** Pilots whose lease lapsed but that the last {@link expire} kept: every lease had lapsed. */
  kept: string[] = [];

  constructor(private readonly opts: PilotDirectoryOptions) {
    this.ring = new HashRing([], opts.vnodes);
  }

  private rebuild(): void {
    const members = [...this.pilots.keys()];
    if (members.join('\n') !== this.ring.members.join('\n')) this.ring = new HashRing(members, this.opts.vnodes);
  }

  private suspects(): Set<string> {
    return new Set([...this.pilots.values()].filter((p) => p.suspect).map((p) => p.id));
  }

  register(reg: PilotRegistration, now: number): PilotState {
    const prev = this.pilots.get(reg.id);
    const state: PilotState = { ...reg, registeredAt: prev?.registeredAt ?? now, lastHeartbeat: now, suspect: false, sidecars: prev?.sidecars ?? [] };
    this.pilots.set(reg.id, state);
    this.rebuild();
    return state;
  }

  /**
   * Renews a pilot's lease and records its sidecars. Returns the node ids it should shed (their
   * workload is assigned elsewhere now), or undefined when the pilot is unknown (register again).
   * Workloads nobody has assigned yet (the meta server restarted) are adopted where they are.
   */
  heartbeat(id: string, sidecars: readonly SidecarRef[], now: number): { shed: string[]; adopted: Move[] } | undefined {
    const p = this.pilots.get(id);
    if (!p) return undefined;
    p.lastHeartbeat = now;
    p.suspect = false;
    p.sidecars = [...sidecars];
    const adopted: Move[] = [];
    const shed: string[] = [];
    for (const s of sidecars) {
      const w = workloadKey(s.namespace, s.workload);
      const assigned = this.assignments.get(w);
      if (assigned === undefined) {
        this.assignments.set(w, id);
        adopted.push({ workload: w, from: undefined, to: id, reason: 'adopted' });
      } else if (assigned !== id && this.pilots.has(assigned)) shed.push(s.nodeId);
    }
    return { shed, adopted };
  }

  deregister(id: string): boolean {
    const had = this.pilots.delete(id);
    if (had) this.forget(id);
    return had;
  }

  /**
   * Removes pilots whose lease lapsed; returns their ids. `stalledSince(t)`: how long the meta
   * server itself did not run (its own event loop held) since `t` — not charged to the pilots,
   * whose heartbeats may be waiting unread in its sockets (see {@link stallOf}, {@link StallLog}).
   */
  expire(now: number, stalledSince: (t: number) => number = () => 0): string[] {
    const dead = [...this.pilots.values()].filter((p) => now - stalledSince(p.lastHeartbeat) - p.lastHeartbeat > this.opts.ttlMs).map((p) => p.id);
    // Every lease lapsed at once: the meta server is likelier the one behind (its sockets full of
    // unread heartbeats — bench/scale's locate storm after a pilot kill lapsed the one surviving
    // pilot five times in 50 s) than every pilot dead. Expiring them all would answer every
    // Locate "no live pilot" and forget every assignment; keeping them hands out pilots that may
    // be gone, which a sidecar reports (unreachable) and retries with backoff either way. They
    // expire as soon as one pilot is heard from again.
    this.kept = dead.length > 0 && dead.length === this.pilots.size ? dead : [];
    if (this.kept.length) return [];
    for (const id of dead) {
      this.pilots.delete(id);
      this.forget(id);
    }
    return dead;
  }

  private forget(id: string): void {
    for (const [w, p] of this.assignments) if (p === id) this.assignments.delete(w);
    this.rebuild();
  }

  /**
   * The pilot for a sidecar of `namespace/workload`. `unreachable` is the pilot the sidecar could
   * not reach: it becomes suspect (skipped) until its next heartbeat. Undefined when no pilot is live.
   */
  locate(namespace: string, workload: string, unreachable?: string): { pilot: PilotState; move?: Move } | undefined {
    const w = workloadKey(namespace, workload);
    if (unreachable) {
      const u = this.pilots.get(unreachable);
      if (u) u.suspect = true;
    }
    const assigned = this.assignments.get(w);
    const current = assigned === undefined ? undefined : this.pilots.get(assigned);
    if (current && !current.suspect) return { pilot: current };
    const choice = this.ring.lookup(w, this.suspects()) ?? this.ring.lookup(w);
    if (!choice) return undefined;
    if (choice === assigned) return { pilot: this.pilots.get(choice)! }; // every pilot suspect: it stays, no move
    this.assignments.set(w, choice);
    return { pilot: this.pilots.get(choice)!, move: { workload: w, from: assigned, to: choice, reason: assigned === undefined ? 'new' : 'failover' } };
  }

  /**
   * Moves workloads whose ring owner is not their current (live) pilot, at most `budget` sidecars'
   * worth (but at least one workload, so progress never stalls), in a stable order.
   */
  rebalance(budget: number): Move[] {
    const suspects = this.suspects();
    const counts = new Map<string, number>();
    for (const p of this.pilots.values()) for (const s of p.sidecars) counts.set(workloadKey(s.namespace, s.workload), (counts.get(workloadKey(s.namespace, s.workload)) ?? 0) + 1);
    const moves: Move[] = [];
    let spent = 0;
    for (const [w, from] of [...this.assignments.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const to = this.ring.lookup(w, suspects);
      if (!to || to === from || suspects.has(from)) continue;
      const cost = Math.max(1, counts.get(w) ?? 0);
      if (moves.length > 0 && spent + cost > budget) break;
      this.assignments.set(w, to);
      spent += cost;
      moves.push({ workload: w, from, to, reason: 'rebalance' });
    }
    return moves;
  }

  /** Workloads whose assignment differs from the ring's choice (still to be rebalanced). */
  pendingMoves(): number {
    const suspects = this.suspects();
    let n = 0;
    for (const [w, p] of this.assignments) if (this.ring.lookup(w, suspects) !== p) n++;
    return n;
  }

  get(id: string): PilotState | undefined {
    return this.pilots.get(id);
  }

  list(): PilotState[] {
    return [...this.pilots.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  assignmentOf(namespace: string, workload: string): string | undefined {
    return this.assignments.get(workloadKey(namespace, workload));
  }

  assignmentTable(): Record<string, string> {
    return Object.fromEntries([...this.assignments.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/**
 * How long the process was stalled between two sweeps that should have been `intervalMs` apart:
 * the time beyond the interval. A meta server starved of CPU (or paused in a long GC) runs its
 * sweep timer before it reads the heartbeats that arrived meanwhile (Node runs timers before
 * I/O), so without this every lease would lapse at once after a stall — and each lapse moves all
 * of that pilot's sidecars (a reconnect storm that starves it further). Measured in the 10,000
 * sidecar bench (bench/scale): 30 lapses in one run under load 15.
 */
export function stallOf(lastSweep: number, now: number, intervalMs: number): number {
  return Math.max(0, now - lastSweep - intervalMs);
}

/**
 * The meta server's stalls (see {@link stallOf}) over the last `keepMs`, so a lease is charged
 * only the time the meta server ran since that lease's last heartbeat. Only the stall of the
 * latest sweep was subtracted before: under a locate storm (bench/scale, 5,000 sidecars of a
 * killed pilot locating at once) the meta server stalled 0.9–4 s at most sweeps, and the one live
 * pilot lapsed five times in 50 s — 1.5 + 0.9 + 1.2 s of stalls between two of its heartbeats,
 * the last sweep on time — each lapse answering every Locate "no live pilot" until it registered
 * again.
 */
export class StallLog {
  private readonly stalls: { at: number; ms: number }[] = [];

  constructor(private readonly keepMs: number) {}

  /** A sweep at `at` found the process had stalled `ms` before it. */
  record(at: number, ms: number): void {
    if (ms > 0) this.stalls.push({ at, ms });
    while (this.stalls.length && this.stalls[0]!.at < at - this.keepMs) this.stalls.shift();
  }

  /** Stalled time after `t` (a stall that began before `t` counts only from `t`). */
  since(t: number): number {
    let n = 0;
    for (const s of this.stalls) if (s.at > t) n += Math.min(s.ms, s.at - t);
    return n;
  }
}
