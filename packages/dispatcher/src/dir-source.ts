import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { formatIssue, parseManifests, resourceKey, type ManifestIssue, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { RESOURCE_KINDS } from '@octo-mesh/api';
import { SOURCE_ANNOTATION } from '@octo-mesh/clients';
import { isNotFound, recordError, type Logger } from '@octo-mesh/runtime';
import type { ResourceSource, ResourceStore } from './store.js';

/** What was last loaded from one file. */
export interface LoadedFile {
  hash: string;
  /** The file's objects in force: its current content, or its last good content when rejected. `kind|namespace/name` → object. */
  objects: Map<string, MeshResource>;
  /** Problems of the file's current content; non-empty means the content was rejected. */
  issues: ManifestIssue[];
}

export interface DirectoryPlan {
  puts: MeshResource[];
  deletes: { kind: ResourceKind; key: string }[];
  next: Map<string, LoadedFile>;
  /** Every current problem: rejected files and objects defined twice. */
  issues: ManifestIssue[];
  /** The objects in force after the plan is applied. */
  desired: Map<string, MeshResource>;
}

/** The {@link SOURCE_ANNOTATION} value of objects a directory wrote. */
export const DIRECTORY_SOURCE = 'directory';

const owned = (o: MeshResource): MeshResource => ({ ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [SOURCE_ANNOTATION]: DIRECTORY_SOURCE } } }) as MeshResource;

const idOf = (o: MeshResource) => `${o.kind}|${resourceKey(o)}`;
const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Pure: from what was loaded before and the files' current texts, what to put and delete.
 *
 * A file with any problem is rejected as a whole and its last good objects stay in force (as a
 * proxy keeps its last good config on a NACK): half-applying an edited file could route traffic
 * by a policy nobody wrote. A removed file's objects are deleted. When two files define the same
 * object, the file that sorts first wins and the other is reported.
 */
export function planDirectorySync(prev: ReadonlyMap<string, LoadedFile>, texts: ReadonlyMap<string, string>): DirectoryPlan {
  const next = new Map<string, LoadedFile>();
  for (const file of [...texts.keys()].sort()) {
    const text = texts.get(file)!;
    const hash = hashOf(text);
    const before = prev.get(file);
    if (before && before.hash === hash) {
      next.set(file, before);
      continue;
    }
    const { objects, issues } = parseManifests(text, file);
    if (issues.length) next.set(file, { hash, objects: before?.objects ?? new Map(), issues });
    else next.set(file, { hash, objects: new Map(objects.map((o) => [idOf(o), o as MeshResource])), issues: [] });
  }
  const issues: ManifestIssue[] = [...next.values()].flatMap((l) => l.issues);
  const desired = new Map<string, MeshResource>();
  const owner = new Map<string, string>();
  for (const [file, loaded] of next) {
    for (const [id, o] of loaded.objects) {
      const first = owner.get(id);
      if (first === undefined) {
        owner.set(id, file);
        desired.set(id, o);
      } else issues.push({ source: file, document: 0, object: id.replace('|', '/'), path: 'metadata.name', message: `also defined in ${first}, which wins` });
    }
  }
  const had = new Map<string, MeshResource>();
  for (const loaded of [...prev.values()].reverse()) for (const [id, o] of loaded.objects) had.set(id, o);
  const puts = [...desired.entries()].filter(([id, o]) => JSON.stringify(had.get(id)) !== JSON.stringify(o)).map(([, o]) => o);
  const deletes = [...had.entries()].filter(([id]) => !desired.has(id)).map(([, o]) => ({ kind: o.kind, key: resourceKey(o) }));
  return { puts, deletes, next, issues, desired };
}

export interface DirectorySourceOptions {
  dir: string;
  store: ResourceStore;
  logger: Logger;
  /** Quiet time after a file event before rescanning, ms (editors write in bursts). Default 50. */
  debounceMs?: number;
  /** Called after each sync with the current problems (for metrics and debug APIs). */
  onIssues?: (issues: ManifestIssue[]) => void;
}

/**
 * Syncs a directory of YAML manifests (`*.yaml`, `*.yml`, recursively) into a store and keeps it
 * synced while the directory changes. Level-triggered: every change rescans the directory and
 * reconciles the difference, so a missed or duplicated file event changes nothing. Objects it put
 * are its own: removing them from the files deletes them from the store.
 */
