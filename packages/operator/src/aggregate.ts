/**
 * The fleet aggregate: what the operator knows of the sidecars, summed over every live pilot.
 *
 * Contract with the pilots (each pilot serves it on its admin port):
 *   GET /debug/rollouts     → {@link PilotRollouts}
 *   GET /debug/routepolicyz  → {@link PilotRoutePolicies} (mapped in fleet.ts)
 *   GET /debug/authorizationpolicyz → {@link PilotRoutePolicies} too: an AuthorizationPolicy's
 *     view has the same shape (verdict, generation, sidecar counts)
 * The rollout schemas are the contract in @octo-mesh/contracts (pilot serves them); the
 * RoutePolicy view is the operator's reading of a pilot's `/debug/routepolicyz` (see fleet.ts).
 * The meta server lists the live pilots (`GET /debug/pilots` on its admin port).
 *
 * A pilot that does not answer, answers garbage, or answers about another generation of the
 * rollout makes the aggregate incomplete, and an incomplete aggregate holds the rollout: the
 * planner never advances (or fails) a batch on missing data.
 */
import { PilotRollouts as PilotRolloutsSchema, RolloutAggregate as RolloutAggregateSchema } from '@octo-mesh/contracts';
import { z } from 'zod';

/** One rollout as one pilot sees the sidecars it serves: the shared contract (@octo-mesh/contracts). */
export const rolloutAggregate = RolloutAggregateSchema;
export type RolloutAggregate = z.infer<typeof rolloutAggregate>;

/** A pilot's `GET /debug/rollouts`. */
export const pilotRollouts = PilotRolloutsSchema;
export type PilotRollouts = z.infer<typeof pilotRollouts>;

/** One RoutePolicy as one pilot sees it. */
export const routePolicyView = z.object({
  namespace: z.string(),
  name: z.string(),
  generation: z.number().int().min(0),
  accepted: z.boolean(),
  reason: z.string().optional(),
  message: z.string().optional(),
  acked: z.number().int().min(0),
  nacked: z.number().int().min(0),
  firstNack: z.string().optional(),
  /** Proposed addition: sidecars that should run the policy (else acked + nacked is shown). */
  total: z.number().int().min(0).optional(),
});
export type RoutePolicyView = z.infer<typeof routePolicyView>;

export const pilotRoutePolicies = z.object({ pilotId: z.string().min(1), policies: z.array(routePolicyView) });
export type PilotRoutePolicies = z.infer<typeof pilotRoutePolicies>;

/** A live pilot as the meta server lists it. */
export interface PilotRef {
  id: string;
  /** host:port of its admin HTTP endpoint. */
  adminAddress: string;
}

/**
 * What the operator reads from the fleet — injected, so the integrator can swap in the typed
 * clients of `packages/clients`. Each call may throw; the poller records which pilots answered.
 */
export interface FleetClient {
  /** The live pilots (from the meta server). */
  listPilots(): Promise<PilotRef[]>;
  rollouts(pilot: PilotRef): Promise<PilotRollouts>;
  routePolicies(pilot: PilotRef): Promise<PilotRoutePolicies>;
  /** The AuthorizationPolicies a pilot translated, as per-policy views of the same shape. */
  authorizationPolicies(pilot: PilotRef): Promise<PilotRoutePolicies>;
}

/** Per-pilot answers of one poll; `missing` names the pilots that did not answer (and why). */
export interface FleetSnapshot<T> {
  /** When the poll finished (ms). */
  at: number;
  /** Live pilots per the meta server; empty (and `listError` set) when it could not be asked. */
  pilots: string[];
  answers: Map<string, T>;
  missing: { pilot: string; error: string }[];
  listError?: string;
}

/** The sum over pilots for one rollout, as the planner reads it. */
export interface RolloutObservation {
  /** Every live pilot answered about this generation (and there is at least one pilot). */
  complete: boolean;
  /** Why not complete (pilot ids and reasons), for the status message. */
  missing: string[];
  inScope: number;
  targeted: number;
  upgraded: number;
  ready: number;
  failed: number;
  /** ms, or undefined when no instance is ready. */
  newestReadyAt: number | undefined;
  failures: { instanceId: string; reason: string; message: string }[];
  /** Lowest `batch` any pilot reported; undefined when a pilot did not say. */
  batch: number | undefined;
}

