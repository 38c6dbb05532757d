/**
 * The seam between Pilot and where the mesh's data lives: the dispatcher in production
 * (`DispatcherMeshSource` in @octo-mesh/clients), memory in tests and benches
 * (`MemoryMeshSource` in pilot). Pilot only ever asks for the services its connected sidecars
 * depend on.
 */
import type { ServiceData, ServiceKey } from './service.js';

/**
 * Who backs one service: what Pilot needs to tell which services a sidecar's workload serves,
 * so its inbound listener enforces the AuthorizationPolicies of every one of them
 * (packages/pilot/README.md, "AuthorizationPolicy").
 */
export interface ServiceBacking {
  service: ServiceKey;
  /** The Service's `spec.selector`: instances with all of these labels back it. */
  selector?: Record<string, string>;
  /** `namespace/workload` of its endpoints (Kubernetes: the pod's app; registry: the instance's workload), sorted. */
  workloads: string[];
  /** Instance ids of its endpoints (pod names, registered instance ids), sorted. */
  instances: string[];
}

/** The backing of one service from its data (endpoints without a workload or instance add nothing). */
export function backingOf(key: ServiceKey, data: Pick<ServiceData, 'service' | 'endpoints'>): ServiceBacking {
  const workloads = new Set<string>();
  const instances = new Set<string>();
  for (const e of data.endpoints) {
    if (e.workload) workloads.add(e.workload);
    if (e.instance) instances.add(e.instance);
  }
  const selector = data.service.spec.selector;
  return { service: key, ...(selector && Object.keys(selector).length ? { selector } : {}), workloads: [...workloads].sort(), instances: [...instances].sort() };
}

/**
 * A lightweight change notification: it says *what* changed, never the new data (notify, then
 * fetch). `resync` means the source lost track (e.g. its connection to the dispatcher was
 * re-established) and every watched service must be fetched again.
 */
export type MeshChange = { kind: 'service' | 'endpoints' | 'routePolicy' | 'authorizationPolicy'; service: ServiceKey } | { kind: 'resync' };

/** The namespace of a change's service (`namespace/name`), or undefined for a resync. */
export const changeNamespace = (c: MeshChange): string | undefined => (c.kind === 'resync' ? undefined : c.service.slice(0, c.service.indexOf('/')));

/** A live subscription. */
export interface MeshWatch {
  /**
   * Replaces the watched set. Changes to services added here are delivered from now on; there is
   * no initial event. `namespaces`: also deliver the `service` and `endpoints` changes of every
   * service of these namespaces (what {@link MeshSource.backing} reads), watched or not.
   */
  update(services: Iterable<ServiceKey>, namespaces?: Iterable<string>): void;
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
  /**
   * Who backs each service of a namespace (one entry per existing service, any order): Pilot
   * reads it for the namespaces of its sidecars with an inbound listener, then keeps it current
   * from the namespace's `service`/`endpoints` changes (watched with `update(…, namespaces)`)
   * and a `fetch` of the changed service. Rejects only when the source is unreachable.
   */
  backing(namespace: string): Promise<ServiceBacking[]>;
  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch;
}
