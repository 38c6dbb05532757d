/**
 * Clients of the meta server: {@link PilotMembership} for pilots (register, heartbeat, shed),
 * {@link CheckerMembership} for health-checker replicas, {@link locatePilot} for sidecars, {@link RegisteredInstance} for workloads outside Kubernetes.
 */
import { MESH_CHANNEL_OPTIONS, meshChannelCredentials, type MeshTls } from './mtls.js';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { MetaServerClient, ServiceRegistryClient, type PilotLease } from '@octo-mesh/proto';
import type { CheckerLease } from '@octo-mesh/proto/gen/octo/mesh/v1/meta.js';
import { Backoff, recordError, sleep, type Logger } from '@octo-mesh/runtime';
import { locateAttemptMs as sharedLocateAttemptMs } from '@octo-mesh/contracts/locate.js';

/** A sleep that `wake()` ends early: the pause between a heartbeat loop's calls. */
class Pause {
  private wakeUp: (() => void) | undefined;

  for(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}

type Callback<Res> = (err: ServiceError | null, res?: Res) => void;
const unary = <Res>(call: (cb: Callback<Res>) => unknown): Promise<Res> =>
  new Promise((resolve, reject) => call((err, res) => (err ? reject(err) : resolve(res as Res))));

const clientOptions = { ...MESH_CHANNEL_OPTIONS, 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 };

export interface PilotMembershipOptions {
  metaAddress: string;
  /** mTLS to the meta server (plaintext without). */
  tls?: MeshTls;
  pilotId: string;
  /** host:port sidecars dial for ADS. */
  xdsAddress: string;
  /** host:port of the pilot's admin HTTP endpoint. */
  adminAddress?: string;
  zone?: string;
  /** The sidecars connected right now (node id, namespace, workload); read at every heartbeat. */
  sidecars: () => { nodeId: string; namespace: string; workload: string }[];
  /** Close these sidecars' ADS streams: they belong to another pilot now and will Locate again. */
  onShed?: (nodeIds: string[]) => void;
  logger?: Logger;
}

/**
 * A pilot's membership in the mesh: registers with the meta server, heartbeats at the interval
 * the lease asks for (reporting connected sidecars), registers again when the meta server forgot
 * it (restart or lapsed lease), and retries with backoff while the meta server is unreachable.
 * `stop()` deregisters so the pilot's sidecars move at once instead of after the lease lapses.
 */
export class PilotMembership {
  private readonly client: MetaServerClient;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();
  /** Whether the last register/heartbeat succeeded. */
  registered = false;

  constructor(private readonly opts: PilotMembershipOptions) {
    this.client = new MetaServerClient(opts.metaAddress, meshChannelCredentials(opts.tls, 'meta-server'), clientOptions);
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const { pilotId, xdsAddress, adminAddress = '', zone = '' } = this.opts;
    const backoff = new Backoff({ initialMs: 200, maxMs: 3000 });
    let interval = 1000;
    while (!this.stopped) {
      const started = Date.now();
      try {
        let lease: PilotLease;
        if (!this.registered) {
          lease = await unary<PilotLease>((cb) => this.client.registerPilot({ pilotId, xdsAddress, adminAddress, zone }, cb));
          this.registered = true;
          this.opts.logger?.info('registered with the meta server', { pilot: pilotId, meta: this.opts.metaAddress });
        }
        lease = await unary<PilotLease>((cb) =>
          this.client.pilotHeartbeat({ pilotId, sidecars: this.opts.sidecars().map((s) => ({ ...s })) }, cb),
        );
        interval = Number(lease.heartbeatIntervalMs) || interval;
        if (lease.shed.length) this.opts.onShed?.(lease.shed);
        backoff.reset();
        await this.pause.for(heartbeatPause(interval, Date.now() - started));
      } catch (err) {
        const e = err as ServiceError;
        if (e.code === status.NOT_FOUND) this.registered = false;
        else {
          this.registered = false;
          this.opts.logger?.warn('meta server unreachable; retrying', { pilot: pilotId, error: e.details || e.message });
          await this.pause.for(backoff.next());
        }
      }
    }
  }

  /** Heartbeats now instead of at the next interval (e.g. right after sidecars connect). */
  nudge(): void {
    this.pause.wake();
  }

