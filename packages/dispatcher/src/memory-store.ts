import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isResourceKind, kindInfo, resourceKey, resourceSchema, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { ConflictError, NotFoundError, ValidationError, formatPath } from '@octo-mesh/runtime';
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
  type Watch,
  type WatchOptions,
} from './store.js';

export interface MemoryStoreOptions {
  /** Persist to `<dir>/store.json` (written atomically after each burst of changes) and load it at open. */
  dir?: string;
  /** How many past events are kept for watches that resume from a version. Default 10,000. */
  historySize?: number;
  /**
   * Version of an empty, non-persisted store. Default: the current time in µs, so a restarted
   * store's versions are all newer than anything a client saw from its previous life — a client
   * resuming from an old version is told to resync instead of being replayed the wrong history.
   */
  initialVersion?: bigint;
}

interface Persisted {
  version: string;
  objects: MeshResource[];
}

const PERSIST_FILE = 'store.json';

/** Validates an object against its kind's schema; throws ValidationError naming each field. */
export function validateResource(resource: unknown): MeshResource {
  const r = resource as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  const kind = r?.kind;
  if (!isResourceKind(kind)) throw new ValidationError('resource', [{ path: 'kind', message: `unknown kind ${JSON.stringify(kind)}` }]);
  const result = resourceSchema(kind).safeParse(resource);
  if (!result.success) {
    const subject = `${kind}/${String(r?.metadata?.namespace ?? 'default')}/${String(r?.metadata?.name ?? '?')}`;
    throw new ValidationError(subject, result.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  }
  return result.data as MeshResource;
}

/** What a put compares to decide whether anything changed (server-set metadata excluded). */
function contentOf(r: MeshResource): string {
  const { resourceVersion: _v, generation: _g, uid: _u, creationTimestamp: _c, ...meta } = r.metadata;
  return JSON.stringify({ ...r, metadata: { ...meta, namespace: meta.namespace ?? 'default' } });
}

/**
 * The in-memory {@link ResourceStore}: the embedded mode's store and the dispatcher's hub into
 * which every source syncs. Single-threaded, so every method is atomic; events are delivered
 * synchronously after commit, in version order. Optionally persisted to a directory so a restart
 * loses nothing (the version continues from the persisted one, so resuming watchers either
 * continue or are told to resync — never silently miss a change).
 */
export class MemoryStore implements ResourceStore {
  private rev = 0n;
  private readonly objects = new Map<ResourceKind, Map<Key, MeshResource>>();
  private readonly history: StoreEvent[] = [];
  private readonly watchers = new Set<{ handler: (e: StoreEvent) => void; kinds?: readonly ResourceKind[] }>();
  private flushScheduled = false;
  private closed = false;

  private constructor(private readonly opts: MemoryStoreOptions) {}

  /** Opens a store, loading `<dir>/store.json` when `dir` is given and the file exists. */
  static open(opts: MemoryStoreOptions = {}): MemoryStore {
    const store = new MemoryStore(opts);
    store.rev = opts.initialVersion ?? BigInt(Date.now()) * 1000n;
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true });
      let text: string | undefined;
      try {
        text = readFileSync(join(opts.dir, PERSIST_FILE), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (text !== undefined) {
        const data = JSON.parse(text) as Persisted;
        store.rev = BigInt(data.version);
        for (const o of data.objects) store.bucket(o.kind).set(resourceKey(o), o);
      }
    }
    return store;
  }

  private bucket(kind: ResourceKind): Map<Key, MeshResource> {
    let b = this.objects.get(kind);
    if (!b) this.objects.set(kind, (b = new Map()));
    return b;
  }

  version(): Version {
    return this.rev.toString();
  }

  async get(kind: ResourceKind, key: Key): Promise<MeshResource> {
    const o = this.objects.get(kind)?.get(key);
    if (!o) throw new NotFoundError(`${kind} ${key} not found`);
    return structuredClone(o);
  }

  async list(kind: ResourceKind, opts: ListOptions = {}): Promise<ListResult> {
    const items = [...(this.objects.get(kind)?.values() ?? [])]
      .filter((o) => opts.namespace === undefined || (o.metadata.namespace ?? 'default') === opts.namespace)
      .sort((a, b) => resourceKey(a).localeCompare(resourceKey(b)))
      .map((o) => structuredClone(o));
    return { items, version: this.version() };
  }

  async put(resource: MeshResource, opts: PutOptions = {}): Promise<MeshResource> {
    this.assertOpen();
    let valid = validateResource(resource);
    const key = resourceKey(valid);
    const bucket = this.bucket(valid.kind);
    const prev = bucket.get(key);
    this.checkExpected(valid.kind, key, prev, opts.expectedVersion);
    if (kindInfo(valid.kind)) {
      // The status subresource: a put keeps what is stored (the operator owns status).
      const { status: _ignored, ...rest } = valid as MeshResource & { status?: unknown };
      const kept = (prev as { status?: unknown } | undefined)?.status;
      valid = (kept === undefined ? rest : { ...rest, status: kept }) as MeshResource;
    }
    if (prev && contentOf(prev) === contentOf(valid)) return structuredClone(prev);
    this.rev += 1n;
    const version = this.version();
    const specChanged = !prev || JSON.stringify(prev.spec) !== JSON.stringify(valid.spec);
    const stored = {
      ...valid,
      metadata: {
        ...valid.metadata,
        namespace: valid.metadata.namespace ?? 'default',
        resourceVersion: version,
        uid: prev?.metadata.uid ?? randomUUID(),
        creationTimestamp: prev?.metadata.creationTimestamp ?? new Date().toISOString(),
        generation: (prev?.metadata.generation ?? 0) + (specChanged ? 1 : 0),
      },
    } as MeshResource;
    bucket.set(key, stored);
    this.commit({ type: 'PUT', kind: stored.kind, key, version, resource: stored });
    return structuredClone(stored);
  }

  async putStatus(kind: ResourceKind, key: Key, status: unknown, opts: PutOptions = {}): Promise<MeshResource> {
    this.assertOpen();
    if (!kindInfo(kind)) throw new ValidationError(`${kind}/${key}`, [{ path: 'status', message: `${kind} has no status subresource` }]);
    const bucket = this.bucket(kind);
    const prev = bucket.get(key);
    if (!prev) throw new NotFoundError(`${kind} ${key} not found`);
    this.checkExpected(kind, key, prev, opts.expectedVersion);
    const valid = validateResource({ ...prev, status } as MeshResource);
    if (contentOf(prev) === contentOf(valid)) return structuredClone(prev);
    this.rev += 1n;
    const version = this.version();
    const stored = { ...valid, metadata: { ...prev.metadata, resourceVersion: version } } as MeshResource;
    bucket.set(key, stored);
    this.commit({ type: 'PUT', kind, key, version, resource: stored });
    return structuredClone(stored);
  }

  async delete(kind: ResourceKind, key: Key, opts: DeleteOptions = {}): Promise<void> {
    this.assertOpen();
    const bucket = this.bucket(kind);
    const prev = bucket.get(key);
    if (!prev) throw new NotFoundError(`${kind} ${key} not found`);
    this.checkExpected(kind, key, prev, opts.expectedVersion);
    bucket.delete(key);
    this.rev += 1n;
    this.commit({ type: 'DELETE', kind, key, version: this.version(), resource: prev });
  }

  watch(handler: (event: StoreEvent) => void, opts: WatchOptions = {}): Watch {
    this.assertOpen();
    const w = { handler, ...(opts.kinds ? { kinds: opts.kinds } : {}) };
    if (opts.fromVersion !== undefined) {
      const from = opts.fromVersion;
      if (compareVersions(from, this.version()) > 0) throw new VersionExpiredError(`version ${from} is newer than the store's ${this.version()}`);
      const oldest = this.history[0];
      // History covers (oldest.version - 1, now]; anything older than that was forgotten.
      const coveredFrom = oldest ? BigInt(oldest.version) - 1n : this.rev;
      if (BigInt(from || '0') < coveredFrom) throw new VersionExpiredError(`version ${from} is older than the retained history (from ${coveredFrom})`);
      for (const e of this.history) if (compareVersions(e.version, from) > 0) this.deliver(w, e);
    }
    this.watchers.add(w);
    return { close: () => void this.watchers.delete(w) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
    this.flush();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  private checkExpected(kind: ResourceKind, key: Key, prev: MeshResource | undefined, expected: Version | undefined): void {
    if (expected === undefined) return;
    if (expected === '0' ? prev !== undefined : prev?.metadata.resourceVersion !== expected)
      throw new ConflictError(
        `${kind} ${key}: expected version ${expected === '0' ? '(absent)' : expected}, stored ${prev?.metadata.resourceVersion ?? '(absent)'}`,
      );
  }

  private commit(e: StoreEvent): void {
    this.history.push(e);
    const max = this.opts.historySize ?? 10_000;
    if (this.history.length > max) this.history.splice(0, this.history.length - max);
    for (const w of [...this.watchers]) this.deliver(w, e);
    this.scheduleFlush();
  }

  private deliver(w: { handler: (e: StoreEvent) => void; kinds?: readonly ResourceKind[] }, e: StoreEvent): void {
    if (w.kinds && !w.kinds.includes(e.kind)) return;
    try {
      w.handler({ ...e, resource: structuredClone(e.resource) });
    } catch {
      // A watcher's failure is its own; the store and other watchers carry on.
    }
  }

  private scheduleFlush(): void {
    if (!this.opts.dir || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      if (this.flushScheduled) this.flush();
    });
  }

  /** Writes the persisted snapshot now (write to a temp file, then rename: never a torn file). */
  flush(): void {
    this.flushScheduled = false;
    if (!this.opts.dir) return;
    const data: Persisted = { version: this.version(), objects: [...this.objects.values()].flatMap((b) => [...b.values()]) };
    const target = join(this.opts.dir, PERSIST_FILE);
    writeFileSync(`${target}.tmp`, JSON.stringify(data));
    renameSync(`${target}.tmp`, target);
  }
}
