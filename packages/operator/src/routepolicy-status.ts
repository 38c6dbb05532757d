/**
 * RoutePolicy status from the pilots' views, summed: Accepted (or why not, from Pilot's
 * translation), how many sidecars ACKed / NACKed the policy's current generation, and the first
 * NACK's reason. Pure. The status is written only when it differs from the stored one ignoring
 * condition timestamps, so counts that do not move cause no writes.
 */
import type { Condition, RoutePolicyStatus } from '@octo-mesh/api';
import type { RoutePolicyObservation } from './aggregate.js';
import { setCondition } from './planner.js';

export interface RoutePolicyStatusInput {
  generation: number;
  current: RoutePolicyStatus | undefined;
  observation: RoutePolicyObservation;
  now: number;
  /**
   * The message while no pilot has the policy. An AuthorizationPolicy's status has the same shape
   * and is planned here too; what "no sidecars" means differs: no instance of the protected
   * service has a sidecar yet.
   */
  noSidecarsMessage?: string;
}

/** AuthorizationPolicy's wording for {@link RoutePolicyStatusInput.noSidecarsMessage}. */
export const AUTHORIZATION_NO_SIDECARS = 'no sidecar of the protected service is connected yet; translated when one is';

export interface RoutePolicyStatusPlan {
  status: RoutePolicyStatus;
  /** False when nothing changed (or the data is incomplete): do not write. */
  write: boolean;
}

/** Drops what only records when something happened, to compare what a status says. */
export function withoutTimestamps<T extends { conditions?: Condition[] | undefined }>(s: T | undefined): unknown {
  if (!s) return undefined;
  return { ...s, conditions: (s.conditions ?? []).map(({ lastTransitionTime: _t, ...c }) => c) };
}

/** Structural equality; a property set to undefined equals an absent one. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Whether two statuses say the same, ignoring condition timestamps. */
export function sameStatus<T extends { conditions?: Condition[] | undefined }>(a: T | undefined, b: T | undefined): boolean {
  return deepEqual(withoutTimestamps(a), withoutTimestamps(b));
}

export function planRoutePolicyStatus({ generation, current, observation, now, noSidecarsMessage }: RoutePolicyStatusInput): RoutePolicyStatusPlan {
  // Missing data holds the status as it is (the meta server drops a dead pilot within its TTL).
  if (!observation.complete) return { status: current ?? {}, write: false };
  const views = observation.views;
  if (views.length === 0) {
    // No pilot translated it: none of their sidecars calls the target service yet. The schema
    // (and CEL) already admitted it; whether Pilot accepts it is not known until one does.
    const why = { status: 'Unknown' as const, reason: 'NoSidecars', message: noSidecarsMessage ?? 'no sidecar calls the target service yet; translated when one does', observedGeneration: generation };
    const conditions = setCondition(setCondition(current?.conditions, { type: 'Accepted', ...why }, now), { type: 'Synced', ...why }, now);
    const status: RoutePolicyStatus = { observedGeneration: generation, conditions, sidecars: { total: 0, acked: 0, nacked: 0 } };
    return { status, write: !sameStatus(current, status) };
  }
  const rejected = views.find((v) => !v.accepted);
  const accepted = rejected === undefined;
  let acked = 0;
  let nacked = 0;
  let total = 0;
  for (const v of views) {
    acked += v.acked;
    nacked += v.nacked;
    total += v.total ?? v.acked + v.nacked;
  }
  const firstNack = views.find((v) => v.firstNack)?.firstNack;
  let conditions = setCondition(
    current?.conditions,
    {
      type: 'Accepted',
      status: accepted ? 'True' : 'False',
      reason: accepted ? 'Translated' : (rejected.reason ?? 'Invalid'),
      message: accepted ? 'translated to xDS' : (rejected.message ?? 'rejected'),
      observedGeneration: generation,
    },
    now,
  );
  const synced: Omit<Condition, 'lastTransitionTime'> = !accepted
    ? { type: 'Synced', status: 'False', reason: 'NotAccepted', message: 'not sent to sidecars', observedGeneration: generation }
    : nacked > 0
      ? { type: 'Synced', status: 'False', reason: 'Nacked', message: `${nacked} sidecars NACKed generation ${generation}${firstNack ? `; first: ${firstNack}` : ''}`, observedGeneration: generation }
      : acked >= total
        ? { type: 'Synced', status: 'True', reason: 'AllAcked', message: `${acked} sidecars ACKed generation ${generation}`, observedGeneration: generation }
        : { type: 'Synced', status: 'Unknown', reason: 'Pending', message: `${acked} of ${total} sidecars ACKed generation ${generation}`, observedGeneration: generation };
  conditions = setCondition(conditions, synced, now);
  const status: RoutePolicyStatus = { observedGeneration: generation, accepted, conditions, sidecars: { total, acked, nacked } };
  return { status, write: !sameStatus(current, status) };
}
