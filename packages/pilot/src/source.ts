/**
 * The seam between Pilot and where the mesh's data lives (the dispatcher in production, memory in
 * tests and benches). Pilot only ever asks for the services its connected sidecars depend on.
 */
import type { RoutePolicy } from '@octo-mesh/api';
import { keyOf, serviceKey, type Endpoint, type Service, type ServiceData, type ServiceKey } from './model.js';

/**
 * A lightweight change notification: it says *what* changed, never the new data (notify, then
 * fetch). `resync` means the source lost track (e.g. its connection to the dispatcher was
 * re-established) and every watched service must be fetched again.
 */
export type MeshChange =
  | { kind: 'service' | 'endpoints' | 'routePolicy'; service: ServiceKey }
  | { kind: 'resync' };

/** A live subscription. */
export interface MeshWatch {
  /** Replaces the watched set. Changes to services added here are delivered from now on; there is no initial event. */
  update(services: Iterable<ServiceKey>): void;
  /** Stops delivery; idempotent. */
  close(): void;
}

/**
 * Where Pilot reads services, endpoints and RoutePolicies.
 *
 * Semantics every implementation must keep:
 * - **Level-triggered.** A notification means "fetch this service again"; Pilot never applies a
 *   delta from a notification. Duplicate, coalesced or reordered notifications are harmless, so an
 *   implementation may batch, merge or repeat them freely. What it must never do is *lose* the
 *   last change to a watched service: after a change is committed, at least one notification for
 *   that service (or a `resync`) is delivered after the commit, and a `fetch` started after that
 *   notification returns data at least as new as the change.
 * - **Kinds are hints.** `endpoints` lets Pilot push EDS only; when unsure, say `service`.
 *   A policy notification names the *target* service (`spec.targetRef`), not the policy.
 * - **Scoped.** Notifications are only for services in the watched set; a source may deliver a
 *   few extra (Pilot ignores them).
 * - **Callbacks** are invoked asynchronously (never from inside `watch`/`update`), one batch at a
 *   time, and must not throw; a batch may hold any number of changes.
 * - `fetch` resolves with an entry per service that exists; a missing service is simply absent
 *   (not an error). It rejects only when the source is unreachable; Pilot retries with backoff.
 */
export interface MeshSource {
  fetch(services: readonly ServiceKey[]): Promise<Map<ServiceKey, ServiceData>>;
  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch;
}

/** The service a RoutePolicy governs, as a key. */
export function policyTarget(p: RoutePolicy): ServiceKey {
  return serviceKey(p.spec.targetRef.namespace ?? p.metadata.namespace ?? 'default', p.spec.targetRef.service);
}

interface Watcher {
  services: Set<ServiceKey>;
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
      out.set(key, { service, endpoints: this.endpoints.get(key) ?? [], policies });
    }
    return out;
  }

  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch {
    const w: Watcher = { services: new Set(services), onChange, pending: [], closed: false };
    this.watchers.add(w);
    return {
      update: (next) => void (w.services = new Set(next)),
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

  /** All policies, for status computation in tests and the embedded mesh. */
  listPolicies(): RoutePolicy[] {
    return [...this.policies.values()];
  }

  private notify(change: MeshChange): void {
    for (const w of this.watchers) {
      if (change.kind !== 'resync' && !w.services.has(change.service)) continue;
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
