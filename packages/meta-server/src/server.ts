import { status, type sendUnaryData, type ServiceError } from '@grpc/grpc-js';
import { DispatcherConnection, SOURCE_ANNOTATION, uriSan, type MeshTls } from '@octo-mesh/clients';
import type { MeshResource } from '@octo-mesh/api';
import { spiffeIdOrError, type MetaPilotView, type MetaSidecarView } from '@octo-mesh/contracts';
import { MetaServerService, ServiceRegistryService, type MetaServerServer, type ServiceRegistryServer } from '@octo-mesh/proto';
import { Backoff, Counter, ForbiddenError, Gauge, NotFoundError, UnavailableError, ValidationError, grpcStatusOf, isNotFound, recordError, sleep, type Logger, type Registry } from '@octo-mesh/runtime';
import type { LeaseCheckers } from './checker-membership.js';
import type { LeasePilots } from './lease-membership.js';
import { isSuspect } from './lease-assign.js';
import { PilotDirectory, StallLog, stallOf, workloadKey, type Move } from './pilots.js';
import { InstanceRegistry, type ServiceKey } from './registry.js';
import { CheckerDirectory } from './checkers.js';

export interface MetaServerOptions {
  logger: Logger;
  registry: Registry;
  pilotTtlMs: number;
  heartbeatIntervalMs: number;
  /** Sidecars moved per second at most when rebalancing after a pilot joins. */
  maxMovesPerSecond: number;
  vnodes?: number;
  instanceTtlMs: number;
  /** Where registry instances are published; none: the registry is kept but not published. */
  dispatcherAddress?: string;
  /**
   * Kubernetes mode: pilot membership lives in Leases (started by the caller), so any replica
   * answers; `pilots` (the in-memory directory) is then unused.
   */
  leases?: LeasePilots;
  /**
   * Kubernetes mode: health-checker membership lives in Leases (started by the caller), so every
   * replica answers CheckerHeartbeat with the same live list; `checkers` is then unused.
   */
  checkerLeases?: LeaseCheckers;
  /**
   * After a start, how long instances get to register again before anything is published
   * (default `instanceTtlMs`): a restarted meta server knows no instance yet, and publishing the
   * first one to return as a service's only endpoint would send all its traffic there, or none.
   * Until then the dispatcher keeps what the previous run published.
   */
  registrationGraceMs?: number;
  /** mTLS (see packages/identity/README.md): to the dispatcher, and whose calls the server checks. */
  tls?: MeshTls;
  now?: () => number;
}

/** Marks the objects the registry publishes, so a restarted meta server can find and retire its own. */
export const REGISTRY_SOURCE = 'registry';

/** A sidecar as last seen by Locate, for the debug API and octoctl. */
export interface SidecarRecord {
  nodeId: string;
  namespace: string;
  workload: string;
  pilot: string;
  locatedAt: string;
  /** The pilot it reports being connected to (from that pilot's heartbeat), if any. */
  connectedTo?: string;
}

/** The object marked as the registry's (see {@link REGISTRY_SOURCE}). */
function owned<T extends MeshResource>(o: T): T {
  return { ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [SOURCE_ANNOTATION]: REGISTRY_SOURCE } } };
}

function fail(cb: sendUnaryData<never>, err: unknown): void {
  cb(Object.assign(new Error((err as Error).message), { code: grpcStatusOf(err), details: (err as Error).message }) as ServiceError, null);
}

const required = (fields: Record<string, string>) => {
  const missing = Object.entries(fields).filter(([, v]) => !v);
  if (missing.length) throw new ValidationError('request', missing.map(([path]) => ({ path, message: 'required' })));
};

/**
 * The meta server's behaviour around the pure {@link PilotDirectory} and {@link InstanceRegistry}:
 * the clock, the lease-expiry and rebalancing ticks, metrics, and publishing registry instances to
 * the dispatcher (level-triggered: dirty services are retried until published, and everything is
 * republished periodically, so a restarted dispatcher is refilled).
 */
