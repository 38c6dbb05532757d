/**
 * Lease-backed health-checker membership (Kubernetes mode): the checker Leases of one namespace
 * through a {@link LeaseStore}. What to write and who is live is decided by the pure functions in
 * `checker-lease.ts`.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@octo-mesh/runtime';
import { CHECKER_LEASE_LABEL, checkerChanges, checkerLeaseName, heartbeatCheckerLease, liveCheckers, releasedCheckerLease, type CheckerLeaseRecord } from './checker-lease.js';
import { LeaseStore } from './lease-store.js';

export interface LeaseCheckersOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the checker Leases (all meta-server replicas of one mesh use the same). */
  namespace: string;
  /** Lease duration (rounded up to whole seconds, the Lease's unit). */
  ttlMs: number;
  logger: Logger;
  now?: () => number;
}

/**
 * Health-checker membership for any number of meta-server replicas: each CheckerHeartbeat /
 * DeregisterChecker writes the checker's Lease, every replica watches all of them, and the live
 * list is read from what the Leases say at the time of the call. No replica keeps state another
 * would need, so checkers heartbeating to different replicas are told the same list.
 */
export class LeaseCheckers {
  private readonly store: LeaseStore;
  private readonly now: () => number;
  private lastLive = new Set<string>();

  constructor(private readonly opts: LeaseCheckersOptions) {
    this.store = new LeaseStore({ kubeConfig: opts.kubeConfig, namespace: opts.namespace, labelSelector: `${CHECKER_LEASE_LABEL}=true`, what: 'checker lease informer', logger: opts.logger });
    this.now = opts.now ?? Date.now;
  }

  start(): Promise<void> {
    return this.store.start();
  }

  /** A readiness check: true, or why the Leases seen are going stale (informer down past `graceMs`). */
  health(graceMs = 5000): true | string {
    return this.store.health(graceMs);
  }

  stop(): Promise<void> {
    return this.store.stop();
  }

  /** Live checkers at `now`, sorted by id (this replica's own writes included). */
  live(now = this.now()): CheckerLeaseRecord[] {
    return liveCheckers(this.store.list(), now);
  }

  /** Joins or renews the checker's Lease; `joined` when it is new (or came back after lapsing). */
  async heartbeat(checkerId: string, adminAddress: string): Promise<{ joined: boolean }> {
    let joined = false;
    await this.store.mutate(checkerLeaseName(checkerId), (current) => {
      const next = heartbeatCheckerLease(current, checkerId, adminAddress, this.store.namespace, this.opts.ttlMs, this.now());
      joined = next.joined;
      return next.lease;
    });
    return { joined };
  }

  /** Releases the checker's Lease; false when it held none. */
  async deregister(checkerId: string): Promise<boolean> {
    // Nothing to release on the cached copy is checked on a fresh read (the cache may lag).
    return (await this.store.mutate(checkerLeaseName(checkerId), (current) => releasedCheckerLease(current, checkerId))) !== undefined;
  }

  /** Who joined and who left since the last call, as this replica sees it (for logs only). */
  observe(): { joined: string[]; left: string[] } {
    const live = this.live().map((c) => c.id);
    const changes = checkerChanges(this.lastLive, live);
    this.lastLive = new Set(live);
    return changes;
  }
}
