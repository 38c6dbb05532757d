/**
 * AuthorizationPolicy as Pilot sees it: which services a sidecar guards, and the policy's status —
 * accepted or why not, and how many sidecars of the protected service run its current
 * generation. Pure; the operator writes the status into the CRD, as for RoutePolicy (status.ts).
 */
import type { AuthorizationPolicyStatus } from '@octo-mesh/api';
import type { ServiceBacking } from '@octo-mesh/contracts';
import type { ServiceKey } from './model.js';
import type { NodeIdentity } from './node-meta.js';
import { policyStatus } from './status.js';
import type { AuthorizationVerdict } from './translate/authz.js';

/**
 * The service whose AuthorizationPolicies a node's inbound listener enforces: `<namespace>/<app>`
 * (the workload's app, the name its Service has, as a Workload's `serviceOf` says), when the node
 * has an inbound listener (`app_port` or `app_socket`). A node without an app name gets no RBAC filter.
 */
export function inboundService(id: Pick<NodeIdentity, 'namespace' | 'app' | 'appPort' | 'appSocket'>): ServiceKey | undefined {
  return (id.appPort || id.appSocket) && id.app ? `${id.namespace}/${id.app}` : undefined;
}

/**
 * The services whose AuthorizationPolicies a node's inbound listener enforces: every service of
 * its namespace its workload backs, sorted — its own `<namespace>/<app>` ({@link inboundService},
 * so a Service named like its workload is guarded before its endpoints list the instance), and
 * each service whose endpoints name the node's workload (`namespace/app`) or instance id, or whose
 * selector the node's labels match. A node without an inbound listener guards nothing.
 *
 * More services is the safe error (their DENY policies all apply), so every signal adds one;
 * none removes one. `backings` are the namespace's (MeshSource.backing).
 */
export function backedServices(
  id: Pick<NodeIdentity, 'namespace' | 'app' | 'appPort' | 'appSocket' | 'instanceId' | 'labels'>,
  backings: Iterable<ServiceBacking>,
): ServiceKey[] {
  const own = inboundService(id);
  if (!(id.appPort || id.appSocket)) return [];
  const out = new Set<ServiceKey>(own ? [own] : []);
  const workload = id.app ? `${id.namespace}/${id.app}` : undefined;
  for (const b of backings) {
    if (!b.service.startsWith(`${id.namespace}/`)) continue;
    const bySelector = b.selector !== undefined && Object.entries(b.selector).every(([k, v]) => id.labels[k] === v);
    if ((workload && b.workloads.includes(workload)) || b.instances.includes(id.instanceId) || bySelector) out.add(b.service);
  }
  return [...out].sort();
}

/**
 * The provenance key of an AuthorizationPolicy on the resources it shaped. Kind-qualified, so a
 * RoutePolicy and an AuthorizationPolicy of the same `namespace/name` are counted apart.
 */
export const authorizationProvenance = (policy: string): string => `AuthorizationPolicy/${policy}`;

/** What one sidecar has of the policies. */
export interface SidecarAuthorizationView {
  /** The services its inbound listener guards (backedServices). */
  inbound: readonly ServiceKey[];
  /** provenance key → generation in the last ACKed / NACKed configuration. */
  acked: ReadonlyMap<string, number>;
  nacked: ReadonlyMap<string, number>;
}

export function authorizationPolicyStatus(verdict: AuthorizationVerdict & { target: ServiceKey }, sidecars: Iterable<SidecarAuthorizationView>): AuthorizationPolicyStatus {
  return policyStatus(
    verdict,
    authorizationProvenance(verdict.policy),
    sidecars,
    (s) => s.inbound.includes(verdict.target),
    verdict.accepted
      ? 'translated to RBAC filters of the service\'s inbound listeners'
      : `${verdict.reason ?? 'rejected'}; enforced fail-closed (${verdict.action === 'ALLOW' ? 'allows nothing' : 'denies everything'})`,
  );
}
