/**
 * Pilot membership kept in `coordination.k8s.io/v1` Leases, as pure functions: what a Lease says
 * about a pilot, whether it is alive, and which pilot serves a workload. Nothing here does I/O or
 * reads a clock, so every meta-server replica that sees the same Leases at the same time gives the
 * same answer — the assignment is a function of (ring over live pilots, their join times, their
 * suspicion marks, now), with no per-replica memory. `lease-membership.ts` does the Kubernetes I/O.
 */
import { HashRing, ringHash } from './ring.js';
import { workloadKey, type PilotRegistration, type SidecarRef } from './pilots.js';

/** Label on every pilot Lease the meta server writes; its informer selects on it. */
export const PILOT_LEASE_LABEL = 'mesh.octo.io/pilot-lease';
export const ANNOTATIONS = {
  xdsAddress: 'mesh.octo.io/xds-address',
  adminAddress: 'mesh.octo.io/admin-address',
  zone: 'mesh.octo.io/zone',
  /** JSON object `{"namespace/workload": sidecars}` from the pilot's last heartbeat. */
  workloads: 'mesh.octo.io/workloads',
  /** A sidecar reported the pilot unreachable at this time; suspect until a later renewTime. */
  unreachableAt: 'mesh.octo.io/unreachable-at',
} as const;

/** One pilot as its Lease records it. Times in epoch ms. */
export interface PilotLeaseRecord extends PilotRegistration {
  /** The Lease's name (not the pilot id: ids need not be valid object names). */
  name: string;
  /** spec.renewTime: the last heartbeat. */
  renewTime: number;
  /** spec.leaseDurationSeconds × 1000. */
  durationMs: number;
  /** spec.acquireTime: when this pilot (re)joined — the start of its rebalancing ramp. */
  joinedAt: number;
  /** A sidecar could not reach it at this time (annotation); suspect while after renewTime. */
  unreachableAt?: number;
  /** Sidecars connected to it per workload, from its last heartbeat. */
  workloads: Record<string, number>;
}

/** The subset of a V1Lease this module reads and writes (structurally compatible with the client's type). */
export interface LeaseObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: Date; renewTime?: Date; leaseTransitions?: number };
}

/**
 * A Lease name for an id: `<prefix>-<id>` when the id is a valid DNS label already (of at most 40
 * characters), else a sanitised form plus a hash of the id, so distinct ids never share a Lease.
 */
export function prefixedLeaseName(prefix: string, id: string): string {
  const clean = id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  if (clean === id && clean.length > 0) return `${prefix}-${clean}`;
  return `${prefix}-${clean ? `${clean}-` : ''}${ringHash(id).toString(16).padStart(16, '0').slice(0, 10)}`;
}

/** The Lease name for a pilot id: `pilot-<id>` (see {@link prefixedLeaseName}). */
export const leaseName = (pilotId: string): string => prefixedLeaseName('pilot', pilotId);

const time = (d: Date | string | undefined): number | undefined => {
  if (d === undefined) return undefined;
  const t = (d instanceof Date ? d : new Date(d)).getTime();
  return Number.isFinite(t) ? t : undefined;
};

/**
 * Reads a pilot Lease; undefined when it holds no pilot (released: holderIdentity empty, or not
 * ours/incomplete). A malformed workloads annotation counts as no workloads (it is informational).
 */
export function recordFromLease(l: LeaseObject): PilotLeaseRecord | undefined {
  const id = l.spec?.holderIdentity;
  const a = l.metadata?.annotations ?? {};
  const renewTime = time(l.spec?.renewTime);
  const xdsAddress = a[ANNOTATIONS.xdsAddress];
  if (!id || !l.metadata?.name || renewTime === undefined || !xdsAddress) return undefined;
  let workloads: Record<string, number> = {};
  try {
    const parsed = JSON.parse(a[ANNOTATIONS.workloads] ?? '{}') as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      workloads = Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number' && e[1] > 0));
  } catch {
    workloads = {};
  }
  const unreachableAt = time(a[ANNOTATIONS.unreachableAt]);
  return {
    name: l.metadata.name,
    id,
    xdsAddress,
    adminAddress: a[ANNOTATIONS.adminAddress] ?? '',
    zone: a[ANNOTATIONS.zone] ?? '',
    renewTime,
    durationMs: (l.spec?.leaseDurationSeconds ?? 0) * 1000,
    joinedAt: time(l.spec?.acquireTime) ?? renewTime,
    ...(unreachableAt === undefined ? {} : { unreachableAt }),
    workloads,
  };
}

/** The latest spec.renewTime among `leases` (held or released); undefined when none has one. */
export function latestRenewal(leases: readonly LeaseObject[]): number | undefined {
  let latest: number | undefined;
  for (const l of leases) {
    const t = time(l.spec?.renewTime);
    if (t !== undefined && (latest === undefined || t > latest)) latest = t;
  }
  return latest;
}