  /** Stops heartbeating; with `deregister: false` the lease is left to lapse (as if the pilot crashed). */
  async stop(opts: { deregister?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.pause.wake();
    await this.loop;
    if (opts.deregister !== false)
      await unary((cb) => this.client.deregisterPilot({ pilotId: this.opts.pilotId }, new Metadata(), { deadline: Date.now() + 1000 }, cb)).catch((err: unknown) =>
        // Best effort: the lease lapses after its TTL anyway.
        recordError(this.opts.logger, 'deregistering the pilot', err, { pilotId: this.opts.pilotId }),
      );
    this.client.close();
  }
}

/**
 * The pause before the next heartbeat: the interval less the time the last one took, so a busy
 * meta server that answers late does not also stretch the period past the lease (a heartbeat every
 * interval + answer time; at 10,000 sidecars, bench/scale, the surviving pilot's lease lapsed
 * again and again during a re-home storm). Never less than a tenth of the interval.
 */
export function heartbeatPause(intervalMs: number, tookMs: number): number {
  return Math.max(intervalMs / 10, intervalMs - Math.max(0, tookMs));
}

export interface LocateOptions {
  metaAddress: string;
  /** mTLS to the meta server (plaintext without). */
  tls?: MeshTls;
  nodeId: string;
  namespace: string;
  workload: string;
  /** The pilot the sidecar just lost, if that is why it asks. */
  unreachablePilotId?: string;
  /** Give up after this long; default: keep trying. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long one Locate attempt may take: 2 s, doubling per retry up to 8 s, never past the caller's deadline (see contracts' locateAttemptMs). */
export function locateAttemptMs(attempt: number, leftMs: number): number {
  return sharedLocateAttemptMs(attempt, 2000, leftMs);
}

/**
 * Asks the meta server which pilot serves a sidecar, retrying with jittered backoff while it is
 * unreachable or has no live pilot (jitter, so a pilot's death does not become a storm); each
 * attempt waits longer than the last ({@link locateAttemptMs}).
 */
export async function locatePilot(opts: LocateOptions): Promise<{ pilotId: string; xdsAddress: string }> {
  const client = new MetaServerClient(opts.metaAddress, meshChannelCredentials(opts.tls, 'meta-server'), clientOptions);
  const backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 });
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  let previous: ServiceError | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      const attemptMs = locateAttemptMs(attempt, deadline - Date.now());
      try {
        return await unary<{ pilotId: string; xdsAddress: string }>((cb) =>
          client.locate(
            { nodeId: opts.nodeId, namespace: opts.namespace, workload: opts.workload, unreachablePilotId: opts.unreachablePilotId ?? '' },
            new Metadata(),
            { deadline: Date.now() + attemptMs },
            cb,
          ),
        );
      } catch (err) {
        const e = err as ServiceError;
        if (e.code === status.INVALID_ARGUMENT) throw err;
        if (Date.now() >= deadline) {
          // An attempt the caller's deadline cut short (a timer can wake a millisecond before the
          // deadline, leaving a 1 ms attempt) ends in DEADLINE_EXCEEDED: report the real reason.
          throw e.code === status.DEADLINE_EXCEEDED && attemptMs < locateAttemptMs(attempt, Infinity) && previous ? previous : err;
        }
        previous = e;
        await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())), opts.signal);
        if (Date.now() >= deadline) throw err;
      }
    }
  } finally {
    client.close();
  }
}

export interface InstanceRegistrationOptions {
  metaAddress: string;
  /** mTLS to the meta server (plaintext without). */
  tls?: MeshTls;
  namespace: string;
  service: string;
  instanceId: string;
  address: string;
  port: number;
  labels?: Record<string, string>;
  workload?: string;
  servicePort?: number;
  zone?: string;
  ttlMs?: number;
  logger?: Logger;
}

/**
 * Keeps one instance registered in the meta server's service registry: registers, heartbeats at a
 * third of the TTL, registers again when forgotten, deregisters on stop.
 */
export class RegisteredInstance {
  private readonly client: ServiceRegistryClient;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();

