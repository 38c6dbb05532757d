/**
 * AuthorizationPolicy as Pilot sees it: which service a sidecar guards, and the policy's status —
 * accepted or why not, and how many sidecars of the protected service run its current
 * generation. Pure; the operator writes the status into the CRD, as for RoutePolicy (status.ts).
 */
import type { AuthorizationPolicyStatus } from '@octo-mesh/api';
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
 * The provenance key of an AuthorizationPolicy on the resources it shaped. Kind-qualified, so a
 * RoutePolicy and an AuthorizationPolicy of the same `namespace/name` are counted apart.
 */
export const authorizationProvenance = (policy: string): string => `AuthorizationPolicy/${policy}`;

/** What one sidecar has of the policies. */
export interface SidecarAuthorizationView {
  /** The service its inbound listener guards, if any. */
  inbound: ServiceKey | undefined;
  /** provenance key → generation in the last ACKed / NACKed configuration. */
  acked: ReadonlyMap<string, number>;
  nacked: ReadonlyMap<string, number>;
}

export function authorizationPolicyStatus(verdict: AuthorizationVerdict & { target: ServiceKey }, sidecars: Iterable<SidecarAuthorizationView>): AuthorizationPolicyStatus {
  return policyStatus(
    verdict,
    authorizationProvenance(verdict.policy),
    sidecars,
    (s) => s.inbound === verdict.target,
    verdict.accepted
      ? 'translated to RBAC filters of the service\'s inbound listeners'
      : `${verdict.reason ?? 'rejected'}; enforced fail-closed (${verdict.action === 'ALLOW' ? 'allows nothing' : 'denies everything'})`,
  );
}
