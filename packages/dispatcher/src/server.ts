import { status, type ServerDuplexStream, type ServiceError, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { isResourceKind, resourceKey, serviceOf, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { SOURCE_ANNOTATION } from '@octo-mesh/clients';
import {
  DispatcherService,
  DispatcherWatchEventType,
  type DispatcherServer,
  type DispatcherResource,
  type DispatcherWatchEvent,
  type DispatcherWatchRequest,
} from '@octo-mesh/proto';
import { Counter, Gauge, ValidationError, grpcStatusOf, type Logger, type Registry } from '@octo-mesh/runtime';
import { NotificationBuffer, isSubscribed, toNotification, type SubscriptionFilter } from './notify.js';
import { checkDocumentShape } from './limits.js';
import { compareKeys, isVersionExpired, type ResourceStore, type Watch } from './store.js';

/** Most subscription filters one Watch stream may hold (a pilot holds one per watched service). */
export const MAX_SUBSCRIPTIONS = 100_000;

export interface DispatcherServiceOptions {
  store: ResourceStore;
  logger: Logger;
  registry: Registry;
  /** Window in which changes are coalesced before being sent, ms. Default 10. */
  coalesceMs?: number;
  /**
   * Where Apply and Delete of these kinds go instead of `store` — in Kubernetes mode the API
   * server (a KubernetesStore), whose informers then bring the change into `store`, so the API
   * server stays the source of truth and its validation (CEL) applies.
   */
  writeThrough?: { store: ResourceStore; kinds: readonly ResourceKind[] };
  /**
   * The sync barrier: Watch streams get no SYNCED or RESYNC (so pilots act on nothing and keep
   * their last good configuration) until this resolves — when every source has listed fully and,
   * for a store that was not persisted, the meta server had time to publish its registry again.
   */
  synced?: Promise<void>;
}

/** One connected watcher, as the debug API shows it. */
export interface WatcherInfo {
  clientId: string;
  peer: string;
  subscriptions: SubscriptionFilter[];
  sent: number;
  lastVersion: string;
  connectedAt: string;
}

export function toWire(r: MeshResource): DispatcherResource {
  const [namespace = 'default', name = ''] = resourceKey(r).split('/');
  return { kind: r.kind, namespace, name, version: r.metadata.resourceVersion ?? '', json: JSON.stringify(r) };
}

function kindOf(kind: string): ResourceKind {
  if (!isResourceKind(kind)) throw new ValidationError('request', [{ path: 'kind', message: `unknown kind ${JSON.stringify(kind)}` }]);
  return kind;
}

/** Largest page of a List, in bytes of JSON (gRPC's default message limit is 4 MiB). */
export const LIST_PAGE_BYTES = 1024 * 1024;
/** Most objects in a page when the client sets no limit. */
export const LIST_PAGE_OBJECTS = 1000;

/**
 * One page of a List: the objects after `continueToken` (a `namespace/name` key; items are sorted
 * by key) that concern `service` when set, at most `limit` (0: no count limit) and about
 * {@link LIST_PAGE_BYTES}; `continueToken` is set when more follow.
 */
export function listPage(
  items: readonly MeshResource[],
  version: string,
  opts: { service?: string; limit?: number; continueToken?: string; pageBytes?: number },
): { items: DispatcherResource[]; version: string; continueToken: string } {
  const { service, limit = 0, continueToken = '', pageBytes = LIST_PAGE_BYTES } = opts;
  const max = limit || LIST_PAGE_OBJECTS;
  const out: DispatcherResource[] = [];
  let last = '';
  let bytes = 0;
  // Backends may ignore the paging hints: filter and order here again.
  const keyed = items.map((o) => ({ key: resourceKey(o), o })).sort((a, b) => compareKeys(a.key, b.key));
  for (const { key, o } of keyed) {
    if (continueToken && compareKeys(key, continueToken) <= 0) continue;
    if (service && serviceOf(o) !== service) continue;
    if (out.length >= max || (out.length && bytes >= pageBytes)) return { items: out, version, continueToken: last };
    const wire = toWire(o);
    bytes += wire.json.length;
    out.push(wire);
    last = key;
  }
  return { items: out, version, continueToken: '' };
}

/** The object with its source annotation set, unless it names one already (see SOURCE_ANNOTATION). */
export function withSource<T extends MeshResource>(o: T, source: string): T {
  if (typeof o !== 'object' || o === null || typeof o.metadata !== 'object' || o.metadata === null) return o;
  if (o.metadata.annotations?.[SOURCE_ANNOTATION]) return o;
  return { ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [SOURCE_ANNOTATION]: source } } };
}

/** A store version as a client sends it: decimal digits (or empty). */
const VERSION_RE = /^[0-9]{0,30}$/;

