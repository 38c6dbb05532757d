/**
 * Health-checker membership, as a pure directory (time passed in): which checker replicas are
 * alive. Each replica builds the same consistent-hash ring over the live ids the meta server
 * returns (see packages/health), so the meta server only keeps the list; it does not assign.
 *
 * This is the in-memory mode (embedded mesh, one meta-server replica). In Kubernetes mode the
 * membership is in Leases instead (`checker-lease.ts`, `checker-membership.ts`), so checkers that
 * heartbeat to different meta-server replicas are told the same list.
 */
export interface CheckerRecord {
  id: string;
  adminAddress: string;
  lastHeartbeat: number;
  joinedAt: number;
}

export class CheckerDirectory {
  private readonly checkers = new Map<string, CheckerRecord>();

  constructor(private readonly ttlMs: number) {}

  /** Joins or renews; returns whether the checker is new (joined or came back after lapsing). */
  heartbeat(id: string, adminAddress: string, now: number): boolean {
    const known = this.checkers.get(id);
    const fresh = !known || now - known.lastHeartbeat > this.ttlMs;
    this.checkers.set(id, { id, adminAddress, lastHeartbeat: now, joinedAt: fresh ? now : known.joinedAt });
    return fresh;
  }

  deregister(id: string): boolean {
    return this.checkers.delete(id);
  }

  /** Live checkers (a heartbeat within the TTL), sorted by id. */
  live(now: number): CheckerRecord[] {
    return [...this.checkers.values()].filter((c) => now - c.lastHeartbeat <= this.ttlMs).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Drops checkers whose lease lapsed; returns their ids. `stalledSince`: as for pilots (PilotDirectory.expire). */
  sweep(now: number, stalledSince: (t: number) => number = () => 0): string[] {
    const gone: string[] = [];
    for (const [id, c] of this.checkers) {
      if (now - stalledSince(c.lastHeartbeat) - c.lastHeartbeat <= this.ttlMs) continue;
      this.checkers.delete(id);
      gone.push(id);
    }
    return gone;
  }
}
