/**
 * The batch arithmetic of a ProxyVersion rollout, written once: the operator's planner decides
 * when to move from one batch to the next, and every pilot derives each sidecar's target from the
 * same numbers (a stable hash of the instance id below the batch's cumulative share). If the two
 * computed batches differently, a batch could be gated on instances no pilot ever targeted.
 * Pure: no I/O, no clock.
 */
import type { ProxyVersionSpec, ProxyVersionStatus } from './schema/proxyversion.js';

/** The parts of `spec.strategy` the batch math reads. */
export interface BatchStrategy {
  canary?: { instances?: number | undefined; percent?: number | undefined } | undefined;
  steps?: readonly number[] | undefined;
  maxUnavailable?: number | undefined;
}

/**
 * Cumulative share of the instances in scope (percent, 0-100, may be fractional) reached after each
 * batch; index 0 is the canary when the strategy has one, and the last entry is always 100.
 * `total` is the number of instances in scope the batches are planned for (`status.total`, fixed
 * when a batch starts): a canary by instances and `maxUnavailable` are converted to shares of it.
 * Steps at or below the canary's share are dropped (they would be empty batches).
 */
export function rolloutBatches(strategy: BatchStrategy, total: number): number[] {
  const out: number[] = [];
  if (strategy.canary) {
    const c = strategy.canary.percent ?? (total > 0 ? Math.min(100, (100 * (strategy.canary.instances ?? 0)) / total) : 0);
    out.push(c);
  }
  const start = out[0] ?? 0;
  if (strategy.steps) {
    for (const s of strategy.steps) if (s > start) out.push(s);
  } else if (strategy.maxUnavailable && total > 0) {
    const step = (100 * strategy.maxUnavailable) / total;
    for (let k = 1; start + k * step < 100; k++) out.push(start + k * step);
  }
  if (out.at(-1) !== 100) out.push(100);
  return out;
}

/**
 * Phases in which a rollout's instances stay where the current batch put them: advancing,
 * paused, superseded by a newer release (which takes them over as it reaches them), or failed
 * without automatic rollback (held for a person to decide).
 */
function holdsBatch(phase: string, autoRollback: boolean): boolean {
  return phase === 'Progressing' || phase === 'Paused' || phase === 'Superseded' || (phase === 'Failed' && !autoRollback);
}

/**
 * Share of the instances in scope (percent, 0-100) whose target is this release, from its spec and
 * status. 0 before it starts and while (or after) it rolls back, so pilots then give those
 * instances the last Succeeded release in their scope; 100 once it Succeeded.
 */
export function targetPercent(spec: Pick<ProxyVersionSpec, 'strategy'>, status: ProxyVersionStatus | undefined): number {
  const phase = status?.phase ?? 'Pending';
  if (phase === 'Succeeded') return 100;
  if (!holdsBatch(phase, spec.strategy.autoRollback)) return 0;
  const batches = rolloutBatches(spec.strategy, status?.total ?? 0);
  return Math.min(100, batches[Math.min(status?.currentBatch ?? 0, batches.length - 1)] ?? 0);
}

const semverCore = (v: string) => v.split(/[-+]/)[0]!.split('.').map(Number);

/**
 * Orders semantic versions (build metadata ignored; a pre-release sorts before its release).
 * Which release is newer decides which target a sidecar gets and which rollout supersedes which.
 */
export function compareSemver(a: string, b: string): number {
  const x = semverCore(a);
  const y = semverCore(b);
  for (let i = 0; i < 3; i++) if (x[i]! !== y[i]!) return x[i]! - y[i]!;
  const pa = a.split('+')[0]!.includes('-');
  const pb = b.split('+')[0]!.includes('-');
  return pa === pb ? a.localeCompare(b) : pa ? -1 : 1;
}
