import { MESH_CHANNEL_OPTIONS, meshChannelCredentials, type MeshTls } from './mtls.js';
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { MeshResource, ResourceKind } from '@octo-mesh/api';
import {
  DispatcherClient,
  DispatcherWatchEventType,
  type DispatcherResource,
  type DispatcherSubscription,
  type DispatcherWatchEvent,
  type DispatcherWatchRequest,
} from '@octo-mesh/proto';
import { Backoff, ConflictError, NotFoundError, OctoError, UnavailableError, ValidationError, recordError, sleep, type Logger } from '@octo-mesh/runtime';
import { compareVersions, type Version } from '@octo-mesh/contracts';

/**
 * The annotation that says which source wrote an object into the dispatcher's store: `api`
 * (Apply without one: octoctl, the operator), `directory` (a watched YAML directory), `registry`
 * (the meta server's service registry). A source deletes only objects it wrote, so two writers
 * of one name never delete each other's objects; the last writer owns the object.
 */
export const SOURCE_ANNOTATION = 'mesh.octo.io/source';

/** Maps a gRPC error from the dispatcher back to the typed error the server threw. */
export function fromGrpcError(err: ServiceError): Error {
  const msg = err.details || err.message;
  switch (err.code) {
    case status.NOT_FOUND:
      return new NotFoundError(msg);
    case status.ABORTED:
    case status.ALREADY_EXISTS:
      return new ConflictError(msg);
    case status.INVALID_ARGUMENT:
      return new ValidationError('dispatcher', [{ path: '', message: msg }]);
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return new UnavailableError(msg);
    default:
      return new OctoError(msg);
  }
}

type Callback<Res> = (err: ServiceError | null, res?: Res) => void;
const unary = <Res>(call: (cb: Callback<Res>) => unknown): Promise<Res> =>
  new Promise((resolve, reject) => call((err, res) => (err ? reject(fromGrpcError(err)) : resolve(res as Res))));

export const fromWire = (r: DispatcherResource): MeshResource => JSON.parse(r.json) as MeshResource;

const splitKey = (key: string) => {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: 'default', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
};

/**
 * A connection to the dispatcher: typed unary calls (errors mapped back to NotFoundError,
 * ConflictError, ValidationError, UnavailableError) and raw Watch streams. Calls are not retried
 * here; {@link DispatcherInformer} does the retrying for long-lived consumers.
 */
export class DispatcherConnection {
  readonly client: DispatcherClient;

