/**
 * What the operator needs of a store: read the two kinds it reconciles, hear that one changed,
 * and write their status. Two backends: Kubernetes (informers + the status subresource,
 * `kube-store.ts`) and, wired by the integrator, the dispatcher's store in embedded mode
 * (`MemoryOperatorStore` below shows the semantics a backend must keep: generation bumps only on
 * spec changes, status writes conditional on the resourceVersion that was decided on).
 */
import type { AuthorizationPolicy, AuthorizationPolicyStatus, ProxyVersion, ProxyVersionStatus, RoutePolicy, RoutePolicyStatus } from '@octo-mesh/api';
import { ConflictError, NotFoundError } from '@octo-mesh/runtime';

export type OperatorKind = 'ProxyVersion' | 'RoutePolicy' | 'AuthorizationPolicy';
export type ObjectOf<K extends OperatorKind> = K extends 'ProxyVersion' ? ProxyVersion : K extends 'RoutePolicy' ? RoutePolicy : AuthorizationPolicy;
export type StatusOf<K extends OperatorKind> = K extends 'ProxyVersion' ? ProxyVersionStatus : K extends 'RoutePolicy' ? RoutePolicyStatus : AuthorizationPolicyStatus;
/** Any object the operator reconciles. */
export type OperatorObject = ProxyVersion | RoutePolicy | AuthorizationPolicy;

/** `namespace/name` */
export const keyOf = (o: { metadata: { name: string; namespace?: string | undefined } }): string => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

/** Server-owned metadata the operator reads (the zod `objectMeta` keeps only what users write). */
export interface ServerMeta {
  generation?: number;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
}
export const serverMeta = (o: { metadata: object }): ServerMeta => o.metadata as ServerMeta;

/**
 * Decides the status to write from the object as stored now; undefined writes nothing. Called
 * again with the re-read object when the write lost a resourceVersion race, so it must be pure.
 */
export type StatusDecision<K extends OperatorKind> = (current: ObjectOf<K>) => StatusOf<K> | undefined;

export interface OperatorStore {
  /** Lists and starts watching both kinds; resolves once the caches hold the first list. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * The object as last seen (cache; never older than this store's own last status write to it),
   * or undefined when absent. `metadata` carries generation and resourceVersion (see ServerMeta).
   */
  get<K extends OperatorKind>(kind: K, key: string): ObjectOf<K> | undefined;
  list<K extends OperatorKind>(kind: K): ObjectOf<K>[];
  /** Calls `handler` after every add, update and delete it sees (also for its own writes). */
  onChange(handler: (kind: OperatorKind, key: string) => void): void;
  /**
   * Writes the status that `decide` returns, conditional on the resourceVersion `decide` saw (the
   * status subresource: spec and metadata are not touched). On a conflict the object is re-read
   * and `decide` runs again (a few times, then ConflictError). Resolves to the stored object, or
   * undefined when `decide` declined; NotFoundError when the object is gone.
   */
  updateStatus<K extends OperatorKind>(kind: K, key: string, decide: StatusDecision<K>): Promise<ObjectOf<K> | undefined>;
}

/**
 * An in-memory store (tests, and the model for an embedded backend): objects with generation and
 * resourceVersion, bumping generation only when the spec changes, as the API server does.
 */
export class MemoryOperatorStore implements OperatorStore {
  private readonly objects = new Map<string, OperatorObject>();
  private readonly handlers: ((kind: OperatorKind, key: string) => void)[] = [];
  private rv = 0;
  /** Statuses written (for tests and benchmarks). */
  readonly writes: { kind: OperatorKind; key: string; status: unknown; at: number }[] = [];

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  private id(kind: OperatorKind, key: string) {
    return `${kind}:${key}`;
  }

  private emit(kind: OperatorKind, key: string) {
    for (const h of this.handlers) h(kind, key);
  }

  get<K extends OperatorKind>(kind: K, key: string): ObjectOf<K> | undefined {
    const o = this.objects.get(this.id(kind, key));
    return o ? (structuredClone(o) as ObjectOf<K>) : undefined;
  }

  list<K extends OperatorKind>(kind: K): ObjectOf<K>[] {
    return [...this.objects.values()].filter((o) => o.kind === kind).map((o) => structuredClone(o) as ObjectOf<K>);
  }

  onChange(handler: (kind: OperatorKind, key: string) => void): void {
    this.handlers.push(handler);
  }

  /** Creates or replaces an object's spec (status kept), as a user's apply does. */
  apply(o: OperatorObject): void {
    const key = keyOf(o);
    const prev = this.objects.get(this.id(o.kind, key));
    const prevMeta = prev ? serverMeta(prev) : undefined;
    const specChanged = !prev || JSON.stringify(prev.spec) !== JSON.stringify(o.spec);
    const generation = (prevMeta?.generation ?? 0) + (specChanged ? 1 : 0);
    const next = { ...structuredClone(o), metadata: { ...o.metadata, generation, resourceVersion: String(++this.rv) }, ...(prev?.status ? { status: prev.status } : {}) };
    if (!prev?.status) delete (next as { status?: unknown }).status;
    this.objects.set(this.id(o.kind, key), next as OperatorObject);
    this.emit(o.kind, key);
  }

  delete(kind: OperatorKind, key: string): void {
    if (this.objects.delete(this.id(kind, key))) this.emit(kind, key);
  }

  async updateStatus<K extends OperatorKind>(kind: K, key: string, decide: StatusDecision<K>): Promise<ObjectOf<K> | undefined> {
    const current = this.get(kind, key);
    if (!current) throw new NotFoundError(`${kind} ${key} not found`);
    const rv = serverMeta(current).resourceVersion;
    const status = decide(current);
    if (status === undefined) return undefined;
    const stored = this.objects.get(this.id(kind, key));
    if (!stored || serverMeta(stored).resourceVersion !== rv) throw new ConflictError(`${kind} ${key}: changed while deciding`);
    const next = { ...stored, status: structuredClone(status), metadata: { ...stored.metadata, resourceVersion: String(++this.rv) } } as OperatorObject;
    this.objects.set(this.id(kind, key), next);
    this.writes.push({ kind, key, status, at: Date.now() });
    this.emit(kind, key);
    return structuredClone(next) as ObjectOf<K>;
  }
}