export class DirectorySource implements ResourceSource {
  private loaded = new Map<string, LoadedFile>();
  private current: ManifestIssue[] = [];
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private again = false;
  private syncing = false;
  private adopted = false;

  constructor(private readonly opts: DirectorySourceOptions) {}

  /** Loads the directory once and starts watching it. */
  async start(): Promise<void> {
    await this.sync();
    this.watcher = watch(this.opts.dir, { recursive: true }, () => this.schedule());
    this.watcher.on('error', (err) => this.opts.logger.warn('directory watch failed', { dir: this.opts.dir, error: err.message }));
  }

  /** Current problems, by file. */
  issues(): ManifestIssue[] {
    return this.current;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.sync(), this.opts.debounceMs ?? 50);
  }

  /** Rescans and reconciles now; concurrent calls coalesce into one more pass. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.running;
    }
    this.syncing = true;
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          recordError(this.opts.logger, 'directory sync', err, { dir: this.opts.dir }, 'error');
        }
      } while (this.again);
      this.syncing = false;
    })();
    return this.running;
  }

  private async pass(): Promise<void> {
    const { dir, store, logger } = this.opts;
    const texts = new Map<string, string>();
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !/\.ya?ml$/.test(entry.name)) continue;
      const path = join(entry.parentPath, entry.name);
      try {
        texts.set(relative(dir, path), await readFile(path, 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // removed meanwhile: the next pass sees it gone
      }
    }
    const before = new Set(this.issues().map(formatIssue));
    const plan = planDirectorySync(this.loaded, texts);
    const deletes = [...plan.deletes];
    let puts = plan.puts;
    if (!this.adopted) {
      // Also on the first pass: an object another source wrote over a file's since (octoctl
      // apply) stays that source's until the file changes again — a restart re-reads every file,
      // which is no new edit.
      const others = new Set<string>();
      for (const o of puts) {
        const stored = await store.get(o.kind, resourceKey(o)).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
        const source = stored?.metadata.annotations?.[SOURCE_ANNOTATION];
        if (stored && source !== undefined && source !== DIRECTORY_SOURCE) others.add(idOf(o));
      }
      if (others.size) logger.info('objects in the directory written since by another source; kept until their file changes', { objects: [...others] });
      puts = puts.filter((o) => !others.has(idOf(o)));
      // First pass (a restart with a persisted store): objects this source wrote in an earlier
      // life whose files are gone meanwhile are deleted too, so the store reflects the directory.
      for (const kind of RESOURCE_KINDS)
        for (const o of (await store.list(kind)).items)
          if (o.metadata.annotations?.[SOURCE_ANNOTATION] === DIRECTORY_SOURCE && !plan.desired.has(`${o.kind}|${resourceKey(o)}`)) deletes.push({ kind: o.kind, key: resourceKey(o) });
      this.adopted = true;
    }
    for (const o of puts) {
      try {
        const stored = await store.put(owned(o));
        logger.info('applied from directory', { kind: o.kind, namespace: stored.metadata.namespace, name: o.metadata.name, resourceVersion: stored.metadata.resourceVersion });
      } catch (err) {
        logger.error('store rejected object from directory', { kind: o.kind, name: o.metadata.name, error: (err as Error).message });
      }
    }
    for (const d of deletes) {
      try {
        // Only what this source wrote: an object of the same name applied since by octoctl (or
        // published by the registry) is its writer's, and stays.
        const stored = await store.get(d.kind, d.key);
        const source = stored.metadata.annotations?.[SOURCE_ANNOTATION];
        if (source !== DIRECTORY_SOURCE) {
          logger.info('no longer in directory, but written since by another source; kept', { kind: d.kind, key: d.key, source: source ?? '(none)' });
          continue;
        }
        await store.delete(d.kind, d.key, { expectedVersion: stored.metadata.resourceVersion! });
        logger.info('deleted, no longer in directory', { kind: d.kind, key: d.key });
      } catch (err) {
        if (isNotFound(err)) continue;
        // A conflict means another writer got there between the read and the delete: theirs now.
        recordError(logger, 'deleting an object no longer in the directory', err, { kind: d.kind, key: d.key });
      }
    }
    this.loaded = plan.next;
    this.current = plan.issues;
    const issues = plan.issues;
    for (const i of issues) if (!before.has(formatIssue(i))) logger.warn('rejected manifest, keeping its last good content', { file: join(dir, i.source), issue: formatIssue(i) });
    this.opts.onIssues?.(issues);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
    await this.running;
  }
}
