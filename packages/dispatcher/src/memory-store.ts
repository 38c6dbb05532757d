import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isResourceKind, kindInfo, resourceKey, resourceSchema, serviceOf, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { ConflictError, NotFoundError, ValidationError, formatPath, recordError, type Logger } from '@octo-mesh/runtime';
import {
  compareKeys,
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
  /**
   * Persist to `<dir>`: every change is appended to `<dir>/journal.jsonl` and fsynced before the
   * write resolves (changes arriving together share one fsync), and the journal is compacted into
   * `<dir>/store.json` (written to a temporary file, fsynced, renamed) when it grows. Opening
   * loads the snapshot and replays the journal, so a kill -9 loses no write that was answered.
   */
  dir?: string;
  /** Where a watcher's exception is reported (a watcher's failure never affects the store). */
  logger?: Logger;
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
const JOURNAL_FILE = 'journal.jsonl';
/** The journal is folded into the snapshot when it is larger than this and than the last snapshot. */
const COMPACT_BYTES = 4 * 1024 * 1024;

/** One journal line: a committed change. */
interface JournalEntry {
  v: string;
  kind: ResourceKind;
  key: Key;
  /** The object as stored; absent for a delete. */
  o?: MeshResource;
}

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
  private journalFd: number | undefined;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private pendingLines: string[] = [];
  private durableWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

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
        store.snapshotBytes = text.length;
        for (const o of data.objects) store.bucket(o.kind).set(resourceKey(o), o);
      }
      store.replayJournal(join(opts.dir, JOURNAL_FILE), text !== undefined);
    }
    return store;
  }

  /** Applies the journal's changes newer than the snapshot; a torn last line (kill -9 mid-write) is dropped. */
  private replayJournal(path: string, hasSnapshot: boolean): void {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    let good = 0;
    for (const [i, line] of lines.entries()) {
      if (!line) continue;
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch (err) {
        if (i >= lines.length - 2) break; // the last line, cut short: never acknowledged
        throw new Error(`${path}: line ${i + 1} is corrupt: ${(err as Error).message}`);
      }
      good += line.length + 1;
      // Entries the snapshot already holds (it was written, the journal not yet emptied) are skipped.
      if (hasSnapshot && BigInt(e.v) <= this.rev) continue;
      this.rev = BigInt(e.v);
      if (e.o) this.bucket(e.kind).set(e.key, e.o);
      else this.bucket(e.kind).delete(e.key);
    }
    this.journalFd = openSync(path, 'a+');
    if (good !== Buffer.byteLength(text)) ftruncateSync(this.journalFd, Buffer.byteLength(text.slice(0, good)));
    this.journalBytes = good;
  }

  private bucket(kind: ResourceKind): Map<Key, MeshResource> {
    let b = this.objects.get(kind);
    if (!b) this.objects.set(kind, (b = new Map()));
    return b;
  }

  version(): Version {
    return this.rev.toString();
  }

  /** How many objects of a kind are stored (cheap: nothing is copied). */
  count(kind: ResourceKind): number {
    return this.objects.get(kind)?.size ?? 0;
  }

  async get(kind: ResourceKind, key: Key): Promise<MeshResource> {
    const o = this.objects.get(kind)?.get(key);
    if (!o) throw new NotFoundError(`${kind} ${key} not found`);
    return structuredClone(o);
  }

  async list(kind: ResourceKind, opts: ListOptions = {}): Promise<ListResult> {
    const { namespace, service, after, limit } = opts;
    let keys = [...(this.objects.get(kind)?.entries() ?? [])]
      .filter(([key, o]) => (namespace === undefined || (o.metadata.namespace ?? 'default') === namespace) && (service === undefined || serviceOf(o) === service) && (after === undefined || compareKeys(key, after) > 0))
      .map(([key]) => key)
      .sort(compareKeys);
    if (limit) keys = keys.slice(0, limit);
    const bucket = this.objects.get(kind);
    // Only the objects returned are copied: a page of a large list costs its page, not the list.
    return { items: keys.map((k) => structuredClone(bucket!.get(k)!)), version: this.version() };
  }

  async put(resource: MeshResource, opts: PutOptions = {}): Promise<MeshResource> {
    this.assertOpen();
    let valid = validateResource(resource);
    const key = resourceKey(valid);
    const bucket = this.bucket(valid.kind);
    const prev = bucket.get(key);
    this.checkExpected(valid.kind, key, prev, opts.expectedVersion);
    if (kindInfo(valid.kind) && !opts.withStatus) {
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
    await this.durable();
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
    await this.durable();
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
    await this.durable();
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
    if (this.closed) return;
    this.closed = true;
    this.watchers.clear();
    this.flush();
    if (this.opts.dir) this.compact();
    if (this.journalFd !== undefined) closeSync(this.journalFd);
    this.journalFd = undefined;
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
    if (this.opts.dir) {
      const entry: JournalEntry = { v: e.version, kind: e.kind, key: e.key, ...(e.type === 'PUT' ? { o: e.resource } : {}) };
      this.pendingLines.push(`${JSON.stringify(entry)}\n`);
      this.scheduleFlush();
    }
  }

  /** Resolves once everything committed so far is on disk (at once without a directory). */
  private durable(): Promise<void> {
    if (!this.opts.dir || !this.flushScheduled) return Promise.resolve();
    return new Promise((resolve, reject) => this.durableWaiters.push({ resolve, reject }));
  }

  private deliver(w: { handler: (e: StoreEvent) => void; kinds?: readonly ResourceKind[] }, e: StoreEvent): void {
    if (w.kinds && !w.kinds.includes(e.kind)) return;
    try {
      w.handler({ ...e, resource: structuredClone(e.resource) });
    } catch (err) {
      // A watcher's failure is its own; the store and other watchers carry on.
      recordError(this.opts.logger, 'store watcher', err, { kind: e.kind, key: e.key, resourceVersion: e.version }, 'error');
    }
  }

  private scheduleFlush(): void {
    if (!this.opts.dir || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      if (this.flushScheduled) this.flush();
    });
  }

  /**
   * Appends the changes committed since the last flush to the journal and fsyncs it (one write and
   * one fsync for a burst of changes), then answers the writes waiting for it.
   */
  flush(): void {
    this.flushScheduled = false;
    const waiters = this.durableWaiters;
    this.durableWaiters = [];
    if (!this.opts.dir || this.journalFd === undefined) {
      for (const w of waiters) w.resolve();
      return;
    }
    try {
      if (this.pendingLines.length) {
        const chunk = Buffer.from(this.pendingLines.join(''));
        this.pendingLines = [];
        writeAll(this.journalFd, chunk);
        fsyncSync(this.journalFd);
        this.journalBytes += chunk.length;
      }
      if (this.journalBytes > COMPACT_BYTES && this.journalBytes > this.snapshotBytes) this.compact();
    } catch (err) {
      // Not durable: the waiting writers get the error (their change is in memory, but may not
      // survive a restart), so a client sees the failure and can apply again.
      recordError(this.opts.logger, 'persisting the store', err, { dir: this.opts.dir }, 'error');
      for (const w of waiters) w.reject(err);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  /** Folds everything into `store.json` (temporary file, fsync, rename, fsync of the directory), then empties the journal. */
  private compact(): void {
    const dir = this.opts.dir!;
    const data: Persisted = { version: this.version(), objects: [...this.objects.values()].flatMap((b) => [...b.values()]) };
    const text = JSON.stringify(data);
    const target = join(dir, PERSIST_FILE);
    const tmp = openSync(`${target}.tmp`, 'w');
    try {
      writeAll(tmp, Buffer.from(text));
      fsyncSync(tmp);
    } finally {
      closeSync(tmp);
    }
    renameSync(`${target}.tmp`, target);
    const d = openSync(dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
    this.snapshotBytes = text.length;
    if (this.journalFd !== undefined) {
      ftruncateSync(this.journalFd, 0);
      fsyncSync(this.journalFd);
    }
    this.journalBytes = 0;
  }
}

function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}
