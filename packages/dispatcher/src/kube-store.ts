import { ApiException, CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION, kindInfo, resourceKey, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { ConflictError, NotFoundError, OctoError, UnavailableError, ValidationError, recordError } from '@octo-mesh/runtime';
import { validateResource } from './memory-store.js';
import {
  compareVersions,
  VersionExpiredError,
  type DeleteOptions,
  type Key,
  type ListOptions,
  type ListResult,
  type PutOptions,
  type ResourceStore,
  type StoreEvent,
  type Version,
  type Watch as StoreWatch,
  type WatchOptions,
} from './store.js';

/** The kinds the API server stores (CRDs); the model's derived kinds come from the Kubernetes source. */
export const KUBE_KINDS = ['RoutePolicy', 'ProxyVersion', 'AuthorizationPolicy'] as const;
type KubeKind = (typeof KUBE_KINDS)[number];

export interface KubernetesStoreOptions {
  kubeConfig: KubeConfig;
  /** Only these namespaces (watch events from others are dropped); default: all. */
  namespaces?: readonly string[];
  /** Field manager / user agent name in the API server's records. Default `octo-dispatcher`. */
  fieldManager?: string;
}

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion?: string };
  spec?: unknown;
  status?: unknown;
}

/** Maps an API server error to the store's typed errors. */
export function fromKubeError(err: unknown, what: string): Error {
  if (err instanceof ApiException) {
    const body = (typeof err.body === 'string' ? safeJson(err.body) : err.body) as { message?: string; details?: { causes?: { field?: string; message?: string }[] } } | undefined;
    const message = body?.message ?? err.message;
    switch (err.code) {
      case 404:
        return new NotFoundError(`${what} not found`);
      case 409:
        return new ConflictError(`${what}: ${message}`);
      case 410:
        return new VersionExpiredError(`${what}: ${message}`);
      case 422:
      case 400:
        return new ValidationError(what, (body?.details?.causes ?? [{ message }]).map((c) => ({ path: c.field ?? '', message: c.message ?? message })));
      case 429:
      case 500:
      case 503:
      case 504:
        return new UnavailableError(`${what}: ${message}`);
      default:
        return new OctoError(`${what}: HTTP ${err.code} ${message}`);
    }
  }
  return err instanceof Error ? err : new Error(String(err));
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}

/** What the mesh keeps of an API server object: no managedFields, no server-only noise. */
function toMesh(o: KubeObject): MeshResource {
  const { managedFields: _m, selfLink: _s, ...metadata } = o.metadata;
  return { ...o, metadata } as unknown as MeshResource;
}

/**
 * The {@link ResourceStore} on the Kubernetes API server, for the CRD kinds (RoutePolicy,
 * ProxyVersion). Objects are validated by the same zod schemas before they are sent (the API
 * server's OpenAPI and CEL rules check them again). Versions are Kubernetes resourceVersions,
 * which are etcd revisions: comparable across kinds in practice, and what `expectedVersion`
 * passes as a precondition. A watch from a version the API server has compacted away reports
 * VersionExpiredError through `onError` (HTTP 410 Gone), asynchronously.
 */
export class KubernetesStore implements ResourceStore {
  private readonly api: CustomObjectsApi;
  private latest: Version = '0';
  private readonly watches = new Set<AbortController>();

