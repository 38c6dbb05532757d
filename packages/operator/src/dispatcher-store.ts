/**
 * The operator's store in embedded mode: the dispatcher. Objects come from a DispatcherInformer
 * (list + watch, resumed after a reconnect, relisted when the dispatcher cannot replay); status is
 * written with the dispatcher's UpdateStatus, conditional on the resourceVersion it was decided
 * on, so the semantics match the Kubernetes backend (a status subresource: spec and generation
 * untouched, a lost race re-read and decided again).
 */
import { DispatcherConnection, DispatcherInformer, type MeshTls } from '@octo-mesh/clients';
import { ConflictError, NotFoundError, type Logger } from '@octo-mesh/runtime';
import { serverMeta, type ObjectOf, type OperatorKind, type OperatorObject, type OperatorStore, type StatusDecision } from './store.js';

const KINDS: readonly OperatorKind[] = ['ProxyVersion', 'RoutePolicy', 'AuthorizationPolicy'];
/** A status write that keeps losing races is given up after this many tries (the queue retries later). */
const MAX_ATTEMPTS = 5;

export interface DispatcherOperatorStoreOptions {
  /** `host:port` of the dispatcher's gRPC API. */
  address: string;
  /** How the operator is named in the dispatcher's debug API. */
  clientId?: string;
  /** mTLS to the dispatcher (plaintext without). */
  tls?: MeshTls;
  logger: Logger;
}

export class DispatcherOperatorStore implements OperatorStore {
  private readonly connection: DispatcherConnection;
  private readonly informer: DispatcherInformer;
  private readonly handlers: ((kind: OperatorKind, key: string) => void)[] = [];
  /** Objects this store wrote last, newer than the informer may have seen yet. */
  private readonly written = new Map<string, OperatorObject>();

  constructor(private readonly opts: DispatcherOperatorStoreOptions) {
    this.connection = new DispatcherConnection(opts.address, opts.tls);
    this.informer = new DispatcherInformer({
      connection: this.connection,
      clientId: opts.clientId ?? 'octo-operator',
      kinds: KINDS,
      logger: opts.logger,
      onChange: (c) => {
        this.written.delete(`${c.kind}:${c.key}`);
        this.emit(c.kind as OperatorKind, c.key);
      },
      onSynced: () => {
        // After a resync every object may have changed: reconcile them all (level-triggered).
        for (const kind of KINDS) for (const o of this.informer.list(kind)) this.emit(kind, `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`);
      },
    });
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
    this.connection.close();
  }

  get<K extends OperatorKind>(kind: K, key: string): ObjectOf<K> | undefined {
    const cached = this.informer.get(kind, key) as ObjectOf<K> | undefined;
    const mine = this.written.get(`${kind}:${key}`) as ObjectOf<K> | undefined;
    // Never older than this store's own last write (the watch may not have delivered it yet).
    const newest = mine && (!cached || BigInt(serverMeta(mine).resourceVersion ?? '0') > BigInt(serverMeta(cached).resourceVersion ?? '0')) ? mine : cached;
    return newest ? structuredClone(newest) : undefined;
  }

  list<K extends OperatorKind>(kind: K): ObjectOf<K>[] {
    return this.informer.list(kind).map((o) => this.get(kind, `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`)!);
  }

  onChange(handler: (kind: OperatorKind, key: string) => void): void {
    this.handlers.push(handler);
  }

  async updateStatus<K extends OperatorKind>(kind: K, key: string, decide: StatusDecision<K>): Promise<ObjectOf<K> | undefined> {
    let current = this.get(kind, key);
    for (let attempt = 1; ; attempt++) {
      if (!current) throw new NotFoundError(`${kind} ${key} not found`);
      const status = decide(current);
      if (status === undefined) return undefined;
      try {
        const stored = (await this.connection.updateStatus(kind, key, status, serverMeta(current).resourceVersion ?? '')) as ObjectOf<K>;
        this.written.set(`${kind}:${key}`, stored);
        return structuredClone(stored);
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= MAX_ATTEMPTS) throw err;
        this.opts.logger.debug('status write lost a race; deciding again on the stored object', { kind, key, attempt });
        current = (await this.connection.get(kind, key).catch((e: unknown) => (e instanceof NotFoundError ? undefined : Promise.reject(e)))) as ObjectOf<K> | undefined;
      }
    }
  }

  private emit(kind: OperatorKind, key: string): void {
    for (const h of this.handlers) h(kind, key);
  }
}
