/**
 * The seam between Pilot and where the mesh's data lives: the dispatcher in production
 * (`DispatcherMeshSource` in @octo-mesh/clients), memory in tests and benches
 * (`MemoryMeshSource` in pilot). Pilot only ever asks for the services its connected sidecars
 * depend on.
 */
import type { ServiceData, ServiceKey } from './service.js';

/**
 * A lightweight change notification: it says *what* changed, never the new data (notify, then
 * fetch). `resync` means the source lost track (e.g. its connection to the dispatcher was
 * re-established) and every watched service must be fetched again.
 */
export type MeshChange = { kind: 'service' | 'endpoints' | 'routePolicy' | 'authorizationPolicy'; service: ServiceKey } | { kind: 'resync' };

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
