/**
 * The Kubernetes I/O shared by Lease-backed memberships (pilots, health checkers): an informer on
 * the Leases of one namespace that carry one label, read-your-writes over it, and writes that
 * create or replace with the resourceVersion, a conflict re-read and decided again. What to write
 * is decided by the caller's pure functions (`lease-assign.ts`, `checker-lease.ts`).
 */
import { ApiException, CoordinationV1Api, V1MicroTime, makeInformer, type Informer, type KubeConfig, type ObjectCache, type V1Lease } from '@kubernetes/client-node';
import { Restarter, UnavailableError, recordError, sleep, type Logger } from '@octo-mesh/runtime';
import type { LeaseObject } from './lease-assign.js';

export interface LeaseStoreOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** `key=value`: the Leases this store watches (every Lease it writes must carry it). */
  labelSelector: string;
  /** Names the informer in logs and readiness, e.g. "pilot lease informer". */
  what: string;
  logger: Logger;
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
 * The Leases of one label in one namespace, as this replica sees them: what its informer has
 * delivered, overlaid with what it wrote itself and the informer has not delivered yet (so a
 * caller's own write is in the very answer to its call). Writes to one Lease from this replica run
 * one at a time; only other replicas can conflict, and a conflict is re-read and decided again.
 */
export class LeaseStore {
  private readonly api: CoordinationV1Api;
  private informer: (Informer<V1Lease> & ObjectCache<V1Lease>) | undefined;
  /** Leases this replica wrote that its informer has not delivered yet (read-your-writes). */
  private readonly written = new Map<string, LeaseObject>();
  /** Writes to one Lease from this replica run one at a time (only other replicas can conflict). */
  private readonly queues = new Map<string, Promise<unknown>>();
  private stopped = false;
  private restarter: Restarter | undefined;
  synced = false;

  constructor(private readonly opts: LeaseStoreOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get namespace(): string {
    return this.opts.namespace;
  }

  async start(): Promise<void> {
    const { namespace, logger, labelSelector } = this.opts;
    const inf = makeInformer<V1Lease>(
      this.opts.kubeConfig,
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      () => this.api.listNamespacedLease({ namespace, labelSelector }),
      labelSelector,
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
    // Restarted with backoff and jitter; while it stays down answers come from stale Leases, so
    // readiness says so (health()).
    this.restarter = new Restarter({ name: `${this.opts.what} (${namespace})`, start: () => inf.start(), logger, onFailure: (err) => recordError(undefined, this.opts.what, err) });
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

  /** One Lease as this replica sees it now. */
  cached(name: string): LeaseObject | undefined {
    const mine = this.written.get(name);
    if (mine) return mine;
    const l = this.informer?.get(name, this.opts.namespace);
    return l ? fromKube(l) : undefined;
  }

  /** Every Lease as this replica sees it now. */
  list(): LeaseObject[] {
    const byName = new Map<string, LeaseObject>();
    for (const l of this.informer?.list(this.opts.namespace) ?? []) byName.set(l.metadata?.name ?? '', fromKube(l));
    for (const [name, l] of this.written) byName.set(name, l);
    return [...byName.values()];
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
   * when present. A conflict (or a decision declined on a cached copy that may be stale) re-reads
   * the Lease from the API server and decides again. Undefined when `change` declines on a fresh
   * copy. Throws {@link UnavailableError} when the API server fails.
   */
  mutate(name: string, change: (current: LeaseObject | undefined) => LeaseObject | undefined): Promise<LeaseObject | undefined> {
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
}
