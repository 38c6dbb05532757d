/**
 * The Kubernetes I/O of Lease-backed pilot membership: an informer on the pilot Leases of one
 * namespace, and writes (create / replace with resourceVersion, a conflict re-read and retried).
 * What to write and who serves whom is decided by the pure functions in `lease-assign.ts`.
 */
import { ApiException, CoordinationV1Api, V1MicroTime, makeInformer, type Informer, type KubeConfig, type ObjectCache, type V1Lease } from '@kubernetes/client-node';
import { Restarter, UnavailableError, recordError, sleep, type Logger } from '@octo-mesh/runtime';
import {
  LeaseAssignment,
  PILOT_LEASE_LABEL,
  isSuspect,
  leaseName,
  recordFromLease,
  registeredLease,
  releasedLease,
  renewedLease,
  suspectedLease,
  type LeaseObject,
  type PilotLeaseRecord,
} from './lease-assign.js';
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

const toKube = (l: LeaseObject): V1Lease => {
  const micro = (d: Date | undefined) => (d === undefined ? undefined : new V1MicroTime(d.getTime()));
  const { acquireTime, renewTime, ...spec } = l.spec ?? {};
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: l.metadata ?? {},
    spec: { ...spec, ...(acquireTime ? { acquireTime: micro(acquireTime)! } : {}), ...(renewTime ? { renewTime: micro(renewTime)! } : {}) },
  };
};

const fromKube = (l: V1Lease): LeaseObject => {
  const date = (d: Date | string | undefined) => (d === undefined ? undefined : new Date(d));
  const { acquireTime, renewTime, ...spec } = l.spec ?? {};
  const a = date(acquireTime);
  const r = date(renewTime);
  return {
    metadata: { ...(l.metadata as LeaseObject['metadata']) },
    spec: { ...spec, ...(a ? { acquireTime: a } : {}), ...(r ? { renewTime: r } : {}) },
  };
};

/** An API server failure as the error the gRPC edge maps to UNAVAILABLE, naming the Lease and the cause. */
function unavailable(what: string, err: unknown): Error {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined;
    const message = typeof body === 'object' && body?.message ? body.message : String(body ?? err.message);
    const hint = err.code === 403 ? ' (the meta server needs get, list, watch, create, update on leases.coordination.k8s.io in this namespace)' : '';
    return new UnavailableError(`${what}: HTTP ${err.code} ${message}${hint}`);
  }
  return new UnavailableError(`${what}: ${(err as Error).message}`);
}

const rvNumber = (rv: string | undefined): bigint | undefined => (rv && /^\d+$/.test(rv) ? BigInt(rv) : undefined);

/**
 * Pilot membership for any number of meta-server replicas: each RegisterPilot / PilotHeartbeat /
 * DeregisterPilot writes the pilot's Lease, every replica watches all of them, and Locate is
 * answered from what the Leases say at the time of the call ({@link LeaseAssignment}). No replica
 * keeps state another would need.
 */
export class LeasePilots {
  private readonly api: CoordinationV1Api;
  private informer: (Informer<V1Lease> & ObjectCache<V1Lease>) | undefined;
  /** Leases this replica wrote that its informer has not delivered yet (read-your-writes). */
  private readonly written = new Map<string, LeaseObject>();
  private ring: HashRing;
  private readonly now: () => number;
  private stopped = false;
  private restarter: Restarter | undefined;
  private lastTable = new Map<string, string>();
  private lastLive = new Set<string>();
  /** Unreachable marks being written, per pilot: a failover burst of Locates writes each once. */
  private readonly suspecting = new Map<string, Promise<unknown>>();
  /** Writes to one Lease from this replica run one at a time (only other replicas can conflict). */
  private readonly queues = new Map<string, Promise<unknown>>();
  synced = false;

  constructor(private readonly opts: LeasePilotsOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.now = opts.now ?? Date.now;
    this.ring = new HashRing([], opts.vnodes);
  }

