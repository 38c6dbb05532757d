/**
 * The rollout contract between the LEGO agent, Pilot and the operator.
 *
 * - The agent (beside each proxy) reports an {@link AgentStatus} whenever it changes; the proxy
 *   child forwards it to the pilot it is connected to.
 * - Each pilot keeps the statuses of the sidecars it serves (pilots are sharded: each knows only
 *   its own) and serves `GET /debug/rollouts` → {@link PilotRollouts}: per rollout, how many of
 *   its connected sidecars are in scope, targeted, upgraded, ready and failed.
 * - The operator polls every live pilot (the meta server lists them) and sums the aggregates; a
 *   pilot that does not answer holds the rollout (it never advances on missing data).
 */
import { z } from 'zod';

/**
 * Requests a person makes of a rollout (`octoctl rollout abort|undo`), written as annotations on
 * the ProxyVersion so its spec (and the spec's immutability rules) stay as they are; the value is
 * when it was asked (ISO). The operator acts on each value once and records it in the status.
 */
export const ROLLOUT_ABORT_ANNOTATION = 'mesh.octo.io/rollout-abort';
export const ROLLOUT_UNDO_ANNOTATION = 'mesh.octo.io/rollout-undo';

export const AGENT_PHASES = ['Idle', 'Downloading', 'Verifying', 'Starting', 'Draining', 'Failed'] as const;
export type AgentPhase = (typeof AGENT_PHASES)[number];

/**
 * Why an upgrade was refused or rolled back, in PascalCase like Kubernetes condition reasons.
 * Open-ended on the wire (a newer agent may send more), these are the ones the agent sends today.
 */
export const AGENT_FAILURE_REASONS = [
  'DigestMismatch',
  'SignatureMissing',
  'SignatureInvalid',
  'ManifestMismatch',
  'DownloadFailed',
  'TooLarge',
  'UnsafeArchive',
  'NotReady',
  'Crashed',
  'Nacked',
  'HealthProbeFailed',
] as const;

/** The release a sidecar is told to run (what Pilot's UpgradeTarget carries, less the package URL). */
export const TargetRef = z.object({
  version: z.string(),
  sha256: z.string(),
  /** `namespace/name` of the ProxyVersion. */
  rollout: z.string(),
  generation: z.number(),
});

/** What a LEGO agent reports about its sidecar. Times are ISO strings. */
export const AgentStatus = z.object({
  instanceId: z.string(),
  /** Version of the proxy child in service. */
  runningVersion: z.string(),
  target: TargetRef.nullable(),
  phase: z.enum(AGENT_PHASES),
  /** The serving child is ready and xDS-synced. */
  ready: z.boolean(),
  /** When the serving child became ready; null while it is not. */
  readySince: z.string().nullable(),
  lastError: z.object({ reason: z.string(), message: z.string(), version: z.string() }).nullable(),
  /**
   * Releases this agent refused or rolled back for the current target; it does not start them
   * again for that target. Cleared when a target from another rollout or generation arrives (so a
   * transient DownloadFailed can be retried by a new generation).
   */
  badVersions: z.array(z.object({ version: z.string(), sha256: z.string(), reason: z.string() })),
  lastChange: z.string(),
  /**
   * The workload certificate, sent by an agent that has a mesh CA configured (optional: agents
   * without one, and older agents, leave it out). `ready`: a certificate valid now is held; the
   * agent's `/readyz` needs it besides `ready` above.
   */
  identity: z
    .object({
      spiffeId: z.string().nullable(),
      serialNumber: z.string().nullable(),
      expiresAt: z.string().nullable(),
      renewAt: z.string().nullable(),
      ready: z.boolean(),
      /** The last failed attempt to obtain or renew it; null once one succeeds. */
      lastError: z.object({ message: z.string(), at: z.string() }).nullable(),
    })
    .optional(),
});
export type AgentStatus = z.infer<typeof AgentStatus>;

/** One rollout as one pilot sees it, over the sidecars connected to that pilot. */
export const RolloutAggregate = z.object({
  /** `namespace/name` of the ProxyVersion. */
  rollout: z.string(),
  /** The ProxyVersion generation these counts were taken against. */
  generation: z.number(),
  version: z.string(),
  /** Connected sidecars the rollout's scope covers. */
  inScope: z.number().int().min(0),
  /** Of those, whose target is this rollout's version. */
  targeted: z.number().int().min(0),
  /** Targeted and running it. */
  upgraded: z.number().int().min(0),
  /** Upgraded and ready. */
  ready: z.number().int().min(0),
  /** Targeted whose agent reports this version bad. */
  failed: z.number().int().min(0),
  /** When the most recently ready instance became ready (ISO); null when none is. */
  newestReadyAt: z.string().nullable(),
  /** Up to 20 failures with their reasons. */
  failures: z.array(z.object({ instanceId: z.string(), reason: z.string(), message: z.string() })).max(20),
  /**
   * The `status.currentBatch` of the ProxyVersion the pilot computed its targets from, so the
   * operator knows every pilot has seen a batch before gating it. Optional on the wire (a pilot
   * that does not say makes the operator wait until the batch's instances show up as targeted);
   * octo pilots always send it.
   */
  batch: z.number().int().min(0).optional(),
});
export type RolloutAggregate = z.infer<typeof RolloutAggregate>;

/** A pilot's `GET /debug/rollouts`. */
export const PilotRollouts = z.object({
  pilotId: z.string(),
  observedAt: z.string(),
  rollouts: z.array(RolloutAggregate),
});
export type PilotRollouts = z.infer<typeof PilotRollouts>;
