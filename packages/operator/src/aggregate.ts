/**
 * The fleet aggregate: what the operator knows of the sidecars, summed over every live pilot.
 *
 * Contract with the pilots (each pilot serves it on its admin port):
 *   GET /debug/rollouts     → {@link PilotRollouts}
 *   GET /debug/routepolicies → {@link PilotRoutePolicies}
 * The schemas are defined here until the integrator moves them to `packages/contracts` (pilot
 * implements them there; this module then re-exports them). The meta server lists the live pilots
 * (`GET /debug/pilots` on its admin port: `[{id, adminAddress, ...}]`).
 *
 * A pilot that does not answer, answers garbage, or answers about another generation of the
 * rollout makes the aggregate incomplete, and an incomplete aggregate holds the rollout: the
 * planner never advances (or fails) a batch on missing data.
 */
import { z } from 'zod';

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), { message: 'must be an ISO time' });

/** One rollout as one pilot sees the sidecars it serves. */
export const rolloutAggregate = z.object({
  /** `namespace/name` of the ProxyVersion. */
  rollout: z.string().min(1),
  /** metadata.generation of the ProxyVersion the pilot derived its targets from. */
  generation: z.number().int().min(0),
  version: z.string(),
  /** Connected sidecars the rollout's scope covers. */
  inScope: z.number().int().min(0),
  /** Of those, the ones whose target is this rollout's version. */
  targeted: z.number().int().min(0),
  /** Targeted and running it. */
  upgraded: z.number().int().min(0),
  /** Upgraded and ready. */
  ready: z.number().int().min(0),
  /** Targeted whose agent reports this version bad. */
  failed: z.number().int().min(0),
  /** When the most recently became-ready instance became ready. */
  newestReadyAt: isoTime.nullable(),
  failures: z.array(z.object({ instanceId: z.string(), reason: z.string(), message: z.string() })).max(20),
  /**
   * Proposed addition (optional until pilots serve it): the `status.currentBatch` the pilot's
   * targets were computed from. With it the planner knows the pilot has seen the batch; without
   * it the planner waits until more instances are targeted than when the batch started.
   */
  batch: z.number().int().min(0).optional(),
});
export type RolloutAggregate = z.infer<typeof rolloutAggregate>;

export const pilotRollouts = z.object({ pilotId: z.string().min(1), observedAt: isoTime, rollouts: z.array(rolloutAggregate) });
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
    if (!v) missing.push(`${pilot}: does not know ${namespace}/${name} yet`);
    else if (v.generation !== generation) missing.push(`${pilot}: at generation ${v.generation}, not ${generation}`);
    else views.push(v);
  }
  return { complete: missing.length === 0, missing, views };
}