  async start(): Promise<void> {
    const { namespace, logger } = this.opts;
    const selector = `${PILOT_LEASE_LABEL}=true`;
    const inf = makeInformer<V1Lease>(
      this.opts.kubeConfig,
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      () => this.api.listNamespacedLease({ namespace, labelSelector: selector }),
      selector,
    );
    const seen = (l: V1Lease) => {
      const name = l.metadata?.name ?? '';
      const mine = this.written.get(name);
      const a = rvNumber(l.metadata?.resourceVersion);
      const b = rvNumber(mine?.metadata?.resourceVersion);
      if (mine && (a === undefined || b === undefined || a >= b)) this.written.delete(name);
    };
    inf.on('add', seen);
    inf.on('update', seen);
    inf.on('delete', (l) => this.written.delete(l.metadata?.name ?? ''));
    // Restarted with backoff and jitter; while it stays down the assignments are computed from
    // stale Leases, so readiness says so (health()).
    this.restarter = new Restarter({ name: `pilot lease informer (${namespace})`, start: () => inf.start(), logger, onFailure: (err) => recordError(undefined, 'lease informer', err) });
    inf.on('error', (err) => {
      if (!this.stopped) this.restarter?.failed(err);
    });
    this.informer = inf;
    await inf.start();
    this.synced = true;
  }

  /** A readiness check: true, or why the Leases seen are going stale (informer down past `graceMs`). */
  health(graceMs = 5000): true | string {
    return this.restarter?.health(graceMs) ?? true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.restarter?.stop();
    await this.informer?.stop();
  }

  private cached(name: string): LeaseObject | undefined {
    const mine = this.written.get(name);
    if (mine) return mine;
    const l = this.informer?.get(name, this.opts.namespace);
    return l ? fromKube(l) : undefined;
  }

  /** Every pilot Lease as this replica sees it now. */
  records(): PilotLeaseRecord[] {
    const byName = new Map<string, LeaseObject>();
    for (const l of this.informer?.list(this.opts.namespace) ?? []) byName.set(l.metadata?.name ?? '', fromKube(l));
    for (const [name, l] of this.written) byName.set(name, l);
    return [...byName.values()].flatMap((l) => recordFromLease(l) ?? []);
  }

  /** Who serves whom at `now`, from the Leases alone (same answer on every replica). */
  assignment(now = this.now(), override?: (p: PilotLeaseRecord) => PilotLeaseRecord): LeaseAssignment {
    const records = override ? this.records().map(override) : this.records();
    const a = new LeaseAssignment(records, now, { rampMs: this.opts.rampMs, ...(this.opts.vnodes ? { vnodes: this.opts.vnodes } : {}) }, this.ring);
    this.ring = a.ring;
    return a;
  }

  private async read(name: string): Promise<LeaseObject | undefined> {
    try {
      return fromKube(await this.api.readNamespacedLease({ name, namespace: this.opts.namespace }));
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw unavailable(`reading lease ${this.opts.namespace}/${name}`, err);
    }
  }

  /**
   * Writes `change(current)` to the Lease: create when absent, replace with its resourceVersion
   * when present. A conflict (or a decision taken on a cached copy that may be stale) re-reads the
   * Lease from the API server and decides again. Undefined when `change` declines.
   */
  private mutate(name: string, change: (current: LeaseObject | undefined) => LeaseObject | undefined): Promise<LeaseObject | undefined> {
    const run = (this.queues.get(name) ?? Promise.resolve()).then(
      () => this.write(name, change),
      () => this.write(name, change),
    );
    const tail = run.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return run;
  }

  private async write(name: string, change: (current: LeaseObject | undefined) => LeaseObject | undefined): Promise<LeaseObject | undefined> {
    const namespace = this.opts.namespace;
    let current = this.cached(name);
    let fresh = false;
    for (let attempt = 0; attempt < 8; attempt++) {
      const next = change(current);
      if (!next) {
        if (fresh) return undefined;
        current = await this.read(name);
        fresh = true;
        continue;
      }
      try {
        const rv = current?.metadata?.resourceVersion;
        const body = toKube({ ...next, metadata: { ...next.metadata, name, namespace, ...(rv ? { resourceVersion: rv } : { resourceVersion: undefined }) } });
        if (!rv) delete body.metadata!.resourceVersion;
        const out = fromKube(rv ? await this.api.replaceNamespacedLease({ name, namespace, body }) : await this.api.createNamespacedLease({ namespace, body }));
        this.written.set(name, out);
        return out;
      } catch (err) {
        if (!(err instanceof ApiException) || (err.code !== 409 && err.code !== 404)) throw unavailable(`writing lease ${namespace}/${name}`, err);
        if (attempt > 0) await sleep(Math.random() * 20 * 2 ** attempt); // another replica keeps winning: back off, jittered
        current = await this.read(name);
        fresh = true;
      }
    }
    throw new UnavailableError(`lease ${namespace}/${name}: still conflicting after 8 attempts`);
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
   * workloads whose serving pilot changed (for logs and metrics only; nothing depends on it).
   */
  observe(): { joined: string[]; lapsed: string[]; moves: Move[] } {
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
    return { joined, lapsed, moves };
  }
}
