/**
 * **contract** What the LEGO agent reports about itself: served at its admin `/status` and sent
 * to the proxy child on every change as `{type: 'octo.agent.status', status}` (the proxy relays
 * it to its pilot). The integrator moves the zod schema of this type into packages/contracts as
 * `AgentStatus`; until then this local definition is the source and must stay identical.
 */

export type AgentPhase = 'Idle' | 'Downloading' | 'Verifying' | 'Starting' | 'Draining' | 'Failed';

/** Why an upgrade failed or a version is bad; PascalCase words. */
export type AgentReason =
  | 'DigestMismatch'
  | 'SignatureMissing'
  | 'SignatureInvalid'
  | 'ManifestMismatch'
  | 'DownloadFailed'
  | 'TooLarge'
  | 'UnsafeArchive'
  | 'NotReady'
  | 'Crashed'
  | 'Nacked'
  | 'HealthProbeFailed';

export interface AgentTargetRef {
  version: string;
  sha256: string;
  /** The ProxyVersion, `namespace/name` ('' for a local target file). */
  rollout: string;
  generation: number;
}

export interface AgentStatus {
  instanceId: string;
  /** The version of the proxy serving now (what it reports; `bootstrap`'s own stamp before any upgrade). */
  runningVersion: string;
  target: AgentTargetRef | null;
  phase: AgentPhase;
  /** A proxy child is serving, answers `/ready` with 200 and reports itself xDS-synced. */
  ready: boolean;
  /** ISO time since when `ready` has been true; null while not ready. */
  readySince: string | null;
  lastError: { reason: AgentReason; message: string; version: string } | null;
  /** Versions refused or rolled back for the current target; never started again for it. */
  badVersions: { version: string; sha256: string; reason: AgentReason }[];
  /** ISO time of the last change to any field above. */
  lastChange: string;
  /** The workload certificate, when the agent has a CA (`caUrl`); absent without one. */
  identity?: AgentIdentityStatus;
}

/** The certificate the agent holds for its workload (times ISO). */
export interface AgentIdentityStatus {
  /** The certificate's SPIFFE ID; null before the first certificate. */
  spiffeId: string | null;
  serialNumber: string | null;
  expiresAt: string | null;
  /** When the rotator plans to renew it (50–70 % of its lifetime). */
  renewAt: string | null;
  /** A certificate valid now is held (and published in `certDir`); `/readyz` needs it. */
  ready: boolean;
  /** The last attempt to obtain or renew one, when it failed; null once one succeeds. */
  lastError: { message: string; at: string } | null;
}
