/**
 * Where Pilot reads the mesh: the `MeshSource` seam (its contract is written on the interface in
 * @octo-mesh/contracts) and its in-memory implementation for tests, benches and a pilot run alone.
 */
import type { AuthorizationPolicy, RoutePolicy } from '@octo-mesh/api';
import { authorizationTarget, backingOf, changeNamespace, policyTarget, type MeshChange, type MeshSource, type MeshWatch, type ServiceBacking } from '@octo-mesh/contracts';
import { Counter, Gauge, type Registry } from '@octo-mesh/runtime';
import { keyOf, type Endpoint, type Service, type ServiceData, type ServiceKey } from './model.js';

export { policyTarget, type MeshChange, type MeshSource, type MeshWatch } from '@octo-mesh/contracts';

interface Watcher {
  services: Set<ServiceKey>;
  /** Namespaces whose service and endpoints changes are delivered for every service. */
  namespaces: Set<string>;
  onChange: (changes: MeshChange[]) => void;
  pending: MeshChange[];
  closed: boolean;
}

/**
 * An in-memory MeshSource: the test and bench adapter, and the store of the embedded mesh until
 * the dispatcher lands. Writers change it through the methods below; watchers are notified on the
 * next microtask, with changes coalesced per tick.
 */
export class MemoryMeshSource implements MeshSource {
  private readonly services = new Map<ServiceKey, Service>();
  private readonly endpoints = new Map<ServiceKey, Endpoint[]>();
  private readonly policies = new Map<string, RoutePolicy>();
  private readonly authorizationPolicies = new Map<string, AuthorizationPolicy>();
  private readonly watchers = new Set<Watcher>();
  /** Number of fetch calls answered; benches read it to show how much was fetched. */
  fetches = 0;

  async fetch(keys: readonly ServiceKey[]): Promise<Map<ServiceKey, ServiceData>> {
    this.fetches++;
    const out = new Map<ServiceKey, ServiceData>();
    for (const key of keys) {
      const service = this.services.get(key);
      if (!service) continue;
      const policies = [...this.policies.values()].filter((p) => policyTarget(p) === key);
      const authorizationPolicies = [...this.authorizationPolicies.values()].filter((p) => authorizationTarget(p) === key);
      out.set(key, { service, endpoints: this.endpoints.get(key) ?? [], policies, ...(authorizationPolicies.length ? { authorizationPolicies } : {}) });
    }
    return out;
  }

  async backing(namespace: string): Promise<ServiceBacking[]> {
    const out: ServiceBacking[] = [];
    for (const [key, service] of this.services) if (key.startsWith(`${namespace}/`)) out.push(backingOf(key, { service, endpoints: this.endpoints.get(key) ?? [] }));
    return out;
  }

  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch {
    const w: Watcher = { services: new Set(services), namespaces: new Set(), onChange, pending: [], closed: false };
    this.watchers.add(w);
    return {
      update: (next, namespaces) => {
        w.services = new Set(next);
        w.namespaces = new Set(namespaces ?? []);
      },
      close: () => {
        w.closed = true;
        this.watchers.delete(w);
      },
    };
  }

  upsertService(service: Service, endpoints?: Endpoint[]): void {
    const key = keyOf(service);
    this.services.set(key, service);
    if (endpoints) this.endpoints.set(key, endpoints);
    this.notify({ kind: 'service', service: key });
  }

  deleteService(key: ServiceKey): void {
    this.services.delete(key);
    this.endpoints.delete(key);
    this.notify({ kind: 'service', service: key });
  }

  setEndpoints(key: ServiceKey, endpoints: Endpoint[]): void {
    this.endpoints.set(key, endpoints);
    this.notify({ kind: 'endpoints', service: key });
  }

  applyPolicy(policy: RoutePolicy): void {
    const id = `${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`;
    const old = this.policies.get(id);
    this.policies.set(id, policy);
    if (old && policyTarget(old) !== policyTarget(policy)) this.notify({ kind: 'routePolicy', service: policyTarget(old) });
    this.notify({ kind: 'routePolicy', service: policyTarget(policy) });
  }

  deletePolicy(namespace: string, name: string): void {
    const old = this.policies.get(`${namespace}/${name}`);
    if (!old) return;
    this.policies.delete(`${namespace}/${name}`);
    this.notify({ kind: 'routePolicy', service: policyTarget(old) });
  }