  constructor(
    readonly address: string,
    tls?: MeshTls,
  ) {
    this.client = new DispatcherClient(address, meshChannelCredentials(tls, 'dispatcher'), {
      ...MESH_CHANNEL_OPTIONS,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  get(kind: ResourceKind, key: string): Promise<MeshResource> {
    return unary<DispatcherResource>((cb) => this.client.get({ kind, ...splitKey(key) }, cb)).then(fromWire);
  }

  /**
   * Every object of a kind (of `namespace`, or concerning `opts.service` = `namespace/name`, when
   * given), fetched page by page so any number of objects flows (no single message grows past
   * gRPC's limit). The version is the first page's: watching from it misses nothing.
   */
  async list(kind: ResourceKind, namespace = '', opts: { service?: string; pageLimit?: number } = {}): Promise<{ items: MeshResource[]; version: Version }> {
    const items: MeshResource[] = [];
    let version: Version | undefined;
    let continueToken = '';
    do {
      const page = await unary<{ items: DispatcherResource[]; version: string; continueToken: string }>((cb) =>
        this.client.list({ kind, namespace, service: opts.service ?? '', limit: opts.pageLimit ?? 0, continueToken }, cb),
      );
      for (const r of page.items) items.push(fromWire(r));
      version ??= page.version;
      if (page.continueToken && page.continueToken === continueToken) throw new OctoError(`dispatcher List did not advance past ${continueToken}`);
      continueToken = page.continueToken;
    } while (continueToken);
    return { items, version: version ?? '0' };
  }

  /** Creates or replaces; `object` may be an object or the JSON/YAML text of one. */
  apply(object: MeshResource | string, expectedVersion = ''): Promise<MeshResource> {
    const json = typeof object === 'string' ? object : JSON.stringify(object);
    return unary<DispatcherResource>((cb) => this.client.apply({ json, expectedVersion }, cb)).then(fromWire);
  }

  /**
   * Replaces the status of a RoutePolicy or ProxyVersion (the status subresource: spec and
   * generation stay); ConflictError when `expectedVersion` is stale.
   */
  updateStatus(kind: ResourceKind, key: string, status: unknown, expectedVersion = ''): Promise<MeshResource> {
    return unary<DispatcherResource>((cb) => this.client.updateStatus({ kind, ...splitKey(key), statusJson: JSON.stringify(status), expectedVersion }, cb)).then(fromWire);
  }

  async delete(kind: ResourceKind, key: string, expectedVersion = ''): Promise<void> {
    await unary<object>((cb) => this.client.delete({ kind, ...splitKey(key), expectedVersion }, cb));
  }

  /** Opens a raw Watch stream (see dispatcher.proto for the protocol). */
  watch(): ClientDuplexStream<DispatcherWatchRequest, DispatcherWatchEvent> {
    return this.client.watch();
  }

  close(): void {
    this.client.close();
  }
}

/** A change the informer applied to its cache. */
export interface InformerChange {
  kind: ResourceKind;
  key: string;
  /** Absent when the object was deleted. */
  resource?: MeshResource;
}

export interface DispatcherInformerOptions {
  connection: DispatcherConnection;
  clientId: string;
  kinds: readonly ResourceKind[];
  /** Narrower filters than "every object of `kinds`" (each must name one of `kinds`). */
  subscriptions?: DispatcherSubscription[];
  /** Called for each change after the cache is updated, in order. Not called for the initial list. */
  onChange?: (change: InformerChange) => void;
  /** Called after the initial list and after every resync, when the cache is complete. */
  onSynced?: () => void;
  logger?: Logger;
}

/**
 * A pilot-side cache of the dispatcher's objects, kept current by List + Watch (the client half
 * of the notification protocol). On a notification it fetches the object (Get), so it only ever
 * transfers objects that changed. When the stream breaks it reconnects with backoff and resumes
 * from the last version it saw; when told to RESYNC it lists again and reports the difference as
 * changes. Level-based: a consumer that rebuilds from {@link list} after any change is always right.
 */
export class DispatcherInformer {
  private readonly cache = new Map<ResourceKind, Map<string, MeshResource>>();
  private version: Version = '';
  private stream: ClientDuplexStream<DispatcherWatchRequest, DispatcherWatchEvent> | undefined;
  private stopped = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly backoff = new Backoff({ initialMs: 100, maxMs: 3000, jitter: 0.5 });
  private hasSynced = false;
  private loop: Promise<void> | undefined;
  /** Since when the cache may be stale (not listed yet, or its watch broken); undefined when in sync. */
  private downSince: number | undefined = Date.now();
  private lastError = '';

  constructor(private readonly opts: DispatcherInformerOptions) {
    for (const k of opts.kinds) this.cache.set(k, new Map());
  }

  /** Starts syncing; resolves after the first complete list. */
  async start(): Promise<void> {
    await this.relist();
    this.loop = this.run();
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /**
   * A readiness check: true, or why the cache is stale — never listed, or its watch down for
   * longer than `graceMs` since it was last in sync.
   */
  health(graceMs = 5000, now = Date.now()): true | string {
    if (this.downSince === undefined || now - this.downSince < graceMs) return true;
    const why = this.hasSynced ? 'watch down' : 'never listed';
    return `dispatcher informer (${this.opts.kinds.join(', ')}): ${why} for ${Math.round((now - this.downSince) / 1000)} s${this.lastError ? `: ${this.lastError}` : ''}`;
  }

  /** The last store version the cache reflects. */
  get lastVersion(): Version {
    return this.version;
  }

  get(kind: ResourceKind, key: string): MeshResource | undefined {
    return this.cache.get(kind)?.get(key);
  }

  list(kind: ResourceKind): MeshResource[] {
    return [...(this.cache.get(kind)?.values() ?? [])];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.cancel();
    await this.loop;
    await this.queue;
  }

  private async relist(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const lists = await Promise.all(this.opts.kinds.map(async (k) => [k, await this.opts.connection.list(k)] as const));
        let min: Version | undefined;
        for (const [kind, { items, version }] of lists) {
          const fresh = new Map(items.map((o) => [`${o.metadata.namespace ?? 'default'}/${o.metadata.name}`, o]));
          const old = this.cache.get(kind)!;
          this.cache.set(kind, fresh);
          if (this.hasSynced) {
            for (const [key, o] of fresh) if (old.get(key)?.metadata.resourceVersion !== o.metadata.resourceVersion) this.opts.onChange?.({ kind, key, resource: o });
            for (const key of old.keys()) if (!fresh.has(key)) this.opts.onChange?.({ kind, key });
          }
          if (min === undefined || compareVersions(version, min) < 0) min = version;
        }
        this.version = min ?? '0';
        this.hasSynced = true;
        this.downSince = undefined;
        this.lastError = '';
        this.backoff.reset();
        this.opts.onSynced?.();
        return;
      } catch (err) {
        if (this.stopped) return;
        this.lastError = (err as Error).message;
        this.downSince ??= Date.now();
        recordError(this.opts.logger, 'dispatcher list', err, { attempt, kinds: this.opts.kinds });
        await sleep(this.backoff.next());
      }
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const ended = await this.watchOnce();
      if (this.stopped) break;
      if (ended === 'resync') continue;
      await sleep(this.backoff.next());
    }
  }

  /** One Watch stream until it breaks. */
  private watchOnce(): Promise<'broken' | 'resync'> {
    return new Promise((resolve) => {
      const stream = this.opts.connection.watch();
      this.stream = stream;
      const subscriptions = this.opts.subscriptions ?? this.opts.kinds.map((kind) => ({ kind, namespace: '', name: '', service: '' }));
      stream.write({ clientId: this.opts.clientId, subscriptions, resumeVersion: this.version || '0' });
      let done = false;
      const finish = (why: 'broken' | 'resync') => {
        if (done) return;
        done = true;
        stream.cancel();
        resolve(why);
      };
      stream.on('data', (ev: DispatcherWatchEvent) => {
        if (ev.type === DispatcherWatchEventType.SYNCED) {
          this.backoff.reset();
          this.downSince = undefined;
          this.queue = this.queue.then(() => {
            if (compareVersions(ev.version, this.version) > 0) this.version = ev.version;
          });
        } else if (ev.type === DispatcherWatchEventType.RESYNC) {
          this.opts.logger?.info('dispatcher asked for a resync', { version: ev.version });
          this.queue = this.queue.then(() => this.relist());
          void this.queue.then(() => finish('resync'));
        } else if (ev.type === DispatcherWatchEventType.NOTIFY) {
          this.queue = this.queue.then(() => (done ? undefined : this.apply(ev))).catch((err: unknown) => {
            this.opts.logger?.warn('fetch after notification failed; resuming from the last good version', { error: (err as Error).message });
            finish('broken');
          });
        }
      });
      stream.on('error', (err: Error) => {
        if (!done && !this.stopped) {
          this.lastError = err.message;
          this.downSince ??= Date.now();
          recordError(this.opts.logger, 'dispatcher informer watch', err, { kinds: this.opts.kinds, resumeVersion: this.version });
        }
        finish('broken');
      });
      stream.on('end', () => {
        if (!done && !this.stopped) this.downSince ??= Date.now();
        finish('broken');
      });
    });
  }

  private async apply(ev: DispatcherWatchEvent): Promise<void> {
    const kind = ev.kind as ResourceKind;
    const key = `${ev.namespace}/${ev.name}`;
    const bucket = this.cache.get(kind);
    if (!bucket) return;
    let resource: MeshResource | undefined;
    if (!ev.deleted) {
      try {
        resource = await this.opts.connection.get(kind, key);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    if (resource) bucket.set(key, resource);
    else bucket.delete(key);
    if (compareVersions(ev.version, this.version) > 0) this.version = ev.version;
    this.opts.onChange?.({ kind, key, ...(resource ? { resource } : {}) });
  }
}
