/**
 * Health-checker membership kept in `coordination.k8s.io/v1` Leases (Kubernetes mode), as pure
 * functions with the time passed in: what a Lease says about a checker, whether it is live, and
 * what a CheckerHeartbeat or DeregisterChecker writes. Every meta-server replica that sees the same
 * Leases at the same time answers the same live list, so two checker replicas heartbeating to
 * different meta-server replicas build the same ring. `checker-membership.ts` does the I/O;
 * `checkers.ts` is the in-memory directory of the embedded mode.
 */
import { prefixedLeaseName, leaseSeconds, type LeaseObject } from './lease-assign.js';

/** Label on every checker Lease the meta server writes (value `true`); its informer selects on it. */
export const CHECKER_LEASE_LABEL = 'mesh.octo.io/checker-lease';
/** host:port of the checker's admin endpoint, from its heartbeat. */
export const CHECKER_ADMIN_ANNOTATION = 'mesh.octo.io/admin-address';

/** One checker as its Lease records it. Times in epoch ms. */
export interface CheckerLeaseRecord {
  /** The Lease's name (not the checker id: ids need not be valid object names). */
  name: string;
  id: string;
  adminAddress: string;
  /** spec.renewTime: the last heartbeat. */
  renewTime: number;
  /** spec.leaseDurationSeconds × 1000. */
  durationMs: number;
  /** spec.acquireTime: when it (re)joined. */
  joinedAt: number;
}

/** The Lease name for a checker id: `checker-<id>`, sanitised plus a hash when the id is not a DNS label. */
export const checkerLeaseName = (checkerId: string): string => prefixedLeaseName('checker', checkerId);

const time = (d: Date | string | undefined): number | undefined => {
  if (d === undefined) return undefined;
  const t = (d instanceof Date ? d : new Date(d)).getTime();
  return Number.isFinite(t) ? t : undefined;
};

/** Reads a checker Lease; undefined when it holds no checker (released: no holder, or incomplete). */
export function checkerFromLease(l: LeaseObject): CheckerLeaseRecord | undefined {
  const id = l.spec?.holderIdentity;
  const renewTime = time(l.spec?.renewTime);
  if (!id || !l.metadata?.name || renewTime === undefined) return undefined;
  return {
    name: l.metadata.name,
    id,
    adminAddress: l.metadata.annotations?.[CHECKER_ADMIN_ANNOTATION] ?? '',
    renewTime,
    durationMs: (l.spec?.leaseDurationSeconds ?? 0) * 1000,
    joinedAt: time(l.spec?.acquireTime) ?? renewTime,
  };
}

/** Live: renewTime + leaseDurationSeconds has not passed (the same rule as for pilots). */
export const isCheckerLive = (c: CheckerLeaseRecord, now: number): boolean => now <= c.renewTime + c.durationMs;

/** The live checkers among the Leases, sorted by id (the order CheckerLease.live_checkers promises). */
export function liveCheckers(leases: readonly LeaseObject[], now: number): CheckerLeaseRecord[] {
  const byId = new Map<string, CheckerLeaseRecord>();
  for (const l of leases) {
    const c = checkerFromLease(l);
    if (!c || !isCheckerLive(c, now)) continue;
    // Two Leases naming one holder (written by hand): the fresher counts.
    const seen = byId.get(c.id);
    if (!seen || seen.renewTime < c.renewTime) byId.set(c.id, c);
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The Lease a CheckerHeartbeat writes, given the current one (if any), and whether the checker
 * joins with it. Heartbeating is both joining and renewing: a checker whose Lease is live keeps
 * its join time; one whose Lease lapsed, was released, or is absent (re)joins — acquireTime = now,
 * leaseTransitions + 1. A lapsed Lease is reused, never deleted. renewTime never goes backwards
 * (another replica's clock may be ahead).
 */
export function heartbeatCheckerLease(
  current: LeaseObject | undefined,
  checkerId: string,
  adminAddress: string,
  namespace: string,
  ttlMs: number,
  now: number,
): { lease: LeaseObject; joined: boolean } {
  const prev = current ? checkerFromLease(current) : undefined;
  const continuing = prev !== undefined && prev.id === checkerId && isCheckerLive(prev, now);
  const annotations: Record<string, string> = { ...(current?.metadata?.annotations ?? {}) };
  if (adminAddress) annotations[CHECKER_ADMIN_ANNOTATION] = adminAddress;
  else delete annotations[CHECKER_ADMIN_ANNOTATION];
  return {
    joined: !continuing,
    lease: {
      metadata: {
        name: checkerLeaseName(checkerId),
        namespace,
        ...(current?.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}),
        labels: { ...(current?.metadata?.labels ?? {}), [CHECKER_LEASE_LABEL]: 'true' },
        annotations,
      },
      spec: {
        holderIdentity: checkerId,
        leaseDurationSeconds: leaseSeconds(ttlMs),
        acquireTime: new Date(continuing ? prev.joinedAt : now),
        renewTime: new Date(continuing ? Math.max(now, prev.renewTime) : now),
        leaseTransitions: (current?.spec?.leaseTransitions ?? -1) + (continuing ? 0 : 1),
      },
    },
  };
}

/**
 * The Lease a DeregisterChecker writes: released (no holder), which every replica reads as not
 * live at once; undefined when there is nothing to release (absent, released, or another holder).
 */
export function releasedCheckerLease(current: LeaseObject | undefined, checkerId: string): LeaseObject | undefined {
  if (!current?.spec || current.spec.holderIdentity !== checkerId) return undefined;
  const { holderIdentity: _h, ...spec } = current.spec;
  return { metadata: { ...current.metadata }, spec };
}

/** Who joined and who left between two looks at the live list (for logs only). */
export function checkerChanges(before: ReadonlySet<string>, live: readonly string[]): { joined: string[]; left: string[] } {
  const now = new Set(live);
  return { joined: live.filter((id) => !before.has(id)), left: [...before].filter((id) => !now.has(id)).sort() };
}