  applyAuthorizationPolicy(policy: AuthorizationPolicy): void {
    const id = `${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}`;
    const old = this.authorizationPolicies.get(id);
    this.authorizationPolicies.set(id, policy);
    if (old && authorizationTarget(old) !== authorizationTarget(policy)) this.notify({ kind: 'authorizationPolicy', service: authorizationTarget(old) });
    this.notify({ kind: 'authorizationPolicy', service: authorizationTarget(policy) });
  }

  deleteAuthorizationPolicy(namespace: string, name: string): void {
    const old = this.authorizationPolicies.get(`${namespace}/${name}`);
    if (!old) return;
    this.authorizationPolicies.delete(`${namespace}/${name}`);
    this.notify({ kind: 'authorizationPolicy', service: authorizationTarget(old) });
  }

  /** All policies, for status computation in tests and the embedded mesh. */
  listPolicies(): RoutePolicy[] {
    return [...this.policies.values()];
  }

  private notify(change: MeshChange): void {
    for (const w of this.watchers) {
      const byNamespace = (change.kind === 'service' || change.kind === 'endpoints') && w.namespaces.has(changeNamespace(change)!);
      if (change.kind !== 'resync' && !w.services.has(change.service) && !byNamespace) continue;
      if (w.pending.push(change) > 1) continue;
      queueMicrotask(() => {
        if (w.closed) return;
        const batch = w.pending;
        w.pending = [];
        w.onChange(batch);
      });
    }
  }
}

export interface TrackedMeshSourceOptions {
  /** Metrics go here: `pilot_source_fetch_failures_total`, `pilot_source_stale_seconds`. */
  registry?: Registry;
  /** Further checks of the same source, e.g. its watch stream (`DispatcherMeshSource.health`). */
  checks?: (() => true | string)[];
  /** A fetch failing for this long makes the pilot not ready. Default 5 s. */
  graceMs?: number;
  now?: () => number;
}

/**
 * Wraps a MeshSource to notice when it keeps failing. Pilot retries a failed fetch forever and
 * keeps serving its last good snapshots meanwhile (the right thing for the data plane), but
 * changes stop reaching sidecars and new sidecars get nothing: that must not look healthy.
 * `health()` is a readiness check (false after `graceMs` of failures); the failures and how long
 * the source has been stale are metrics.
 */
export class TrackedMeshSource implements MeshSource {
  private failingSince: number | undefined;
  private lastError = '';
  private readonly failures: Counter | undefined;
  private readonly now: () => number;

  constructor(
    private readonly inner: MeshSource,
    private readonly opts: TrackedMeshSourceOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    if (opts.registry) {
      this.failures = new Counter({ name: 'pilot_source_fetch_failures_total', help: 'Fetches from the mesh source (dispatcher) that failed; each is retried.', registers: [opts.registry] });
      const stale = () => this.staleSeconds();
      new Gauge({
        name: 'pilot_source_stale_seconds',
        help: 'How long fetches from the mesh source have been failing (0: the last one succeeded).',
        registers: [opts.registry],
        collect() {
          this.set(stale());
        },
      });
    }
  }

  fetch(keys: readonly ServiceKey[]): Promise<Map<ServiceKey, ServiceData>> {
    return this.tracked(() => this.inner.fetch(keys));
  }

  backing(namespace: string): Promise<ServiceBacking[]> {
    return this.tracked(() => this.inner.backing(namespace));
  }

  /** A call to the source: a success ends a failing streak, a failure starts or continues it (counted, its error kept). */
  private async tracked<T>(call: () => Promise<T>): Promise<T> {
    try {
      const r = await call();
      this.failingSince = undefined;
      return r;
    } catch (err) {
      this.failingSince ??= this.now();
      this.lastError = (err as Error).message;
      this.failures?.inc();
      throw err;
    }
  }

  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch {
    return this.inner.watch(services, onChange);
  }

  staleSeconds(): number {
    return this.failingSince === undefined ? 0 : (this.now() - this.failingSince) / 1000;
  }

  /** true, or why this pilot's view of the mesh is stale. */
  health(): true | string {
    if (this.failingSince !== undefined && this.now() - this.failingSince >= (this.opts.graceMs ?? 5000))
      return `fetches from the mesh source failing for ${Math.round(this.staleSeconds())} s: ${this.lastError}`;
    for (const check of this.opts.checks ?? []) {
      const h = check();
      if (h !== true) return h;
    }
    return true;
  }
}