export class MetaServer {
  readonly pilots: PilotDirectory;
  readonly instances: InstanceRegistry;
  /** Health-checker replicas (membership only; they shard services among themselves). */
  readonly checkers: CheckerDirectory;
  private readonly sidecars = new Map<string, SidecarRecord>();
  private readonly now: () => number;
  private timers: NodeJS.Timeout[] = [];
  private readonly dirty = new Set<ServiceKey>();
  private readonly published = new Set<ServiceKey>();
  private readonly publishedWorkloads = new Set<string>();
  private dispatcher: DispatcherConnection | undefined;
  private publishing: Promise<void> | undefined;
  private stopped = false;
  private lastSweep: number;
  /** Stalls not charged to leases: every one since a lease's last heartbeat, not only the latest sweep's. */
  private readonly stallLog: StallLog;
  /** Every pilot Lease had lapsed at the last sweep and the assignment kept them (logged once per episode). */
  private leasesKept = false;
  private readonly startedAt: number;
  private publishFailingSince: number | undefined;
  private lastPublishError = '';
  private readonly publishBackoff = new Backoff({ initialMs: 100, maxMs: 5000, jitter: 0.5 });
  private readonly moves: Counter;
  private readonly stalls: Counter;
  private readonly locates: Counter;

  constructor(private readonly opts: MetaServerOptions) {
    this.now = opts.now ?? Date.now;
    this.lastSweep = this.now();
    this.stallLog = new StallLog(Math.max(60_000, 10 * opts.pilotTtlMs));
    this.startedAt = this.now();
    this.pilots = new PilotDirectory({ ttlMs: opts.pilotTtlMs, ...(opts.vnodes ? { vnodes: opts.vnodes } : {}) });
    this.checkers = new CheckerDirectory(opts.pilotTtlMs);
    this.instances = new InstanceRegistry({ defaultTtlMs: opts.instanceTtlMs, maxTtlMs: opts.instanceTtlMs * 10 });
    if (opts.dispatcherAddress) this.dispatcher = new DispatcherConnection(opts.dispatcherAddress, opts.tls);
    const r = [opts.registry];
    this.stalls = new Counter({ name: 'octo_meta_stalls_total', help: 'Sweeps that ran late because the meta server did not run (CPU starvation, a long GC); the stall is not charged to the leases.', registers: r });
    this.moves = new Counter({ name: 'octo_meta_workload_moves_total', help: 'Workloads assigned to a (new) pilot, by reason.', labelNames: ['reason'], registers: r });
    this.locates = new Counter({ name: 'octo_meta_locate_total', help: 'Locate calls, by result.', labelNames: ['result'], registers: r });
    const pilots = this.pilots;
    const leases = opts.leases;
    const instances = this.instances;
    const now = this.now;
    new Gauge({
      name: 'octo_meta_pilots',
      help: 'Live pilots (suspect: reported unreachable by a sidecar since their last heartbeat).',
      labelNames: ['state'],
      registers: r,
      collect() {
        const all = leases ? leases.assignment().live.map((p) => ({ suspect: isSuspect(p) })) : pilots.list();
        this.set({ state: 'live' }, all.filter((p) => !p.suspect).length);
        this.set({ state: 'suspect' }, all.filter((p) => p.suspect).length);
      },
    });
    new Gauge({
      name: 'octo_meta_pilot_sidecars',
      help: 'Sidecars connected to each pilot, from its heartbeats.',
      labelNames: ['pilot'],
      registers: r,
      collect() {
        this.reset();
        if (leases) for (const p of leases.assignment().live) this.set({ pilot: p.id }, Object.values(p.workloads).reduce((a, b) => a + b, 0));
        else for (const p of pilots.list()) this.set({ pilot: p.id }, p.sidecars.length);
      },
    });
    new Gauge({
      name: 'octo_meta_pending_moves',
      help: 'Workloads not yet on their ring owner (rebalancing).',
      registers: r,
      collect() {
        this.set(leases ? leases.assignment().pendingMoves() : pilots.pendingMoves());
      },
    });
    const checkers = this.checkers;
    const checkerLeases = opts.checkerLeases;
    new Gauge({
      name: 'octo_meta_checkers',
      help: 'Live health-checker replicas.',
      registers: r,
      collect() {
        this.set(checkerLeases ? checkerLeases.live().length : checkers.live(now()).length);
      },
    });
    new Gauge({ name: 'octo_meta_registry_instances', help: 'Registered instances of workloads outside Kubernetes.', registers: r, collect() { this.set(instances.list(now()).length); } });
  }