  constructor(private readonly opts: InstanceRegistrationOptions) {
    this.client = new ServiceRegistryClient(opts.metaAddress, meshChannelCredentials(opts.tls, 'meta-server'), clientOptions);
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const o = this.opts;
    const id = { namespace: o.namespace, service: o.service, instanceId: o.instanceId };
    let registered = false;
    let ttl = o.ttlMs ?? 3000;
    while (!this.stopped) {
      try {
        const lease = registered
          ? await unary<{ ttlMs: number }>((cb) => this.client.heartbeat(id, cb))
          : await unary<{ ttlMs: number }>((cb) =>
              this.client.register(
                {
                  ...id,
                  address: o.address,
                  port: o.port,
                  labels: o.labels ?? {},
                  region: '',
                  zone: o.zone ?? '',
                  workload: o.workload ?? o.service,
                  servicePort: o.servicePort ?? 80,
                  ttlMs: o.ttlMs ?? 0,
                },
                cb,
              ),
            );
        registered = true;
        ttl = Number(lease.ttlMs) || ttl;
      } catch (err) {
        const forgotten = (err as ServiceError).code === status.NOT_FOUND;
        if (forgotten && registered) {
          // The meta server restarted and forgot us: register again at once, not a beat later
          // (its registration grace period is what it waits for us).
          registered = false;
          continue;
        }
        registered = false;
        if (!forgotten) o.logger?.warn('service registry unreachable; retrying', { error: (err as Error).message });
      }
      await this.pause.for(Math.max(100, ttl / 3));
    }
  }

  /** Stops heartbeating and deregisters; with `deregister: false` the instance is left to expire (as if it crashed). */
  async stop(opts: { deregister?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.pause.wake();
    await this.loop;
    const o = this.opts;
    if (opts.deregister !== false)
      await unary((cb) => this.client.deregister({ namespace: o.namespace, service: o.service, instanceId: o.instanceId }, new Metadata(), { deadline: Date.now() + 1000 }, cb)).catch((err: unknown) =>
        // Best effort: the instance expires after its TTL anyway.
        recordError(o.logger, 'deregistering an instance', err, { instanceId: o.instanceId }),
      );
    this.client.close();
  }
}

export interface CheckerMembershipOptions {
  metaAddress: string;
  /** mTLS to the meta server (plaintext without). */
  tls?: MeshTls;
  checkerId: string;
  /** host:port of the checker's admin HTTP endpoint. */
  adminAddress?: string;
  /** Every answered heartbeat: the live checkers, this one included, sorted. */
  onMembers: (liveCheckers: string[]) => void;
  /** A heartbeat failed (the meta server unreachable): the caller keeps its last membership. */
  onError?: (err: Error) => void;
  logger?: Logger;
}

/**
 * A health-checker replica's membership: heartbeats to the meta server at the interval the lease
 * asks for (one call joins and renews) and hands every answer's live-checker list to
 * `onMembers`. While the meta server is unreachable it retries with backoff and reports nothing
 * new, so the replica keeps checking what it had. `stop()` deregisters, so its services move at once.
 */
export class CheckerMembership {
  private readonly client: MetaServerClient;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();
  /** When the last heartbeat was answered (epoch ms); 0 before the first. */
  lastAnsweredAt = 0;

  constructor(private readonly opts: CheckerMembershipOptions) {
    this.client = new MetaServerClient(opts.metaAddress, meshChannelCredentials(opts.tls, 'meta-server'), clientOptions);
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 3000, jitter: 0.3 });
    let interval = 1000;
    while (!this.stopped) {
      try {
        const lease = await unary<CheckerLease>((cb) =>
          this.client.checkerHeartbeat({ checkerId: this.opts.checkerId, adminAddress: this.opts.adminAddress ?? '' }, new Metadata(), { deadline: Date.now() + 3000 }, cb),
        );
        interval = Number(lease.heartbeatIntervalMs) || interval;
        this.lastAnsweredAt = Date.now();
        backoff.reset();
        if (!this.stopped) this.opts.onMembers([...lease.liveCheckers]);
        await this.pause.for(interval);
      } catch (err) {
        const e = err as ServiceError;
        this.opts.onError?.(e);
        this.opts.logger?.warn('meta server unreachable; keeping the last checker membership', { checker: this.opts.checkerId, error: e.details || e.message });
        await this.pause.for(backoff.next());
      }
    }
  }

  /** Stops heartbeating; with `deregister: false` the lease is left to lapse (as if the checker crashed). */
  async stop(opts: { deregister?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.pause.wake();
    await this.loop;
    if (opts.deregister !== false)
      await unary((cb) => this.client.deregisterChecker({ checkerId: this.opts.checkerId }, new Metadata(), { deadline: Date.now() + 1000 }, cb)).catch((err: unknown) =>
        // Best effort: the lease lapses after its TTL anyway.
        recordError(this.opts.logger, 'deregistering the checker', err, { checkerId: this.opts.checkerId }),
      );
    this.client.close();
  }
}