  private constructor(private readonly opts: KubernetesStoreOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /**
   * Opens the store: lists each kind once so the store knows the current version, which is where
   * a watch without `fromVersion` starts (so it misses nothing written after `watch()` returns).
   */
  static async open(opts: KubernetesStoreOptions): Promise<KubernetesStore> {
    const store = new KubernetesStore(opts);
    for (const kind of KUBE_KINDS) {
      // Right after a CRD is established the API server answers 503 for a moment: retry that.
      for (let attempt = 0; ; attempt++) {
        try {
          await store.list(kind, opts.namespaces?.length === 1 ? { namespace: opts.namespaces[0]! } : {});
          break;
        } catch (err) {
          if (!(err instanceof UnavailableError) || attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    return store;
  }

  private plural(kind: ResourceKind): string {
    if (!(KUBE_KINDS as readonly string[]).includes(kind)) throw new ValidationError('request', [{ path: 'kind', message: `${kind} is derived from Kubernetes objects and cannot be written or read here; use the Kubernetes source` }]);
    return kindInfo(kind)!.plural;
  }

  private seen(v: string | undefined): void {
    if (v && compareVersions(v, this.latest) > 0) this.latest = v;
  }

  version(): Version {
    return this.latest;
  }

  async get(kind: ResourceKind, key: Key): Promise<MeshResource> {
    const [namespace = 'default', name = ''] = key.split('/');
    try {
      const o = (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: this.plural(kind), name })) as KubeObject;
      this.seen(o.metadata.resourceVersion);
      return toMesh(o);
    } catch (err) {
      throw fromKubeError(err, `${kind} ${key}`);
    }
  }

  async list(kind: ResourceKind, opts: ListOptions = {}): Promise<ListResult> {
    try {
      const plural = this.plural(kind);
      const r = (
        opts.namespace
          ? await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: opts.namespace, plural })
          : await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural })
      ) as { items: KubeObject[]; metadata: { resourceVersion: string } };
      this.seen(r.metadata.resourceVersion);
      const items = r.items.map(toMesh).sort((a, b) => resourceKey(a).localeCompare(resourceKey(b)));
      return { items, version: r.metadata.resourceVersion };
    } catch (err) {
      throw fromKubeError(err, `list ${kind}`);
    }
  }

  async put(resource: MeshResource, opts: PutOptions = {}): Promise<MeshResource> {
    const valid = validateResource(resource);
    const plural = this.plural(valid.kind);
    const namespace = valid.metadata.namespace ?? 'default';
    const name = valid.metadata.name;
    const what = `${valid.kind} ${namespace}/${name}`;
    const { resourceVersion: _rv, generation: _g, uid: _u, creationTimestamp: _c, ...meta } = valid.metadata;
    const body = (rv?: string): KubeObject => ({ ...(valid as unknown as KubeObject), metadata: { ...meta, namespace, name, ...(rv ? { resourceVersion: rv } : {}) } });
    const fieldManager = this.opts.fieldManager ?? 'octo-dispatcher';
    const create = async () => (await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body: body(), fieldManager })) as KubeObject;
    const replace = async (rv: string) => (await this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name, body: body(rv), fieldManager })) as KubeObject;
    try {
      let stored: KubeObject;
      if (opts.expectedVersion === '0') stored = await create();
      else if (opts.expectedVersion !== undefined) stored = await replace(opts.expectedVersion);
      else {
        // Last writer wins: read the current version and replace; a race with another writer
        // (409) is retried with the new version.
        for (let attempt = 0; ; attempt++) {
          let current: KubeObject | undefined;
          try {
            current = (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as KubeObject;
          } catch (err) {
            if (!(err instanceof ApiException) || err.code !== 404) throw err;
          }
          try {
            stored = current ? await replace(current.metadata.resourceVersion!) : await create();
            break;
          } catch (err) {
            if (!(err instanceof ApiException) || err.code !== 409 || attempt >= 5) throw err;
          }
        }
      }
      this.seen(stored.metadata.resourceVersion);
      const status = (valid as { status?: unknown }).status;
      // The API server ignores status on the main resource; a mirror's status goes to /status.
      if (opts.withStatus && status !== undefined) return await this.putStatus(valid.kind, `${namespace}/${name}`, status, { expectedVersion: stored.metadata.resourceVersion! });
      return toMesh(stored);
    } catch (err) {
      const e = fromKubeError(err, what);
      // A replace of an absent object with a precondition is a conflict, as in the memory store.
      throw e instanceof NotFoundError && opts.expectedVersion !== undefined ? new ConflictError(`${what}: expected version ${opts.expectedVersion}, stored (absent)`) : e;
    }
  }

  async putStatus(kind: ResourceKind, key: Key, status: unknown, opts: PutOptions = {}): Promise<MeshResource> {
    const [namespace = 'default', name = ''] = key.split('/');
    const what = `${kind} ${key}`;
    const plural = this.plural(kind);
    const fieldManager = this.opts.fieldManager ?? 'octo-dispatcher';
    try {
      for (let attempt = 0; ; attempt++) {
        const current = (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as KubeObject;
        const rv = opts.expectedVersion ?? current.metadata.resourceVersion!;
        // Validated here as well as by the API server's schema, so both stores name the field alike.
        validateResource({ ...toMesh(current), status } as MeshResource);
        try {
          const stored = (await this.api.replaceNamespacedCustomObjectStatus({
            group: GROUP,
            version: VERSION,
            namespace,
            plural,
            name,
            body: { ...current, metadata: { ...current.metadata, resourceVersion: rv }, status },
            fieldManager,
          })) as KubeObject;
          this.seen(stored.metadata.resourceVersion);
          return toMesh(stored);
        } catch (err) {
          // Last writer wins without a precondition: a race with another writer is re-read and retried.
          if (opts.expectedVersion !== undefined || !(err instanceof ApiException) || err.code !== 409 || attempt >= 5) throw err;
        }
      }
    } catch (err) {
      throw fromKubeError(err, `${what} status`);
    }
  }

  async delete(kind: ResourceKind, key: Key, opts: DeleteOptions = {}): Promise<void> {
    const [namespace = 'default', name = ''] = key.split('/');
    try {
      await this.api.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: this.plural(kind),
        name,
        ...(opts.expectedVersion ? { body: { preconditions: { resourceVersion: opts.expectedVersion } } } : {}),
      });
    } catch (err) {
      throw fromKubeError(err, `${kind} ${key}`);
    }
  }

  watch(handler: (event: StoreEvent) => void, opts: WatchOptions & { onError?: (err: Error) => void } = {}): StoreWatch {
    const kinds = (opts.kinds ?? KUBE_KINDS).filter((k): k is KubeKind => (KUBE_KINDS as readonly string[]).includes(k));
    const namespaces = this.opts.namespaces ? new Set(this.opts.namespaces) : undefined;
    let closed = false;
    const controllers: AbortController[] = [];
    for (const kind of kinds) {
      const path = `/apis/${GROUP}/${VERSION}/${this.plural(kind)}`;
      const start = async (from: string | undefined) => {
        let last = from;
        const ctrl = await new Watch(this.opts.kubeConfig).watch(
          path,
          { allowWatchBookmarks: true, ...(from ? { resourceVersion: from } : {}) },
          (phase, obj: KubeObject) => {
            if (closed) return;
            const rv = obj?.metadata?.resourceVersion;
            if (phase === 'BOOKMARK') {
              last = rv;
              return;
            }
            if (phase === 'ERROR') {
              const code = (obj as unknown as { code?: number }).code;
              closed = code === 410 || closed;
              opts.onError?.(code === 410 ? new VersionExpiredError(`${kind}: version ${from} is too old (410 Gone)`) : new UnavailableError(`${kind} watch: ${JSON.stringify(obj)}`));
              return;
            }
            if (phase !== 'ADDED' && phase !== 'MODIFIED' && phase !== 'DELETED') return;
            last = rv;
            this.seen(rv);
            if (namespaces && !namespaces.has(obj.metadata.namespace ?? 'default')) return;
            const resource = toMesh(obj);
            try {
              handler({ type: phase === 'DELETED' ? 'DELETE' : 'PUT', kind, key: resourceKey(resource), version: rv ?? '', resource });
            } catch (err) {
              // The handler's failure is its own (the watch goes on); counted, never silent.
              recordError(undefined, 'kubernetes store watcher', err);
            }
          },
          (err: unknown) => {
            if (closed) return;
            // The API server ends watches periodically: continue from the last version seen.
            if (err) opts.onError?.(fromKubeError(err, `${kind} watch`));
            setTimeout(() => void start(last).catch((e: unknown) => opts.onError?.(fromKubeError(e, `${kind} watch`))), err ? 500 : 0);
          },
        );
        if (closed) ctrl.abort();
        else {
          controllers.push(ctrl);
          this.watches.add(ctrl);
        }
      };
      // Without a version, watch from "now": the latest version this store has seen or listed.
      void start(opts.fromVersion ?? (this.latest !== '0' ? this.latest : undefined)).catch((err: unknown) => opts.onError?.(fromKubeError(err, `${kind} watch`)));
    }
    return {
      close: () => {
        closed = true;
        for (const c of controllers) {
          c.abort();
          this.watches.delete(c);
        }
      },
    };
  }

  async close(): Promise<void> {
    for (const c of this.watches) c.abort();
    this.watches.clear();
  }
}
