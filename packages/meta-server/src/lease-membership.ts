/**
 * Lease-backed pilot membership: the pilot Leases of one namespace through a {@link LeaseStore}
 * (informer, read-your-writes, writes with a conflict re-read and retried). What to write and who
 * serves whom is decided by the pure functions in `lease-assign.ts`.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '@octo-mesh/runtime';
import {
  LeaseAssignment,
  PILOT_LEASE_LABEL,
  isSuspect,
  leaseName,
  latestRenewal,
  recordFromLease,
  registeredLease,
  releasedLease,
  renewedLease,
  suspectedLease,
  type LeaseObject,
  type PilotLeaseRecord,
} from './lease-assign.js';
import { LeaseStore } from './lease-store.js';
import { workloadKey, type Move, type PilotRegistration, type SidecarRef } from './pilots.js';
import { HashRing } from './ring.js';

export interface LeasePilotsOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the pilot Leases (all meta-server replicas of one mesh use the same). */
  namespace: string;
  /** Lease duration (rounded up to whole seconds, the Lease's unit). */
  ttlMs: number;
  /** A joining pilot takes its share of workloads linearly over this long. */
  rampMs: number;
  vnodes?: number;
  logger: Logger;
  now?: () => number;
}

/**
 * Pilot membership for any number of meta-server replicas: each RegisterPilot / PilotHeartbeat /
 * DeregisterPilot writes the pilot's Lease, every replica watches all of them, and Locate is
 * answered from what the Leases say at the time of the call ({@link LeaseAssignment}). No replica
 * keeps state another would need.
 */
export class LeasePilots {
  private readonly store: LeaseStore;
  private ring: HashRing;
  private readonly now: () => number;
  private lastTable = new Map<string, string>();
  private lastLive = new Set<string>();
  /** Unreachable marks being written, per pilot: a failover burst of Locates writes each once. */
  private readonly suspecting = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: LeasePilotsOptions) {
    this.store = new LeaseStore({ kubeConfig: opts.kubeConfig, namespace: opts.namespace, labelSelector: `${PILOT_LEASE_LABEL}=true`, what: 'pilot lease informer', logger: opts.logger });
    this.now = opts.now ?? Date.now;
    this.ring = new HashRing([], opts.vnodes);
  }

  get synced(): boolean {
    return this.store.synced;
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

  /** Every pilot Lease as this replica sees it now. */
  records(): PilotLeaseRecord[] {
    return this.store.list().flatMap((l) => recordFromLease(l) ?? []);
  }

  /** Who serves whom at `now`, from the Leases alone (same answer on every replica). */
  assignment(now = this.now(), override?: (p: PilotLeaseRecord) => PilotLeaseRecord): LeaseAssignment {
    const leases = this.store.list();
    const held = leases.flatMap((l) => recordFromLease(l) ?? []);
    const records = override ? held.map(override) : held;
    const latest = latestRenewal(leases);
    const a = new LeaseAssignment(
      records,
      now,
      { rampMs: this.opts.rampMs, ...(this.opts.vnodes ? { vnodes: this.opts.vnodes } : {}), ...(latest === undefined ? {} : { latestRenewal: latest }) },
      this.ring,
    );
    this.ring = a.ring;
    return a;
  }

  private mutate(name: string, change: (current: LeaseObject | undefined) => LeaseObject | undefined): Promise<LeaseObject | undefined> {
    return this.store.mutate(name, change);
  }

  async register(reg: PilotRegistration): Promise<{ joined: boolean }> {
    const { namespace, ttlMs } = this.opts;
    let joined = false;
    await this.mutate(leaseName(reg.id), (current) => {
      const next = registeredLease(current, reg, namespace, ttlMs, this.now());
      const prev = current ? recordFromLease(current) : undefined;
      joined = prev?.joinedAt !== next.spec?.acquireTime?.getTime();
      return next;
    });
    return { joined };
  }

  /** Renews the pilot's Lease; undefined when it must register again. Returns the sidecars to shed. */
  async heartbeat(pilotId: string, sidecars: readonly SidecarRef[]): Promise<{ shed: string[] } | undefined> {
    const out = await this.mutate(leaseName(pilotId), (current) => renewedLease(current, pilotId, sidecars, this.opts.ttlMs, this.now()));
    if (!out) return undefined;
    return { shed: this.assignment().shed(pilotId, sidecars) };
  }

  async deregister(pilotId: string): Promise<boolean> {
    return (await this.mutate(leaseName(pilotId), (current) => (current ? releasedLease(current, pilotId) : undefined))) !== undefined;
  }

  /**
   * The pilot for a sidecar of `namespace/workload`. `unreachable`: the pilot the sidecar could not
   * reach; it is marked on its Lease (suspect until it renews), so every replica skips it.
   */
  async locate(namespace: string, workload: string, unreachable?: string): Promise<PilotLeaseRecord | undefined> {
    const key = workloadKey(namespace, workload);
    const u = unreachable ? this.assignment().get(unreachable) : undefined;
    if (!unreachable || !u || isSuspect(u)) return this.assignment().pilotFor(key);
    let marking = this.suspecting.get(unreachable);
    if (!marking) {
      const mark = (current: LeaseObject | undefined) => {
        const r = current ? recordFromLease(current) : undefined;
        return current && r?.id === unreachable && !isSuspect(r) ? suspectedLease(current, this.now()) : undefined;
      };
      marking = this.mutate(u.name, mark).finally(() => this.suspecting.delete(unreachable));
      this.suspecting.set(unreachable, marking);
    }
    try {
      await marking;
      return this.assignment().pilotFor(key);
    } catch (err) {
      // The API server is unreachable: still send this sidecar elsewhere; others will mark it.
      this.opts.logger.warn('could not mark pilot unreachable on its Lease', { pilot: unreachable, error: (err as Error).message });
      const now = this.now();
      return this.assignment(now, (p) => (p.id === unreachable ? { ...p, unreachableAt: Math.max(now, p.renewTime + 1) } : p)).pilotFor(key);
    }
  }

  /**
   * What changed since the last call, as this replica sees it: pilots that joined or lapsed, and
   * workloads whose serving pilot changed (for logs and metrics only; nothing depends on it);
   * `keptLapsed`: the pilots kept though every Lease lapsed (see {@link LeaseAssignment.keptLapsed}).
   */
  observe(): { joined: string[]; lapsed: string[]; moves: Move[]; keptLapsed: string[] } {
    const a = this.assignment();
    const live = new Set(a.live.map((p) => p.id));
    const joined = [...live].filter((id) => !this.lastLive.has(id));
    const lapsed = [...this.lastLive].filter((id) => !live.has(id));
    const table = new Map(a.table().map((r) => [r.workload, r.pilot]));
    const moves: Move[] = [];
    for (const [w, to] of table) {
      const from = this.lastTable.get(w);
      if (from !== to && to) moves.push({ workload: w, from, to, reason: from === undefined ? 'adopted' : live.has(from) ? 'rebalance' : 'failover' });
    }
    this.lastLive = live;
    this.lastTable = table;
    return { joined, lapsed, moves, keptLapsed: a.keptLapsed ? [...live] : [] };
  }
}
