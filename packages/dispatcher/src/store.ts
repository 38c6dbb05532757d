import type { MeshResource, ResourceKind } from '@octo-mesh/api';
import { OctoError } from '@octo-mesh/runtime';
import type { Version } from '@octo-mesh/contracts';

/**
 * A version of the store (`Version`, @octo-mesh/contracts): a decimal string that grows with
 * every change (like an etcd revision, which is what Kubernetes' resourceVersion is). Every object
 * carries the version of its last write in `metadata.resourceVersion`; a list and every event
 * carry the store's version. Compare versions only with `compareVersions`.
 */
export { compareVersions, type Version } from '@octo-mesh/contracts';

/** `namespace/name`, as produced by `resourceKey` in @octo-mesh/api. */
export type Key = string;

export interface PutOptions {
  /**
   * Optimistic concurrency: the `resourceVersion` the caller last read. The put fails with
   * ConflictError when the stored object's version differs; `'0'` means "create only, the object
   * must not exist". Omitted: last writer wins.
   */
  expectedVersion?: Version;
  /**
   * The object's `status` is written too. For a source that mirrors a store that owns the status
   * (the Kubernetes source copies what the API server holds, the operator's writes included);
   * everyone else's puts leave the stored status as it is (the status subresource).
   */
  withStatus?: boolean;
}

export interface DeleteOptions {
  /** As in {@link PutOptions}: fail with ConflictError unless the stored version is this one. */
  expectedVersion?: Version;
}

export interface ListOptions {
  /** Only objects in this namespace. */
  namespace?: string;
  /**
   * A hint: only objects concerning this service (`namespace/name`, `serviceOf` in
   * @octo-mesh/api) are wanted. A backend may return more; callers filter again.
   */
  service?: string;
  /** A hint for paging: only keys after this one ({@link compareKeys} order). A backend may ignore it. */
  after?: Key;
  /** A hint for paging: at most this many objects (the first by key). A backend may ignore it. */
  limit?: number;
}

/** The order of keys in a list and of List pages: by UTF-16 code units (locale-independent). */
export const compareKeys = (a: Key, b: Key): number => (a < b ? -1 : a > b ? 1 : 0);

export interface ListResult {
  items: MeshResource[];
  /** The store's version when the list was taken; watch from it to miss nothing. */
  version: Version;
}

/** One committed change. */
export interface StoreEvent {
  type: 'PUT' | 'DELETE';
  kind: ResourceKind;
  key: Key;
  /** The store version of this change (the object's new resourceVersion for PUT). */
  version: Version;
  /** PUT: the object as stored. DELETE: the object as it was before the delete. */
  resource: MeshResource;
}

export interface WatchOptions {
  /**
   * Deliver every change after this version first (replayed from history), then live changes.
   * Omitted: live changes only. A version older than the retained history throws
   * {@link VersionExpiredError}: the caller must list again and watch from the list's version.
   */
  fromVersion?: Version;
  /** Only these kinds (default: all). */
  kinds?: readonly ResourceKind[];
}

/** A running watch; `close` is idempotent. */
export interface Watch {
  close(): void;
}

/**
 * The one storage interface of the mesh (DESIGN: two stores behind one interface). Backends:
 * {@link MemoryStore} (embedded mode, optionally persisted to a directory) and the Kubernetes API
 * server. Every backend passes `describeStoreContract`.
 *
 * Semantics every backend guarantees:
 * - Writes are validated against the kind's schema (ValidationError naming each field) and are
 *   atomic per object. A put whose content equals what is stored is a no-op: same version, no
 *   event — so level-triggered sources can re-put everything they see without causing churn.
 * - Concurrency is optimistic: pass `expectedVersion` to turn a lost race into ConflictError;
 *   re-read and retry. Nothing is locked.
 * - Events are delivered in version order, each exactly once per watch, after the change is
 *   committed; a handler that throws does not affect the store or other watchers.
 * - Errors are typed: NotFoundError, ConflictError, ValidationError, VersionExpiredError;
 *   anything else is a transient failure of the backend and may be retried with backoff.
 */
export interface ResourceStore {
  /** The object, or NotFoundError. */
  get(kind: ResourceKind, key: Key): Promise<MeshResource>;
  list(kind: ResourceKind, opts?: ListOptions): Promise<ListResult>;
  /**
   * Creates or replaces; returns the object as stored (with its new resourceVersion). For the
   * CRD kinds (RoutePolicy, ProxyVersion) `status` is a subresource, as on the API server: a put
   * never changes it (what the object carries is ignored), only {@link putStatus} does.
   */
  put(resource: MeshResource, opts?: PutOptions): Promise<MeshResource>;
  /**
   * Replaces the status of a CRD kind's object: the resourceVersion moves, the generation does
   * not (the spec is untouched). NotFoundError when absent, ConflictError on a stale
   * `expectedVersion`, ValidationError naming the field for a status the schema refuses.
   */
  putStatus(kind: ResourceKind, key: Key, status: unknown, opts?: PutOptions): Promise<MeshResource>;
  /** Deletes; NotFoundError when absent. */
  delete(kind: ResourceKind, key: Key, opts?: DeleteOptions): Promise<void>;
  watch(handler: (event: StoreEvent) => void, opts?: WatchOptions): Watch;
  /** The store's current version. */
  version(): Version;
  /** Stops watches and flushes what must be flushed. */
  close(): Promise<void>;
}

/** The requested version is no longer in the store's history; list again, then watch. */
export class VersionExpiredError extends OctoError {}

export const isVersionExpired = (e: unknown): e is VersionExpiredError => e instanceof VersionExpiredError;

/** Orders two versions: negative when a is older than b. */

/**
 * A source of objects for the dispatcher's store: the seam every registry plugs into (a YAML
 * directory, Kubernetes, the meta server's registry over gRPC; external registries later).
 * A source owns the objects it puts — it deletes them when they disappear upstream — and is
 * level-triggered: `start` syncs everything, then follows changes until `stop`. Failures
 * upstream are retried by the source; the store keeps the last good objects meanwhile.
 */
export interface ResourceSource {
  /** Syncs once (resolves when the store reflects the source) and starts following changes. */
  start(): Promise<void>;
  stop(): Promise<void>;
}
