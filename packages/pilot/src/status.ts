/**
 * RoutePolicy status as the control plane sees it: accepted or why not, and how many of the
 * sidecars that call the target service run the policy's current generation. Pure; the operator
 * writes it into the CRD's status.
 */
import type { RoutePolicyStatus } from '@octo-mesh/api';
import type { ServiceKey } from './model.js';
import type { PolicyVerdict } from './translate/policy.js';

/** What one sidecar has of the policies (from the provenance of the resources it ACKed/NACKed). */
export interface SidecarPolicyView {
  dependsOn: ReadonlySet<ServiceKey>;
  /** policy → generation in the last ACKed configuration. */
  acked: ReadonlyMap<string, number>;
  /** policy → generation in the last NACKed configuration. */
  nacked: ReadonlyMap<string, number>;
}

/**
 * A governance policy's status: `Accepted` (or why not), and of the sidecars that should run it
 * (`runs`), how many ACKed or NACKed its current generation (`key`: its provenance on their
 * resources). Shared by RoutePolicy and AuthorizationPolicy (authz-status.ts), whose statuses have
 * one shape.
 */
export function policyStatus<S extends { acked: ReadonlyMap<string, number>; nacked: ReadonlyMap<string, number> }>(
  verdict: { accepted: boolean; generation: number },
  key: string,
  sidecars: Iterable<S>,
  runs: (s: S) => boolean,
  message: string,
): RoutePolicyStatus {
  let total = 0;
  let acked = 0;
  let nacked = 0;
  for (const s of sidecars) {
    if (!runs(s)) continue;
    total++;
    if (!verdict.accepted) continue;
    if (s.nacked.get(key) === verdict.generation) nacked++;
    else if (s.acked.get(key) === verdict.generation) acked++;
  }
  return {
    observedGeneration: verdict.generation,
    accepted: verdict.accepted,
    conditions: [{ type: 'Accepted', status: verdict.accepted ? 'True' : 'False', reason: verdict.accepted ? 'Translated' : 'Invalid', message }],
    sidecars: { total, acked, nacked },
  };
}

export function routePolicyStatus(verdict: PolicyVerdict & { target: ServiceKey }, sidecars: Iterable<SidecarPolicyView>): RoutePolicyStatus {
  return policyStatus(verdict, verdict.policy, sidecars, (s) => s.dependsOn.has(verdict.target), verdict.accepted ? 'translated to xDS' : (verdict.reason ?? 'rejected'));
}
