import { status, type ServerDuplexStream, type ServiceError, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { isResourceKind, resourceKey, type MeshResource, type ResourceKind } from '@octo-mesh/api';
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
import { isVersionExpired, type ResourceStore, type Watch } from './store.js';

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

  constructor(private readonly opts: DispatcherServiceOptions) {
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
        Promise.resolve()
          .then(() => store.list(kindOf(call.request.kind), call.request.namespace ? { namespace: call.request.namespace } : {}))
          .then((r) => cb(null, { items: r.items.map(toWire), version: r.version }), (err: unknown) => fail(cb, err));
      },
      apply: (call, cb) => {
        Promise.resolve()
          .then(() => {
            let obj: unknown;
            try {
              obj = parseYaml(call.request.json);
            } catch (err) {
              throw new ValidationError('request', [{ path: 'json', message: (err as Error).message }]);
            }
            const kind = kindOf(String((obj as { kind?: unknown } | null)?.kind));
            return this.writerFor(kind).put(obj as MeshResource, call.request.expectedVersion ? { expectedVersion: call.request.expectedVersion } : {});
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

    call.on('data', (req: DispatcherWatchRequest) => {
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
          if (!isVersionExpired(err)) {
            call.destroy(Object.assign(new Error((err as Error).message), { code: status.INTERNAL }));
            return;
          }
          const version = store.version();
          watch = store.watch(onEvent);
          send({ type: DispatcherWatchEventType.RESYNC, version });
        }
      } else {
        watch = store.watch(onEvent);
        send({ type: DispatcherWatchEventType.SYNCED, version: store.version() });
      }
    });
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
