/**
 * Leader election on a coordination.k8s.io/v1 Lease, with controller-runtime's defaults (lease
 * 15 s, renew deadline 10 s, retry 2 s): only the leader reconciles. The decision is pure
 * ({@link leaseDecision}); {@link LeaderElector} does the I/O through a small {@link LeaseClient}.
 *
 * A candidate takes the Lease when nobody holds it, or when the holder's record has not changed
 * for a whole lease duration *as this candidate observed it* (its own clock from the moment it
 * saw the record change, as client-go does, so clock skew between replicas cannot cut a lease
 * short). The leader renews every retry period; when it cannot renew for the renew deadline it
 * stops leading (before its Lease can expire: renew deadline < lease duration). On shutdown it
 * releases the Lease (empty holder), so the next replica takes over at once.
 */
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { ConflictError, UnavailableError, type Logger } from '@octo-mesh/runtime';
import type { OperatorMetrics } from './metrics.js';

export interface LeaderRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: number | undefined;
  renewTime?: number | undefined;
  leaseTransitions: number;
  /** The Lease's resourceVersion (opaque; changes with every write). */
  resourceVersion?: string | undefined;
}

export interface LeaseTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/**
 * What to write to take or keep the Lease, or undefined when another replica holds it.
 * `observedAt`: when this replica first saw the current record (its resourceVersion).
 */
export function leaseDecision(current: LeaderRecord | undefined, identity: string, now: number, observedAt: number, leaseDurationMs: number): LeaderRecord | undefined {
  const seconds = Math.ceil(leaseDurationMs / 1000);
  if (!current) return { holderIdentity: identity, leaseDurationSeconds: seconds, acquireTime: now, renewTime: now, leaseTransitions: 0 };
  const mine = current.holderIdentity === identity;
  const held = current.holderIdentity !== '' && !mine && observedAt + current.leaseDurationSeconds * 1000 > now;
  if (held) return undefined;
  return {
    holderIdentity: identity,
    leaseDurationSeconds: seconds,
    acquireTime: mine ? current.acquireTime : now,
    renewTime: now,
    leaseTransitions: mine ? current.leaseTransitions : current.leaseTransitions + 1,
    resourceVersion: current.resourceVersion,
  };
}

/** The released form of our record: nobody holds it, and it lapses at once. */
export function releasedRecord(current: LeaderRecord, now: number): LeaderRecord {
  return { ...current, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now };
}

/** Reads and writes the one Lease (create when absent; update conditional on resourceVersion). */
export interface LeaseClient {
  get(): Promise<LeaderRecord | undefined>;
  /** ConflictError when another writer got there first. */
  write(record: LeaderRecord): Promise<LeaderRecord>;
}

export function kubernetesLeaseClient(kubeConfig: KubeConfig, namespace: string, name: string): LeaseClient {
  const api = kubeConfig.makeApiClient(CoordinationV1Api);
  const toRecord = (l: V1Lease): LeaderRecord => ({
    holderIdentity: l.spec?.holderIdentity ?? '',
    leaseDurationSeconds: l.spec?.leaseDurationSeconds ?? 15,
    acquireTime: l.spec?.acquireTime ? new Date(l.spec.acquireTime).getTime() : undefined,
    renewTime: l.spec?.renewTime ? new Date(l.spec.renewTime).getTime() : undefined,
    leaseTransitions: l.spec?.leaseTransitions ?? 0,
    resourceVersion: l.metadata?.resourceVersion,
  });
  const fail = (what: string, err: unknown): Error => {
    if (err instanceof ApiException && err.code === 409) return new ConflictError(`${what}: conflict`);
    const hint = err instanceof ApiException && err.code === 403 ? ' (the operator needs get, create, update on leases.coordination.k8s.io in its namespace)' : '';
    return new UnavailableError(`${what}: ${err instanceof ApiException ? `HTTP ${err.code}` : (err as Error).message}${hint}`);
  };
  return {
    async get() {
      try {
        return toRecord(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return undefined;
        throw fail(`reading lease ${namespace}/${name}`, err);
      }
    },
    async write(r) {
      const body: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace, ...(r.resourceVersion ? { resourceVersion: r.resourceVersion } : {}) },
        spec: {
          holderIdentity: r.holderIdentity,
          leaseDurationSeconds: r.leaseDurationSeconds,
          leaseTransitions: r.leaseTransitions,
          ...(r.acquireTime !== undefined ? { acquireTime: new V1MicroTime(r.acquireTime) } : {}),
          ...(r.renewTime !== undefined ? { renewTime: new V1MicroTime(r.renewTime) } : {}),
        },
      };
      try {
        return toRecord(r.resourceVersion ? await api.replaceNamespacedLease({ name, namespace, body }) : await api.createNamespacedLease({ namespace, body }));
      } catch (err) {
        throw fail(`writing lease ${namespace}/${name}`, err);
      }
    },
  };
}

