/**
 * The {@link OperatorStore} on the Kubernetes API server: one informer per kind (list + watch,
 * relisting after errors), reads from the informer caches, status written through the status
 * subresource with the resourceVersion the decision was taken on; a conflict re-reads the object
 * and decides again. A status this replica wrote is served to `get` until the informer delivers
 * that version or a newer one (read-your-writes), so a reconcile right after a write never plans
 * from the status before it — which would repeat a batch.
 */
import { ApiException, CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { GROUP, VERSION } from '@octo-mesh/api';
import { Backoff, ConflictError, NotFoundError, UnavailableError, backoffDelay, sleep, type Logger } from '@octo-mesh/runtime';
import type { OperatorMetrics } from './metrics.js';
import { keyOf, serverMeta, type ObjectOf, type OperatorKind, type OperatorStore, type StatusDecision } from './store.js';

const PLURAL: Record<OperatorKind, string> = { ProxyVersion: 'proxyversions', RoutePolicy: 'routepolicies', AuthorizationPolicy: 'authorizationpolicies' };
const KINDS: OperatorKind[] = ['ProxyVersion', 'RoutePolicy', 'AuthorizationPolicy'];
const MAX_CONFLICTS = 8;

type Cached = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export interface KubernetesOperatorStoreOptions {
  kubeConfig: KubeConfig;
  /** Watch only this namespace; default all (needs a ClusterRole). */
  namespace?: string | undefined;
  logger: Logger;
  metrics: OperatorMetrics;
  fieldManager?: string;
}

const rvNumber = (rv: string | undefined): bigint | undefined => (rv && /^\d+$/.test(rv) ? BigInt(rv) : undefined);

function describe(err: unknown): string {
  if (err instanceof ApiException) {
    const body = (typeof err.body === 'string' ? err.body : JSON.stringify(err.body)) ?? '';
    return `HTTP ${err.code} ${body.slice(0, 300)}`;
  }
  return (err as Error)?.message ?? String(err);
}

export class KubernetesOperatorStore implements OperatorStore {
  private readonly api: CustomObjectsApi;
  private readonly informers = new Map<OperatorKind, Cached>();
  private readonly written = new Map<string, KubernetesObject>();
  private readonly handlers: ((kind: OperatorKind, key: string) => void)[] = [];
  private stopped = false;
  private readonly listed = new Set<OperatorKind>();

  constructor(private readonly opts: KubernetesOperatorStoreOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async start(): Promise<void> {
    const { namespace, logger, metrics } = this.opts;
    for (const kind of KINDS) {
      const plural = PLURAL[kind];
      const path = namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`;
      const list = () =>
        (
          (namespace
          ? this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural })
          : this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as Promise<KubernetesListObject<KubernetesObject>>
        ).then((l) => {
          this.listed.add(kind);
          return l;
        });
      const inf = makeInformer<KubernetesObject>(this.opts.kubeConfig, path, list) as Cached;
      const seen = (o: KubernetesObject) => {
        const key = `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
        const id = `${kind}:${key}`;
        const mine = this.written.get(id);
        const a = rvNumber(o.metadata?.resourceVersion);
        const b = rvNumber(mine?.metadata?.resourceVersion);
        if (mine && (a === undefined || b === undefined || a >= b)) this.written.delete(id);
        for (const h of this.handlers) h(kind, key);
      };
      inf.on('add', seen);
      inf.on('update', seen);
      inf.on('delete', (o) => {
        this.written.delete(`${kind}:${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`);
        seen(o);
      });
      const restart = new Backoff({ initialMs: 500, maxMs: 30_000 });
      inf.on('error', (err) => {
        if (this.stopped) return;
        metrics.errors.inc({ where: 'informer' });
        const delay = restart.next();
        logger.warn('informer error, restarting', { kind, retryInMs: delay, error: describe(err) });
        setTimeout(() => {
          if (this.stopped) return;
          inf.start().then(
            () => restart.reset(),
            (e: unknown) => {
              metrics.errors.inc({ where: 'informer' });
              logger.warn('informer restart failed', { kind, error: describe(e) });
            },
          );
        }, delay);
      });
      this.informers.set(kind, inf);
    }
    // A failed list does not reject start(): the informer reports it through 'error' (which
    // restarts it, backed off). Synced means every kind was listed once.
    for (const inf of this.informers.values()) await inf.start();
    while (!this.stopped && KINDS.some((k) => !this.listed.has(k))) await sleep(100);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  private cached(kind: OperatorKind, key: string): KubernetesObject | undefined {
    const mine = this.written.get(`${kind}:${key}`);
    if (mine) return mine;
    const [ns = 'default', name = ''] = key.split('/');
    return this.informers.get(kind)?.get(name, ns);
  }

  get<K extends OperatorKind>(kind: K, key: string): ObjectOf<K> | undefined {
    const o = this.cached(kind, key);
    return o ? (structuredClone(o) as unknown as ObjectOf<K>) : undefined;
  }

  list<K extends OperatorKind>(kind: K): ObjectOf<K>[] {
    const inf = this.informers.get(kind);
    if (!inf) return [];
    const keys = new Set(inf.list(this.opts.namespace).map((o) => keyOf(o as unknown as ObjectOf<K>)));
    return [...keys].flatMap((k) => this.get(kind, k) ?? []);
  }

  onChange(handler: (kind: OperatorKind, key: string) => void): void {
    this.handlers.push(handler);
  }

  private async read(kind: OperatorKind, key: string): Promise<KubernetesObject> {
    const [namespace = 'default', name = ''] = key.split('/');
    try {
      return (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL[kind], name })) as KubernetesObject;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) throw new NotFoundError(`${kind} ${key} not found`);
      throw new UnavailableError(`reading ${kind} ${key}: ${describe(err)}`);
    }
  }

  async updateStatus<K extends OperatorKind>(kind: K, key: string, decide: StatusDecision<K>): Promise<ObjectOf<K> | undefined> {
    const [namespace = 'default', name = ''] = key.split('/');
    const { metrics, logger } = this.opts;
    let current = this.cached(kind, key);
    if (!current) current = await this.read(kind, key);
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const status = decide(structuredClone(current) as unknown as ObjectOf<K>);
      if (status === undefined) return undefined;
      const body = { ...current, status };
      try {
        const stored = (await this.api.replaceNamespacedCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL[kind],
          name,
          body,
          fieldManager: this.opts.fieldManager ?? 'octo-operator',
        })) as KubernetesObject;
        metrics.statusWrites.inc({ kind });
        this.written.set(`${kind}:${key}`, stored);
        return structuredClone(stored) as unknown as ObjectOf<K>;
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) throw new NotFoundError(`${kind} ${key} not found`);
        if (!(err instanceof ApiException) || err.code !== 409) throw new UnavailableError(`writing ${kind} ${key} status: ${describe(err)}`);
        metrics.statusConflicts.inc({ kind });
        logger.debug('status write conflict; re-reading', { kind, key, resourceVersion: serverMeta(current as unknown as ObjectOf<K>).resourceVersion, attempt });
        if (attempt > 0) await sleep(backoffDelay(attempt, { initialMs: 20, maxMs: 1000 }));
        current = await this.read(kind, key);
      }
    }
    throw new ConflictError(`${kind} ${key}: status still conflicting after ${MAX_CONFLICTS} attempts`);
  }
}
