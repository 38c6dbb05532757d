import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import { GROUP, VERSION, resourceKey, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { Restarter, isNotFound, recordError, type Logger } from '@octo-mesh/runtime';
import { endpointsFromSlices, serviceFromKube, SERVICE_NAME_LABEL, workloadsFromPods } from './kube-translate.js';
import { validateResource } from './memory-store.js';
import type { ResourceSource, ResourceStore } from './store.js';

type Cached<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  store: ResourceStore;
  logger: Logger;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;

/**
 * The only code in the control plane that reads RoutePolicies, ProxyVersions, Services,
 * EndpointSlices and Pods from the Kubernetes API server: one informer per type, translated into
 * the resource model and synced into the dispatcher's store. Level-triggered: every informer
 * event recomputes the affected objects from the informer caches and puts them (an unchanged
 * result is a no-op in the store), so a relist or a duplicate event changes nothing.
 * A CRD object that fails the zod schema (the API server's CEL rules are a subset) is skipped
 * and logged; the rest of the mesh keeps working.
 */
export class KubernetesSource implements ResourceSource {
  private readonly informers: Cached<KubernetesObject>[] = [];
  private services!: Cached<V1Service>;
  private slices!: Cached<V1EndpointSlice>;
  private pods!: Cached<V1Pod>;
  private readonly owned = new Map<ResourceKind, Set<string>>();
  private readonly restarters: Restarter[] = [];

  constructor(private readonly opts: KubernetesSourceOptions) {}

  async start(): Promise<void> {
    const kc = this.opts.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const crd = (plural: string) =>
      makeInformer<KubernetesObject>(kc, `/apis/${GROUP}/${VERSION}/${plural}`, () =>
        custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<KubernetesListObject<KubernetesObject>>,
      );
    const routePolicies = crd('routepolicies');
    const proxyVersions = crd('proxyversions');
    const authorizationPolicies = crd('authorizationpolicies');
    this.services = makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    this.slices = makeInformer(kc, '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces());
    this.pods = makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());

    const on = <T extends KubernetesObject>(inf: Cached<T>, name: string, handle: (o: T) => Promise<void>) => {
      for (const verb of ['add', 'update', 'delete'] as const) inf.on(verb, (o) => void handle(o).catch((err: unknown) => this.opts.logger.error('sync from Kubernetes failed', { informer: name, key: keyOf(o), error: (err as Error).message })));
      // An informer stops on error; it is restarted with backoff and jitter, and while it stays
      // down the dispatcher is not ready (health()): its copy of that kind is going stale.
      const restarter = new Restarter({ name: `kubernetes informer ${name}`, start: () => inf.start(), logger: this.opts.logger, onFailure: (err) => recordError(undefined, `informer ${name}`, err) });
      this.restarters.push(restarter);
      inf.on('error', (err) => restarter.failed(err));
      this.informers.push(inf as unknown as Cached<KubernetesObject>);
    };
    on(routePolicies, 'routepolicies', (o) => this.syncCrd('RoutePolicy', routePolicies, keyOf(o)));
    on(proxyVersions, 'proxyversions', (o) => this.syncCrd('ProxyVersion', proxyVersions, keyOf(o)));
    on(authorizationPolicies, 'authorizationpolicies', (o) => this.syncCrd('AuthorizationPolicy', authorizationPolicies, keyOf(o)));
    on(this.services, 'services', (o) => this.syncService(keyOf(o)));
    on(this.slices, 'endpointslices', (o) => this.syncEndpoints(`${o.metadata?.namespace ?? 'default'}/${o.metadata?.labels?.[SERVICE_NAME_LABEL] ?? ''}`));
    on(this.pods, 'pods', async (o) => {
      await this.syncWorkloads();
      // A pod's labels are its endpoints' labels: recompute the services it backs.
      const ns = o.metadata?.namespace ?? 'default';
      const services = new Set(
        this.slices
          .list(ns)
          .filter((s) => (s.endpoints ?? []).some((e) => e.targetRef?.name === o.metadata?.name))
          .map((s) => s.metadata?.labels?.[SERVICE_NAME_LABEL] ?? ''),
      );
      for (const s of services) if (s) await this.syncEndpoints(`${ns}/${s}`);
    });
    await Promise.all(this.informers.map((i) => i.start()));
  }

  /** A readiness check: why the source is stale (an informer down for longer than `graceMs`), or true. */
  health(graceMs = 5000): true | string {
    for (const r of this.restarters) {
      const h = r.health(graceMs);
      if (h !== true) return h;
    }
    return true;
  }

  async stop(): Promise<void> {
    for (const r of this.restarters) r.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private ownedSet(kind: ResourceKind): Set<string> {
    let s = this.owned.get(kind);
    if (!s) this.owned.set(kind, (s = new Set()));
    return s;
  }

  /** Puts `desired` under `key`, or deletes what this source put there when it is undefined. */
  private async reconcile(kind: ResourceKind, key: string, desired: MeshResource | undefined): Promise<void> {
    const owned = this.ownedSet(kind);
    if (desired) {
      // A mirror of the API server: its status (the operator's) comes along.
      await this.opts.store.put(desired, { withStatus: true });
      owned.add(key);
    } else if (owned.delete(key)) {
      await this.opts.store.delete(kind, key).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  }

  private async syncCrd(kind: 'RoutePolicy' | 'ProxyVersion' | 'AuthorizationPolicy', cache: ObjectCache<KubernetesObject>, key: string): Promise<void> {
    const [ns = 'default', name = ''] = key.split('/');
    const obj = cache.get(name, ns);
    if (!obj) return this.reconcile(kind, key, undefined);
    const { managedFields: _m, ...metadata } = obj.metadata ?? {};
    try {
      const valid = validateResource({ ...obj, metadata: { name: metadata.name, namespace: metadata.namespace, labels: metadata.labels, annotations: metadata.annotations } });
      await this.reconcile(kind, key, valid);
    } catch (err) {
      this.opts.logger.warn('skipping invalid object from Kubernetes', { kind, key, resourceVersion: metadata.resourceVersion, error: (err as Error).message });
    }
  }

  private async syncService(key: string): Promise<void> {
    const [ns = 'default', name = ''] = key.split('/');
    const svc = this.services.get(name, ns);
    await this.reconcile('Service', key, svc ? serviceFromKube(svc) : undefined);
  }

  private async syncEndpoints(key: string): Promise<void> {
    const [ns = 'default', service = ''] = key.split('/');
    if (!service) return;
    const slices = this.slices.list(ns).filter((s) => s.metadata?.labels?.[SERVICE_NAME_LABEL] === service);
    const pods = new Map(this.pods.list(ns).map((p) => [keyOf(p), p]));
    await this.reconcile('ServiceEndpoints', key, slices.length ? endpointsFromSlices(ns, service, slices, pods) : undefined);
  }

  private async syncWorkloads(): Promise<void> {
    const desired = new Map(workloadsFromPods(this.pods.list()).map((w) => [resourceKey(w), w]));
    for (const [key, w] of desired) await this.reconcile('Workload', key, w);
    for (const key of [...this.ownedSet('Workload')]) if (!desired.has(key)) await this.reconcile('Workload', key, undefined);
  }
}