function fail(cb: sendUnaryData<never>, err: unknown): void {
  const e = Object.assign(new Error((err as Error).message), { code: grpcStatusOf(err), details: (err as Error).message }) as ServiceError;
  cb(e, null);
}

/**
 * The dispatcher's gRPC service over a store. Each Watch stream gets its own coalescing buffer
 * and subscription filter; a slow client only delays (and coalesces more of) its own
 * notifications — the store never waits for it.
 */
export class DispatcherGrpc {
  private readonly watchers = new Map<object, WatcherInfo>();
  private readonly notifications: Counter;
  private readonly coalescedTotal: Counter;
  private readonly synced: Promise<void>;

  constructor(private readonly opts: DispatcherServiceOptions) {
    this.synced = opts.synced ?? Promise.resolve();
    this.notifications = new Counter({ name: 'octo_dispatcher_notifications_total', help: 'Notifications sent to watchers.', labelNames: ['kind'], registers: [opts.registry] });
    this.coalescedTotal = new Counter({ name: 'octo_dispatcher_coalesced_total', help: 'Notifications merged into a newer one for the same object before sending.', registers: [opts.registry] });
    const watchers = this.watchers;
    new Gauge({
      name: 'octo_dispatcher_watch_streams',
      help: 'Open Watch streams (pilots and tools).',
      registers: [opts.registry],
      collect() {
        this.set(watchers.size);
      },
    });
  }

  /** Connected watchers, for the debug API. */
  list(): WatcherInfo[] {
    return [...this.watchers.values()];
  }

  private writerFor(kind: ResourceKind): ResourceStore {
    const w = this.opts.writeThrough;
    return w && w.kinds.includes(kind) ? w.store : this.opts.store;
  }