/** Alive: renewTime + leaseDurationSeconds has not passed. */
export const isLive = (p: PilotLeaseRecord, now: number): boolean => now <= p.renewTime + p.durationMs;
/** Reported unreachable by a sidecar since its last heartbeat. */
export const isSuspect = (p: PilotLeaseRecord): boolean => p.unreachableAt !== undefined && p.unreachableAt > p.renewTime;

/** Lease duration in whole seconds (the Lease's unit), at least the TTL asked for. */
export const leaseSeconds = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs / 1000));

/** `{"namespace/workload": sidecars}`, sorted, for the workloads annotation. */
export function workloadCounts(sidecars: readonly SidecarRef[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of sidecars) {
    const w = workloadKey(s.namespace, s.workload);
    out[w] = (out[w] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(out).sort(([x], [y]) => x.localeCompare(y)));
}

/**
 * The Lease a RegisterPilot writes, given the current one (if any). A pilot whose Lease is live
 * keeps its join time (re-registering is not re-joining); one whose Lease lapsed or was released
 * joins anew: acquireTime = now, leaseTransitions + 1, and its ramp starts over.
 */
export function registeredLease(current: LeaseObject | undefined, reg: PilotRegistration, namespace: string, ttlMs: number, now: number): LeaseObject {
  const prev = current ? recordFromLease(current) : undefined;
  const continuing = prev !== undefined && prev.id === reg.id && isLive(prev, now);
  const annotations: Record<string, string> = { ...(current?.metadata?.annotations ?? {}), [ANNOTATIONS.xdsAddress]: reg.xdsAddress };
  for (const [key, value] of [[ANNOTATIONS.adminAddress, reg.adminAddress], [ANNOTATIONS.zone, reg.zone]] as const)
    if (value) annotations[key] = value;
    else delete annotations[key];
  delete annotations[ANNOTATIONS.unreachableAt];
  if (!continuing) annotations[ANNOTATIONS.workloads] = '{}';
  return {
    metadata: {
      name: leaseName(reg.id),
      namespace,
      ...(current?.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}),
      labels: { ...(current?.metadata?.labels ?? {}), [PILOT_LEASE_LABEL]: 'true' },
      annotations,
    },
    spec: {
      holderIdentity: reg.id,
      leaseDurationSeconds: leaseSeconds(ttlMs),
      acquireTime: new Date(continuing ? prev.joinedAt : now),
      renewTime: new Date(now),
      leaseTransitions: (current?.spec?.leaseTransitions ?? -1) + (continuing ? 0 : 1),
    },
  };
}

/**
 * The Lease a PilotHeartbeat writes, or undefined when the pilot must register again (no Lease,
 * another holder, or it lapsed — a lapsed pilot rejoins with a new join time).
 */
export function renewedLease(current: LeaseObject | undefined, pilotId: string, sidecars: readonly SidecarRef[], ttlMs: number, now: number): LeaseObject | undefined {
  const prev = current ? recordFromLease(current) : undefined;
  if (!current || !prev || prev.id !== pilotId || !isLive(prev, now)) return undefined;
  const annotations: Record<string, string> = { ...(current.metadata?.annotations ?? {}), [ANNOTATIONS.workloads]: JSON.stringify(workloadCounts(sidecars)) };
  delete annotations[ANNOTATIONS.unreachableAt];
  return {
    metadata: { ...current.metadata, annotations },
    spec: { ...current.spec, leaseDurationSeconds: leaseSeconds(ttlMs), renewTime: new Date(Math.max(now, prev.renewTime)) },
  };
}

/** The Lease after a sidecar reported the pilot unreachable at `now`. */
export function suspectedLease(current: LeaseObject, now: number): LeaseObject {
  return { ...current, metadata: { ...current.metadata, annotations: { ...(current.metadata?.annotations ?? {}), [ANNOTATIONS.unreachableAt]: new Date(now).toISOString() } } };
}

/** The Lease a DeregisterPilot writes: released (no holder), which every replica reads as dead. */
export function releasedLease(current: LeaseObject, pilotId: string): LeaseObject | undefined {
  if (!current.spec || current.spec.holderIdentity !== pilotId) return undefined;
  const { holderIdentity: _h, ...spec } = current.spec;
  const annotations = { ...(current.metadata?.annotations ?? {}), [ANNOTATIONS.workloads]: '{}' };
  return { metadata: { ...current.metadata, annotations }, spec };
}

/** A position in [0, 1) for a workload on a joining pilot's ramp (stable across processes). */
export const rampPosition = (workload: string, pilot: string): number => Number(ringHash(`${workload}>${pilot}`) >> 11n) / 2 ** 53;

export interface AssignmentOptions {
  /** Over this long after joining, a pilot's share of its ring arc grows linearly from 0 to all of it. */
  rampMs: number;
  vnodes?: number;
  /**
   * The latest renewTime of any pilot Lease, released ones included (default: of `records`). A
   * pilot whose Lease had lapsed before it is not kept when every Lease has lapsed: one that
   * crashed before the others deregistered stays dead.
   */
  latestRenewal?: number;
}