export interface LeaderElectorOptions {
  client: LeaseClient;
  identity: string;
  timings?: LeaseTimings;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Called once when this replica becomes leader. */
  onStartedLeading: () => void;
  /** Called once when it stops leading (lost the Lease or could not renew in time); not on release. */
  onStoppedLeading: () => void;
  now?: () => number;
}

export class LeaderElector {
  private observed: { rv: string | undefined; at: number } | undefined;
  private record: LeaderRecord | undefined;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private readonly timings: LeaseTimings;
  private readonly now: () => number;
  private wake: (() => void) | undefined;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.timings = opts.timings ?? DEFAULT_LEASE_TIMINGS;
    this.now = opts.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.tick();
      if (this.stopped) break;
      // Candidates retry jittered around the retry period so replicas do not race in lockstep.
      const wait = this.leading ? this.timings.retryPeriodMs : this.timings.retryPeriodMs * (0.8 + Math.random() * 0.4);
      await new Promise<void>((r) => {
        this.wake = r;
        this.timer = setTimeout(r, wait);
      });
    }
  }

  /** One attempt to acquire or renew. */
  async tick(): Promise<void> {
    const { client, identity, logger, metrics } = this.opts;
    const now = this.now();
    try {
      const current = await client.get();
      if (!this.observed || this.observed.rv !== current?.resourceVersion) this.observed = { rv: current?.resourceVersion, at: now };
      const next = leaseDecision(current, identity, now, this.observed.at, this.timings.leaseDurationMs);
      if (!next) {
        if (this.leading) this.lose(`lease held by ${current?.holderIdentity}`);
        return;
      }
      this.record = await client.write(next);
      this.observed = { rv: this.record.resourceVersion, at: now };
      this.lastRenew = now;
      if (!this.leading && !this.stopped) {
        this.leading = true;
        metrics.leader.set(1);
        logger.info('became leader', { identity, leaseTransitions: this.record.leaseTransitions });
        this.opts.onStartedLeading();
      }
    } catch (err) {
      metrics.errors.inc({ where: 'leader-election' });
      logger.warn(this.leading ? 'could not renew the leader lease' : 'could not acquire the leader lease', { identity, error: (err as Error).message });
      if (this.leading && now - this.lastRenew >= this.timings.renewDeadlineMs) this.lose(`not renewed within ${this.timings.renewDeadlineMs} ms`);
    }
  }

  private lose(why: string): void {
    this.leading = false;
    this.opts.metrics.leader.set(0);
    this.opts.logger.error('lost leadership', { identity: this.opts.identity, why });
    this.opts.onStoppedLeading();
  }

  /** Stops campaigning; a leader releases its Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop?.catch((err: unknown) => {
      this.opts.metrics.errors.inc({ where: 'leader-election' });
      this.opts.logger.warn('leader election loop failed', { error: (err as Error).message });
    });
    // Also when a write that made us leader landed while stopping: the record says who holds it.
    if (!this.record || this.record.holderIdentity !== this.opts.identity) return;
    this.leading = false;
    this.opts.metrics.leader.set(0);
    try {
      await this.opts.client.write(releasedRecord(this.record, this.now()));
      this.opts.logger.info('released the leader lease', { identity: this.opts.identity });
    } catch (err) {
      this.opts.metrics.errors.inc({ where: 'leader-release' });
      this.opts.logger.warn('could not release the leader lease; it lapses by itself', { identity: this.opts.identity, error: (err as Error).message });
    }
  }
}