  implementation(): DispatcherServer {
    const { store } = this.opts;
    return {
      watch: (call) => this.watch(call),
      get: (call: ServerUnaryCall<{ kind: string; namespace: string; name: string }, DispatcherResource>, cb) => {
        const { kind, namespace, name } = call.request;
        Promise.resolve()
          .then(() => store.get(kindOf(kind), `${namespace || 'default'}/${name}`))
          .then((r) => cb(null, toWire(r)), (err: unknown) => fail(cb, err));
      },
      list: (call, cb) => {
        const { kind, namespace, service, limit, continueToken } = call.request;
        Promise.resolve()
          .then(() =>
            store.list(kindOf(kind), {
              ...(namespace ? { namespace } : {}),
              ...(service ? { service } : {}),
              ...(continueToken ? { after: continueToken } : {}),
              // One more than a page, so the page knows whether more follow.
              limit: (limit || LIST_PAGE_OBJECTS) + 1,
            }),
          )
          .then((r) => cb(null, listPage(r.items, r.version, { service, limit, continueToken })), (err: unknown) => fail(cb, err));
      },
      apply: (call, cb) => {
        Promise.resolve()
          .then(() => {
            const text = call.request.json;
            checkDocumentShape(text);
            let obj: unknown;
            try {
              obj = /^\s*\{/.test(text) ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 10 });
            } catch (err) {
              throw new ValidationError('request', [{ path: 'json', message: (err as Error).message }]);
            }
            const kind = kindOf(String((obj as { kind?: unknown } | null)?.kind));
            return this.writerFor(kind).put(withSource(obj as MeshResource, 'api'), call.request.expectedVersion ? { expectedVersion: call.request.expectedVersion } : {});
          })
          .then((r) => {
            this.opts.logger.info('applied', { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, resourceVersion: r.metadata.resourceVersion, peer: call.getPeer() });
            cb(null, toWire(r));
          }, (err: unknown) => fail(cb, err));
      },
      updateStatus: (call, cb) => {
        const { kind, namespace, name, statusJson, expectedVersion } = call.request;
        Promise.resolve()
          .then(() => {
            let status: unknown;
            try {
              status = JSON.parse(statusJson);
            } catch (err) {
              throw new ValidationError('request', [{ path: 'status_json', message: (err as Error).message }]);
            }
            return this.writerFor(kindOf(kind)).putStatus(kindOf(kind), `${namespace || 'default'}/${name}`, status, expectedVersion ? { expectedVersion } : {});
          })
          .then((r) => {
            this.opts.logger.debug('status updated', { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, resourceVersion: r.metadata.resourceVersion, peer: call.getPeer() });
            cb(null, toWire(r));
          }, (err: unknown) => fail(cb, err));
      },
      delete: (call, cb) => {
        const { kind, namespace, name, expectedVersion } = call.request;
        Promise.resolve()
          .then(() => this.writerFor(kindOf(kind)).delete(kindOf(kind), `${namespace || 'default'}/${name}`, expectedVersion ? { expectedVersion } : {}))
          .then(() => cb(null, {}), (err: unknown) => fail(cb, err));
      },
    };
  }

  private watch(call: ServerDuplexStream<DispatcherWatchRequest, DispatcherWatchEvent>): void {
    const { store, logger } = this.opts;
    const buffer = new NotificationBuffer();
    const info: WatcherInfo = { clientId: '', peer: call.getPeer(), subscriptions: [], sent: 0, lastVersion: '', connectedAt: new Date().toISOString() };
    let watch: Watch | undefined;
    let timer: NodeJS.Timeout | undefined;
    let blocked = false;
    let closed = false;

    const send = (ev: Partial<DispatcherWatchEvent> & { type: DispatcherWatchEventType }) => {
      const full: DispatcherWatchEvent = { kind: '', namespace: '', name: '', version: '', deleted: false, service: '', ...ev };
      if (!call.write(full)) blocked = true;
    };
    const flush = () => {
      timer = undefined;
      if (closed || blocked) return; // on 'drain' we flush what accumulated meanwhile
      const coalesced = buffer.coalesced;
      buffer.coalesced = 0;
      this.coalescedTotal.inc(coalesced);
      for (const n of buffer.drain()) {
        send({ type: DispatcherWatchEventType.NOTIFY, ...n });
        this.notifications.inc({ kind: n.kind });
        info.sent++;
        info.lastVersion = n.version;
      }
    };
    const schedule = () => {
      timer ??= setTimeout(flush, this.opts.coalesceMs ?? 10);
    };
    call.on('drain', () => {
      blocked = false;
      if (buffer.size) schedule();
    });
    const onEvent = (e: Parameters<Parameters<ResourceStore['watch']>[0]>[0]) => {
      const n = toNotification(e);
      if (isSubscribed(info.subscriptions, n)) {
        buffer.add(n);
        schedule();
      }
    };
    const cleanup = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      watch?.close();
      this.watchers.delete(call);
      logger.info('watch closed', { clientId: info.clientId, peer: info.peer, sent: info.sent });
    };

    /** Ends the stream with a status the client sees (destroy() would end it without one). */
    const refuse = (code: status, message: string) => {
      logger.warn('watch refused', { clientId: info.clientId, peer: info.peer, code: status[code], error: message });
      cleanup();
      call.emit('error', Object.assign(new Error(message), { code, details: message }));
    };

    // Requests are handled in order, and none before the store is synced (the sync barrier).
    let chain = this.synced;
    call.on('data', (req: DispatcherWatchRequest) => {
      if (!VERSION_RE.test(req.resumeVersion)) return refuse(status.INVALID_ARGUMENT, `resume_version: must be a store version (decimal digits), got ${JSON.stringify(req.resumeVersion.slice(0, 40))}`);
      chain = chain.then(() => handle(req));
    });
    const handle = (req: DispatcherWatchRequest) => {
      if (closed) return;
      if (!VERSION_RE.test(req.resumeVersion)) return refuse(status.INVALID_ARGUMENT, `resume_version: must be a store version (decimal digits), got ${JSON.stringify(req.resumeVersion.slice(0, 40))}`);
      if (req.subscriptions.length > MAX_SUBSCRIPTIONS) return refuse(status.RESOURCE_EXHAUSTED, `subscriptions: at most ${MAX_SUBSCRIPTIONS} per stream, got ${req.subscriptions.length}`);
      info.subscriptions = req.subscriptions.map((s) => ({ ...s }));
      if (watch) {
        // A later message replaces the subscriptions. With a resume version it also replays what
        // changed since then under the new subscriptions, so a client that fetched newly watched
        // objects around the time it subscribed misses no change in between (duplicates are harmless).
        if (req.resumeVersion) {
          try {
            store.watch(onEvent, { fromVersion: req.resumeVersion }).close();
          } catch (err) {
            if (isVersionExpired(err)) send({ type: DispatcherWatchEventType.RESYNC, version: store.version() });
          }
        }
        return;
      }
      info.clientId = req.clientId;
      this.watchers.set(call, info);
      logger.info('watch opened', { clientId: info.clientId, peer: info.peer, resumeVersion: req.resumeVersion, subscriptions: info.subscriptions.length });
      if (req.resumeVersion) {
        try {
          watch = store.watch(onEvent, { fromVersion: req.resumeVersion });
          flush(); // the replay, before SYNCED
          send({ type: DispatcherWatchEventType.SYNCED, version: store.version() });
        } catch (err) {
          if (!isVersionExpired(err)) return refuse(status.INTERNAL, (err as Error).message);
          const version = store.version();
          watch = store.watch(onEvent);
          send({ type: DispatcherWatchEventType.RESYNC, version });
        }
      } else {
        watch = store.watch(onEvent);
        send({ type: DispatcherWatchEventType.SYNCED, version: store.version() });
      }
    };
    call.on('end', () => {
      cleanup();
      call.end();
    });
    call.on('cancelled', cleanup);
    call.on('error', cleanup);
    call.on('close', cleanup);
  }
}

export { DispatcherService, status };