/**
 * Which pilot serves which workload at `now`, from the pilots' Lease records alone.
 *
 * - Only live pilots count; a dead pilot's workloads go to their ring successors at once. When
 *   every Lease has lapsed, the pilots live at the latest renewal are kept ({@link keptLapsed}).
 * - A pilot reported unreachable (suspect) is skipped, unless every live pilot is.
 * - The pilot that joined first (earliest acquireTime, then id) takes its whole arc at once; any
 *   other pilot takes the part of its arc whose {@link rampPosition} is below its share, which
 *   grows linearly from 0 at its join to 1 after `rampMs`. A workload not yet taken stays where
 *   the ring without that pilot puts it. So a join moves about 1/N of the workloads, gradually,
 *   and only to the joining pilot; every replica computes the same moves at the same time.
 */
export class LeaseAssignment {
  readonly live: PilotLeaseRecord[];
  /** Every held Lease had lapsed: `live` is the pilots that were live at the last renewal anyone wrote ({@link AssignmentOptions.latestRenewal}). */
  readonly keptLapsed: boolean;
  private readonly byId: Map<string, PilotLeaseRecord>;
  private readonly suspects: Set<string>;
  private readonly shares: Map<string, number>;

  constructor(
    records: readonly PilotLeaseRecord[],
    readonly now: number,
    readonly opts: AssignmentOptions,
    readonly ring: HashRing = new HashRing([], opts.vnodes),
  ) {
    let live = records.filter((p) => isLive(p, now));
    // Every held Lease lapsed at once: the meta servers (or the API server) are likelier the ones
    // behind than every pilot dead — heartbeats are written through the meta servers, so an outage
    // of theirs lapses every Lease (the in-memory table's rule, `PilotTable.expire`). Answering
    // every Locate "no live pilot" would leave new sidecars with nothing; keep the pilots that were
    // live when the latest renewal was written (not Leases abandoned long before), until one renews.
    this.keptLapsed = live.length === 0 && records.length > 0;
    if (this.keptLapsed) {
      const latest = Math.max(opts.latestRenewal ?? -Infinity, ...records.map((p) => p.renewTime));
      live = records.filter((p) => isLive(p, latest));
    }
    this.live = live.sort((a, b) => a.id.localeCompare(b.id));
    this.byId = new Map(this.live.map((p) => [p.id, p]));
    const members = this.live.map((p) => p.id);
    if (members.join('\n') !== ring.members.join('\n')) this.ring = new HashRing(members, opts.vnodes);
    const suspects = this.live.filter(isSuspect).map((p) => p.id);
    this.suspects = new Set(suspects.length < this.live.length ? suspects : []);
    const first = [...this.live].sort((a, b) => a.joinedAt - b.joinedAt || a.id.localeCompare(b.id))[0];
    this.shares = new Map(this.live.map((p) => [p.id, p === first || opts.rampMs <= 0 ? 1 : Math.min(1, Math.max(0, (now - p.joinedAt) / opts.rampMs))]));
  }

  /** 0..1: how much of its ring arc a pilot has taken over so far. */
  share(pilotId: string): number {
    return this.shares.get(pilotId) ?? 0;
  }

  get(pilotId: string): PilotLeaseRecord | undefined {
    return this.byId.get(pilotId);
  }

  /** The pilot serving `namespace/workload` now; undefined when no pilot is live. */
  pilotFor(key: string): PilotLeaseRecord | undefined {
    const skip = new Set(this.suspects);
    for (;;) {
      const owner = this.ring.lookup(key, skip);
      if (owner === undefined) break;
      const share = this.share(owner);
      if (share >= 1 || rampPosition(key, owner) < share) return this.byId.get(owner);
      skip.add(owner);
    }
    // Only ramping (or suspect) pilots left: the ring owner among the non-suspect ones.
    const owner = this.ring.lookup(key, this.suspects) ?? this.ring.lookup(key);
    return owner === undefined ? undefined : this.byId.get(owner);
  }

  /** The node ids among a pilot's sidecars whose workload another pilot serves now. */
  shed(pilotId: string, sidecars: readonly SidecarRef[]): string[] {
    return sidecars.filter((s) => this.pilotFor(workloadKey(s.namespace, s.workload))?.id !== pilotId).map((s) => s.nodeId);
  }

  /** Every workload the live pilots report, with the pilot serving it now and where it is connected. */
  table(): { workload: string; pilot: string; connectedTo: string[] }[] {
    const connected = new Map<string, string[]>();
    for (const p of this.live) for (const w of Object.keys(p.workloads)) connected.set(w, [...(connected.get(w) ?? []), p.id]);
    return [...connected.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([workload, on]) => ({ workload, pilot: this.pilotFor(workload)?.id ?? '', connectedTo: on }));
  }

  /** Reported workloads with sidecars on a pilot other than the one serving them now (still to move). */
  pendingMoves(): number {
    return this.table().filter((r) => r.connectedTo.some((p) => p !== r.pilot)).length;
  }
}