  start(): void {
    this.timers.push(setInterval(() => this.tick(), this.tickMs()));
    this.timers.push(setInterval(() => this.rebalanceTick(), 1000));
    this.timers.push(setInterval(() => this.republishAll(), 5000));
    const grace = this.opts.registrationGraceMs ?? this.opts.instanceTtlMs;
    this.timers.push(setTimeout(() => void this.adoptPublished().finally(() => this.republishAll()), grace));
  }

  private inGrace(): boolean {
    return this.now() - this.startedAt < (this.opts.registrationGraceMs ?? this.opts.instanceTtlMs);
  }

  /**
   * After the grace period: what an earlier run published (marked {@link REGISTRY_SOURCE}) is ours
   * to keep current — republished when its instances came back, deleted when they did not.
   */
  private async adoptPublished(): Promise<void> {
    const d = this.dispatcher;
    if (!d || this.stopped) return;
    try {
      for (const kind of ['Service', 'Workload'] as const) {
        for (const o of (await d.list(kind)).items) {
          if (o.metadata.annotations?.[SOURCE_ANNOTATION] !== REGISTRY_SOURCE) continue;
          const key = `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
          if (kind === 'Service') this.published.add(key);
          else this.publishedWorkloads.add(key);
        }
      }
    } catch (err) {
      recordError(this.opts.logger, 'listing what the registry published before', err);
    }
  }

  /** A readiness check: the dispatcher takes what the registry publishes (or has failed for less than 5 s). */
  dispatcherHealth(): true | string {
    if (this.publishFailingSince === undefined || this.now() - this.publishFailingSince < 5000) return true;
    return `publishing to the dispatcher failing for ${Math.round((this.now() - this.publishFailingSince) / 1000)} s: ${this.lastPublishError}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.publishing;
    this.dispatcher?.close();
  }

  private record(moves: Move[]): void {
    for (const m of moves) {
      this.moves.inc({ reason: m.reason });
      this.opts.logger.info('workload assigned', { workload: m.workload, from: m.from, to: m.to, reason: m.reason });
    }
  }

  private tickMs(): number {
    return Math.max(100, Math.floor(this.opts.heartbeatIntervalMs / 2));
  }

  private tick(): void {
    const now = this.now();
    // Time this process did not run is not charged to the leases it keeps (stallOf).
    const stalled = stallOf(this.lastSweep, now, this.tickMs());
    this.stallLog.record(now, stalled);
    const stalledSince = (t: number) => this.stallLog.since(t);
    if (stalled > this.tickMs()) {
      this.stalls.inc();
      this.opts.logger.warn('meta server stalled; leases are not charged for the stall', { stalledMs: stalled });
    }
    if (this.opts.checkerLeases) {
      const seen = this.opts.checkerLeases.observe();
      for (const id of seen.joined) this.opts.logger.info('health checker live', { checker: id });
      for (const id of seen.left) this.opts.logger.warn('health checker lease lapsed or released; its services move', { checker: id });
    } else for (const id of this.checkers.sweep(now, stalledSince)) this.opts.logger.warn('health checker lease lapsed; its services move', { checker: id });
    if (this.opts.leases) {
      const keptBefore = this.leasesKept;
      const seen = this.opts.leases.observe();
      this.leasesKept = seen.keptLapsed.length > 0;
      if (this.leasesKept && !keptBefore) this.opts.logger.warn('every pilot Lease lapsed at once; keeping the pilots live at the latest renewal until one renews (the meta servers or the API server are likelier behind than every pilot dead)', { pilots: seen.keptLapsed });
      for (const id of seen.joined) this.opts.logger.info('pilot live', { pilot: id });
      for (const id of seen.lapsed) this.opts.logger.warn('pilot lease lapsed or released; its sidecars move', { pilot: id });
      this.record(seen.moves);
      for (const [id, s] of this.sidecars) if (now - Date.parse(s.locatedAt) > 600_000) this.sidecars.delete(id);
      for (const s of this.instances.sweep(this.lastSweep, now)) this.markDirty(s);
      this.lastSweep = now;
      return;
    }
    // Forget sidecars no pilot has reported for ten minutes (they went away, or never connected).
    const connected = new Set(this.pilots.list().flatMap((p) => p.sidecars.map((s) => s.nodeId)));
    for (const [id, s] of this.sidecars) if (!connected.has(id) && now - Date.parse(s.locatedAt) > 600_000) this.sidecars.delete(id);
    const keptBefore = this.pilots.kept.length;
    for (const id of this.pilots.expire(now, stalledSince)) this.opts.logger.warn('pilot lease lapsed; its sidecars move', { pilot: id });
    if (this.pilots.kept.length && !keptBefore) this.opts.logger.warn('every pilot lease lapsed at once; keeping them until one is heard from (the meta server is likelier behind than every pilot dead)', { pilots: this.pilots.kept });
    for (const s of this.instances.sweep(this.lastSweep, now)) this.markDirty(s);
    this.lastSweep = now;
  }

  private rebalanceTick(): void {
    if (this.opts.leases) return; // assignments are a function of the Leases and the time
    this.record(this.pilots.rebalance(this.opts.maxMovesPerSecond));
  }

  /** A service changed: it, and the workloads of the registry, are to be (re)published. */
  private markDirty(s: ServiceKey): void {
    this.dirty.add(`svc:${s}`);
    for (const w of [...this.instances.workloadKeys(), ...this.publishedWorkloads]) this.dirty.add(`wl:${w}`);
    if (!this.inGrace()) this.publishing ??= this.publish().finally(() => (this.publishing = undefined));
  }

  private republishAll(): void {
    for (const i of this.instances.list(this.now())) this.dirty.add(`svc:${i.namespace}/${i.service}`);
    for (const s of this.published) this.dirty.add(`svc:${s}`);
    for (const w of [...this.instances.workloadKeys(), ...this.publishedWorkloads]) this.dirty.add(`wl:${w}`);
    if (this.dirty.size && !this.inGrace()) this.publishing ??= this.publish().finally(() => (this.publishing = undefined));
  }

  /** Drains the dirty set into the dispatcher, retrying failed entries with backoff. */
  private async publish(): Promise<void> {
    const d = this.dispatcher;
    const absent = (e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e));
    while (d && this.dirty.size && !this.stopped) {
      const entry = [...this.dirty][0]!;
      this.dirty.delete(entry);
      const key = entry.slice(entry.indexOf(':') + 1);
      try {
        if (entry.startsWith('wl:')) {
          const w = this.instances.workload(key);
          if (w) {
            await d.apply(owned(w));
            this.publishedWorkloads.add(key);
          } else {
            await d.delete('Workload', key).catch(absent);
            this.publishedWorkloads.delete(key);
          }
        } else {
          const res = this.instances.resources(key, this.now());
          if (res) {
            await d.apply(owned(res.service));
            await d.apply(owned(res.endpoints));
            this.published.add(key);
          } else {
            for (const kind of ['ServiceEndpoints', 'Service'] as const) await d.delete(kind, key).catch(absent);
            this.published.delete(key);
          }
        }
        this.publishBackoff.reset();
        this.publishFailingSince = undefined;
      } catch (err) {
        this.dirty.add(entry);
        this.publishFailingSince ??= this.now();
        this.lastPublishError = (err as Error).message;
        recordError(this.opts.logger, 'publishing to the dispatcher', err, { what: entry });
        await sleep(this.publishBackoff.next());
      }
    }
  }

  /** Sidecars as last located, with the pilot each is connected to per heartbeats. */
  sidecarTable(): SidecarRecord[] {
    if (this.opts.leases) {
      // Leases record workloads per pilot, not node ids: a sidecar counts as connected to a pilot
      // that reports its workload (the one serving it, if that one does).
      const a = this.opts.leases.assignment();
      const rows = a.table();
      const on = new Map(rows.map((r) => [r.workload, r]));
      return [...this.sidecars.values()]
        .map((s) => {
          const w = workloadKey(s.namespace, s.workload);
          const row = on.get(w);
          const pilot = a.pilotFor(w)?.id ?? '';
          const connectedTo = row ? (row.connectedTo.includes(pilot) ? pilot : row.connectedTo[0]) : undefined;
          return { ...s, pilot, ...(connectedTo ? { connectedTo } : {}) };
        })
        .sort((x, y) => x.nodeId.localeCompare(y.nodeId));
    }
    const connected = new Map<string, string>();
    for (const p of this.pilots.list()) for (const s of p.sidecars) connected.set(s.nodeId, p.id);
    const out = new Map<string, SidecarRecord>();
    for (const s of this.sidecars.values()) out.set(s.nodeId, { ...s, ...(connected.has(s.nodeId) ? { connectedTo: connected.get(s.nodeId)! } : {}) });
    for (const p of this.pilots.list())
      for (const s of p.sidecars)
        if (!out.has(s.nodeId)) out.set(s.nodeId, { nodeId: s.nodeId, namespace: s.namespace, workload: s.workload, pilot: this.pilots.assignmentOf(s.namespace, s.workload) ?? '', locatedAt: '', connectedTo: p.id });
    return [...out.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  /** The debug API (served on the admin port): pilots, assignments, sidecars, registry. */
  private checkerTable() {
    const iso = (t: number) => new Date(t).toISOString();
    if (this.opts.checkerLeases) return this.opts.checkerLeases.live().map((c) => ({ id: c.id, adminAddress: c.adminAddress, lastHeartbeat: iso(c.renewTime), joinedAt: iso(c.joinedAt) }));
    return this.checkers.live(this.now()).map((c) => ({ id: c.id, adminAddress: c.adminAddress, lastHeartbeat: iso(c.lastHeartbeat), joinedAt: iso(c.joinedAt) }));
  }

  debugRoutes(): Record<string, () => unknown> {
    const leases = this.opts.leases;
    if (leases)
      return {
        '/debug/pilots': (): MetaPilotView[] => {
          const a = leases.assignment();
          return a.live.map((p) => ({
            ...p,
            renewTime: new Date(p.renewTime).toISOString(),
            joinedAt: new Date(p.joinedAt).toISOString(),
            // The names the in-memory mode uses (octoctl status reads them).
            lastHeartbeat: new Date(p.renewTime).toISOString(),
            registeredAt: new Date(p.joinedAt).toISOString(),
            suspect: isSuspect(p),
            share: a.share(p.id),
            sidecars: Object.values(p.workloads).reduce((x, y) => x + y, 0),
          }));
        },
        '/debug/assignments': () => {
          const a = leases.assignment();
          return { workloads: Object.fromEntries(a.table().map((r) => [r.workload, r.pilot])), pendingMoves: a.pendingMoves() };
        },
        '/debug/sidecars': (): MetaSidecarView[] => this.sidecarTable(),
        '/debug/registry': () => this.instances.list(this.now()),
        '/debug/checkers': () => this.checkerTable(),
      };
    return {
      '/debug/pilots': (): MetaPilotView[] =>
        this.pilots.list().map((p) => ({ ...p, sidecars: p.sidecars.length, lastHeartbeat: new Date(p.lastHeartbeat).toISOString(), registeredAt: new Date(p.registeredAt).toISOString() })),
      '/debug/assignments': () => ({ workloads: this.pilots.assignmentTable(), pendingMoves: this.pilots.pendingMoves() }),
      '/debug/sidecars': (): MetaSidecarView[] => this.sidecarTable(),
      '/debug/registry': () => this.instances.list(this.now()),
      '/debug/checkers': () => this.checkerTable(),
    };
  }

  /** Whether a pilot is live (for readiness). */
  hasPilots(): boolean {
    return this.opts.leases ? this.opts.leases.assignment().live.length > 0 : this.pilots.list().length > 0;
  }

  /** The node-id-only sidecars of a heartbeat get their workload from the Locate call this replica saw. */
  private heartbeatSidecars(sidecars: readonly { nodeId: string; namespace: string; workload: string }[]) {
    return sidecars.flatMap((s) => {
      const known = this.sidecars.get(s.nodeId);
      const workload = s.workload || known?.workload;
      return workload ? [{ nodeId: s.nodeId, namespace: s.namespace || known?.namespace || 'default', workload }] : [];
    });
  }

  /** CheckerHeartbeat and DeregisterChecker: in memory (checkers.ts), or on Leases in Kubernetes mode. */
  private checkerService(): Pick<MetaServerServer, 'checkerHeartbeat' | 'deregisterChecker'> {
    const leases = this.opts.checkerLeases;
    if (leases)
      return {
        checkerHeartbeat: (call, cb) => {
          const { checkerId, adminAddress } = call.request;
          Promise.resolve()
            .then(async () => {
              required({ checkerId });
              const { joined } = await leases.heartbeat(checkerId, adminAddress);
              if (joined) this.opts.logger.info('health checker joined', { checker: checkerId, adminAddress });
              return { ttlMs: this.opts.pilotTtlMs, heartbeatIntervalMs: this.opts.heartbeatIntervalMs, liveCheckers: leases.live().map((c) => c.id) };
            })
            .then(
              (res) => cb(null, res),
              (err: unknown) => {
                recordError(this.opts.logger, 'checker heartbeat', err, { checker: checkerId });
                fail(cb as sendUnaryData<never>, err);
              },
            );
        },
        deregisterChecker: (call, cb) => {
          const { checkerId } = call.request;
          Promise.resolve()
            .then(async () => {
              required({ checkerId });
              if (await leases.deregister(checkerId)) this.opts.logger.info('health checker deregistered; its services move', { checker: checkerId });
              return {};
            })
            .then(
              (res) => cb(null, res),
              (err: unknown) => {
                recordError(this.opts.logger, 'checker deregistration', err, { checker: checkerId });
                fail(cb as sendUnaryData<never>, err);
              },
            );
        },
      };
    return {
      checkerHeartbeat: (call, cb) => {
        try {
          required({ checkerId: call.request.checkerId });
          const now = this.now();
          if (this.checkers.heartbeat(call.request.checkerId, call.request.adminAddress, now))
            this.opts.logger.info('health checker live', { checker: call.request.checkerId, adminAddress: call.request.adminAddress });
          cb(null, { ttlMs: this.opts.pilotTtlMs, heartbeatIntervalMs: this.opts.heartbeatIntervalMs, liveCheckers: this.checkers.live(now).map((c) => c.id) });
        } catch (err) {
          fail(cb as sendUnaryData<never>, err);
        }
      },
      deregisterChecker: (call, cb) => {
        if (this.checkers.deregister(call.request.checkerId)) this.opts.logger.info('health checker deregistered; its services move', { checker: call.request.checkerId });
        cb(null, {});
      },
    };
  }

  metaService(): MetaServerServer {
    if (this.opts.leases) return { ...this.leaseMetaService(this.opts.leases), ...this.checkerService() };
    const lease = (shed: string[] = []) => ({ ttlMs: this.opts.pilotTtlMs, heartbeatIntervalMs: this.opts.heartbeatIntervalMs, shed });
    const wrap =
      <Req, Res>(fn: (req: Req, peer: string) => Res) =>
      (call: { request: Req; getPeer(): string }, cb: sendUnaryData<Res>) => {
        try {
          cb(null, fn(call.request, call.getPeer()));
        } catch (err) {
          fail(cb as sendUnaryData<never>, err);
        }
      };
    return {
      ...this.checkerService(),
      registerPilot: wrap((req) => {
        required({ pilotId: req.pilotId, xdsAddress: req.xdsAddress });
        const known = !!this.pilots.get(req.pilotId);
        this.pilots.register({ id: req.pilotId, xdsAddress: req.xdsAddress, adminAddress: req.adminAddress, zone: req.zone }, this.now());
        if (!known) this.opts.logger.info('pilot registered', { pilot: req.pilotId, xdsAddress: req.xdsAddress, adminAddress: req.adminAddress });
        return lease();
      }),
      pilotHeartbeat: wrap((req) => {
        // A pilot may report node ids only; the workload is then the one the sidecar gave Locate.
        const r = this.pilots.heartbeat(req.pilotId, this.heartbeatSidecars(req.sidecars), this.now());
        if (!r) throw new NotFoundError(`pilot ${req.pilotId} is not registered`);
        this.record(r.adopted);
        if (r.shed.length) this.opts.logger.info('asking pilot to shed sidecars', { pilot: req.pilotId, sidecars: r.shed });
        return lease(r.shed);
      }),
      deregisterPilot: wrap((req) => {
        if (this.pilots.deregister(req.pilotId)) this.opts.logger.info('pilot deregistered; its sidecars move', { pilot: req.pilotId });
        return {};
      }),
      locate: wrap((req) => {
        required({ nodeId: req.nodeId, workload: req.workload });
        const namespace = req.namespace || 'default';
        const r = this.pilots.locate(namespace, req.workload, req.unreachablePilotId || undefined);
        if (!r) {
          this.locates.inc({ result: 'unavailable' });
          throw new UnavailableError('no live pilot');
        }
        if (r.move) this.record([r.move]);
        this.locates.inc({ result: 'ok' });
        this.sidecars.set(req.nodeId, { nodeId: req.nodeId, namespace, workload: req.workload, pilot: r.pilot.id, locatedAt: new Date(this.now()).toISOString() });
        return { pilotId: r.pilot.id, xdsAddress: r.pilot.xdsAddress };
      }),
    };
  }

  /** The MetaServer service in Kubernetes mode: every call reads or writes pilot Leases. */
  private leaseMetaService(leases: LeasePilots): Pick<MetaServerServer, 'registerPilot' | 'pilotHeartbeat' | 'deregisterPilot' | 'locate'> {
    const lease = (shed: string[] = []) => ({ ttlMs: this.opts.pilotTtlMs, heartbeatIntervalMs: this.opts.heartbeatIntervalMs, shed });
    const wrap =
      <Req, Res>(fn: (req: Req) => Promise<Res>) =>
      (call: { request: Req }, cb: sendUnaryData<Res>) => {
        fn(call.request).then(
          (res) => cb(null, res),
          (err: unknown) => fail(cb as sendUnaryData<never>, err),
        );
      };
    return {
      registerPilot: wrap(async (req) => {
        required({ pilotId: req.pilotId, xdsAddress: req.xdsAddress });
        const { joined } = await leases.register({ id: req.pilotId, xdsAddress: req.xdsAddress, adminAddress: req.adminAddress, zone: req.zone });
        if (joined) this.opts.logger.info('pilot registered', { pilot: req.pilotId, xdsAddress: req.xdsAddress, adminAddress: req.adminAddress });
        return lease();
      }),
      pilotHeartbeat: wrap(async (req) => {
        required({ pilotId: req.pilotId });
        const r = await leases.heartbeat(req.pilotId, this.heartbeatSidecars(req.sidecars));
        if (!r) throw new NotFoundError(`pilot ${req.pilotId} is not registered (no live Lease)`);
        if (r.shed.length) this.opts.logger.info('asking pilot to shed sidecars', { pilot: req.pilotId, sidecars: r.shed });
        return lease(r.shed);
      }),
      deregisterPilot: wrap(async (req) => {
        required({ pilotId: req.pilotId });
        if (await leases.deregister(req.pilotId)) this.opts.logger.info('pilot deregistered; its sidecars move', { pilot: req.pilotId });
        return {};
      }),
      locate: wrap(async (req) => {
        required({ nodeId: req.nodeId, workload: req.workload });
        const namespace = req.namespace || 'default';
        const p = await leases.locate(namespace, req.workload, req.unreachablePilotId || undefined);
        if (!p) {
          this.locates.inc({ result: 'unavailable' });
          throw new UnavailableError('no live pilot');
        }
        this.locates.inc({ result: 'ok' });
        this.sidecars.set(req.nodeId, { nodeId: req.nodeId, namespace, workload: req.workload, pilot: p.id, locatedAt: new Date(this.now()).toISOString() });
        return { pilotId: p.id, xdsAddress: p.xdsAddress };
      }),
    };
  }

  registryService(): ServiceRegistryServer {
    // Over mTLS an instance registers, renews and removes itself in its own namespace only: the
    // access table lets any mesh identity call the registry, this names which entries.
    const ownNamespace = (call: { getAuthContext?: () => { sslPeerCertificate?: { subjectaltname?: string } } }, namespace: string) => {
      if (!this.opts.tls) return;
      const uri = uriSan(call.getAuthContext?.().sslPeerCertificate);
      const id = uri ? spiffeIdOrError(uri) : undefined;
      const mine = id && !('error' in id) ? id.namespace : undefined;
      if (mine !== (namespace || 'default')) throw new ForbiddenError(`${uri ?? 'a caller without identity'} may not register instances in namespace ${namespace || 'default'}`);
    };
    const wrap =
      <Req extends { namespace: string }, Res>(fn: (req: Req) => Res) =>
      (call: { request: Req; getAuthContext?: () => { sslPeerCertificate?: { subjectaltname?: string } } }, cb: sendUnaryData<Res>) => {
        try {
          ownNamespace(call, call.request.namespace);
          cb(null, fn(call.request));
        } catch (err) {
          fail(cb as sendUnaryData<never>, err);
        }
      };
    return {
      register: wrap((req) => {
        required({ service: req.service, instanceId: req.instanceId, address: req.address });
        if (!req.port) throw new ValidationError('request', [{ path: 'port', message: 'required' }]);
        const r = this.instances.register({ ...req, labels: { ...req.labels } }, this.now());
        this.markDirty(r.service);
        return { ttlMs: r.ttlMs };
      }),
      heartbeat: wrap((req) => {
        const r = this.instances.heartbeat(req.namespace, req.service, req.instanceId, this.now());
        if (!r) throw new NotFoundError(`instance ${req.namespace}/${req.service}/${req.instanceId} is not registered`);
        if (r.changed) this.markDirty(r.changed);
        return { ttlMs: r.ttlMs };
      }),
      deregister: wrap((req) => {
        const s = this.instances.deregister(req.namespace, req.service, req.instanceId);
        if (s) this.markDirty(s);
        return {};
      }),
    };
  }
}

export { MetaServerService, ServiceRegistryService, status };