export const EMPTY_OBSERVATION: RolloutObservation = {
  complete: false,
  missing: ['no poll yet'],
  inScope: 0,
  targeted: 0,
  upgraded: 0,
  ready: 0,
  failed: 0,
  newestReadyAt: undefined,
  failures: [],
  batch: undefined,
};

/**
 * Sums one rollout over the pilots' answers. A pilot that answered but does not list the rollout
 * has no sidecar in its scope (it still derived targets: it knows the ProxyVersion) only when it
 * is at least at `generation`; pilots report every ProxyVersion they know, so an absent entry
 * means the pilot has not seen the ProxyVersion yet, which makes the observation incomplete.
 */
export function observeRollout(snapshot: FleetSnapshot<PilotRollouts>, rollout: string, generation: number): RolloutObservation {
  const missing: string[] = [];
  if (snapshot.listError) missing.push(`meta server: ${snapshot.listError}`);
  else if (snapshot.pilots.length === 0) missing.push('no live pilot');
  for (const m of snapshot.missing) missing.push(`${m.pilot}: ${m.error}`);
  const out: RolloutObservation = { ...EMPTY_OBSERVATION, missing, failures: [], batch: undefined };
  let batch: number | undefined = Number.POSITIVE_INFINITY;
  for (const pilot of snapshot.pilots) {
    const answer = snapshot.answers.get(pilot);
    if (!answer) continue; // already in `missing`
    const r = answer.rollouts.find((x) => x.rollout === rollout);
    if (!r) {
      missing.push(`${pilot}: does not know ${rollout} yet`);
      continue;
    }
    if (r.generation !== generation) {
      missing.push(`${pilot}: at generation ${r.generation}, not ${generation}`);
      continue;
    }
    out.inScope += r.inScope;
    out.targeted += r.targeted;
    out.upgraded += r.upgraded;
    out.ready += r.ready;
    out.failed += r.failed;
    const t = r.newestReadyAt ? Date.parse(r.newestReadyAt) : undefined;
    if (t !== undefined && (out.newestReadyAt === undefined || t > out.newestReadyAt)) out.newestReadyAt = t;
    for (const f of r.failures) if (out.failures.length < 20) out.failures.push(f);
    batch = r.batch === undefined || batch === undefined ? undefined : Math.min(batch, r.batch);
  }
  out.batch = batch === Number.POSITIVE_INFINITY ? undefined : batch;
  out.complete = missing.length === 0;
  return out;
}

/** Per-policy sums over pilots, for the RoutePolicy status planner. */
export interface RoutePolicyObservation {
  complete: boolean;
  missing: string[];
  /** Views of pilots that answered about this policy at `generation`. */
  views: RoutePolicyView[];
}

export function observeRoutePolicy(snapshot: FleetSnapshot<PilotRoutePolicies>, namespace: string, name: string, generation: number): RoutePolicyObservation {
  const missing: string[] = [];
  if (snapshot.listError) missing.push(`meta server: ${snapshot.listError}`);
  else if (snapshot.pilots.length === 0) missing.push('no live pilot');
  for (const m of snapshot.missing) missing.push(`${m.pilot}: ${m.error}`);
  const views: RoutePolicyView[] = [];
  for (const pilot of snapshot.pilots) {
    const answer = snapshot.answers.get(pilot);
    if (!answer) continue;
    const v = answer.policies.find((p) => p.namespace === namespace && p.name === name);
    // A pilot translates a policy only while one of its sidecars calls the target service: one
    // that answered without it has no sidecar that runs it (nothing to add), not missing data.
    if (!v) continue;
    else if (v.generation !== generation) missing.push(`${pilot}: at generation ${v.generation}, not ${generation}`);
    else views.push(v);
  }
  return { complete: missing.length === 0, missing, views };
}
