/**
 * RolloutPlanner: the decisions of a ProxyVersion rollout as a pure function — (spec, status,
 * generation, fleet aggregate, the other releases, now) in, (next status, actions) out. All state
 * lives in `.status`, so an operator that restarts or fails over reads it back and continues; the
 * pilots derive every sidecar's target from the same status (`targetPercent` in @octo-mesh/api),
 * so nothing per instance is stored anywhere.
 *
 * The state machine (README has it as a table):
 *   Pending ──start──▶ Progressing ⇄ Paused            (spec.paused)
 *   Progressing: batch k gated (seen by the fleet, upgraded and ready for minReadySeconds,
 *     failures ≤ maxFailurePercent) ──healthy──▶ pause between batches ──▶ batch k+1 … ──▶ Succeeded
 *   gate fails (failures, or not healthy within progressDeadline)
 *     ──autoRollback──▶ RollingBack ──instances back on the previous release──▶ RolledBack
 *     ──no autoRollback──▶ Failed (held: instances keep what the batch gave them)
 *   a newer release covering the same sidecars ──▶ Superseded (holds its batch)
 * An incomplete aggregate (a pilot silent, or not yet at this generation) holds everything.
 */
import {
  compareSemver,
  rolloutBatches,
  parseDuration,
  type Condition,
  type ProxyVersionPhase,
  type ProxyVersionSpec,
  type ProxyVersionStatus,
} from '@octo-mesh/api';
import type { RolloutObservation } from './aggregate.js';

/**
 * Without a `batch` field from the pilots, a batch whose share adds no instance by the stable hash
 * would look unseen forever: after this long the batch counts as seen by the fleet anyway.
 */
export const SETTLE_MS = 5000;

/** Another ProxyVersion, for supersession and the rollback target. */
export interface OtherRelease {
  /** namespace/name */
  key: string;
  spec: Pick<ProxyVersionSpec, 'version' | 'scope'>;
  status?: ProxyVersionStatus | undefined;
  /** Its fleet aggregate (needed only for the rollback target). */
  observation?: RolloutObservation | undefined;
}

export interface PlanInput {
  /** namespace/name of this ProxyVersion. */
  key: string;
  spec: ProxyVersionSpec;
  status: ProxyVersionStatus | undefined;
  /** metadata.generation */
  generation: number;
  aggregate: RolloutObservation;
  /** ms since the epoch. */
  now: number;
  others: readonly OtherRelease[];
  /**
   * A person's requests (`octoctl rollout abort|undo`: annotations mesh.octo.io/rollout-abort and
   * mesh.octo.io/rollout-undo, valued with when they were made). Each value is acted on once:
   * the status records the last one handled.
   */
  requests?: { abort?: string | undefined; undo?: string | undefined };
}

/** Annotations octoctl writes to ask the operator to abort or undo a rollout (@octo-mesh/contracts). */
export { ROLLOUT_ABORT_ANNOTATION as ABORT_ANNOTATION, ROLLOUT_UNDO_ANNOTATION as UNDO_ANNOTATION } from '@octo-mesh/contracts';

/** Something to tell the world; the status is not an action (it is the plan's main output). */
export interface RolloutEvent {
  type: 'event';
  /** Normal or Warning, as in core/v1 Events. */
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface PlanResult {
  status: ProxyVersionStatus;
  actions: RolloutEvent[];
  /** The rollout still needs fleet data (poll and re-plan). */
  active: boolean;
  /** A time-based transition is due then (ms since the epoch): re-plan no later than that. */
  wakeAt?: number;
}

const ACTIVE: readonly ProxyVersionPhase[] = ['Pending', 'Progressing', 'Paused'];
const TERMINAL: readonly ProxyVersionPhase[] = ['Succeeded', 'RolledBack', 'Superseded'];

/** Sets a condition, keeping its lastTransitionTime when its status did not change. */
export function setCondition(conditions: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: number): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = prev && prev.status === next.status && prev.lastTransitionTime ? prev.lastTransitionTime : new Date(now).toISOString();
  const c: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = c;
  else list.push(c);
  return list;
}

type LabelSelector = { matchLabels?: Record<string, string> | undefined } | undefined;
const labelsConflict = (a: LabelSelector, b: LabelSelector) => Object.entries(a?.matchLabels ?? {}).some(([k, v]) => b?.matchLabels?.[k] !== undefined && b.matchLabels[k] !== v);

/**
 * Whether two scopes may cover a common sidecar: true unless provably disjoint (service lists
 * without a common service, or matchLabels that require different values of one label).
 */
export function scopesOverlap(a: ProxyVersionSpec['scope'], b: ProxyVersionSpec['scope']): boolean {
  if (a.services && b.services && !a.services.some((s) => b.services!.includes(s))) return false;
  if (labelsConflict(a.namespaceSelector, b.namespaceSelector)) return false;
  if (labelsConflict(a.workloadSelector, b.workloadSelector)) return false;
  return true;
}

/** The release instances in this scope return to: the newest Succeeded other release overlapping it. */
export function rollbackTarget(spec: Pick<ProxyVersionSpec, 'version' | 'scope'>, others: readonly OtherRelease[]): OtherRelease | undefined {
  return others
    .filter((o) => o.status?.phase === 'Succeeded' && o.spec.version !== spec.version && scopesOverlap(o.spec.scope, spec.scope))
    .sort((a, b) => compareSemver(b.spec.version, a.spec.version))[0];
}

/** A newer release covering the same sidecars that is going (or went) ahead. */
function supersedingRelease(spec: ProxyVersionSpec, others: readonly OtherRelease[]): OtherRelease | undefined {
  const going: readonly (ProxyVersionPhase | undefined)[] = ['Pending', 'Progressing', 'Paused', 'Succeeded', undefined];
  return others
    .filter((o) => compareSemver(o.spec.version, spec.version) > 0 && going.includes(o.status?.phase) && scopesOverlap(o.spec.scope, spec.scope))
    .sort((a, b) => compareSemver(b.spec.version, a.spec.version))[0];
}

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (t: string | undefined) => (t === undefined ? undefined : Date.parse(t));

/** The pure rollout planner. */
export class RolloutPlanner {
  plan(input: PlanInput): PlanResult {
    const { spec, generation, aggregate: agg, now } = input;
    const st: ProxyVersionStatus = structuredClone(input.status ?? {});
    const actions: RolloutEvent[] = [];
    const event = (severity: RolloutEvent['severity'], reason: string, message: string) => actions.push({ type: 'event', severity, reason, message });
    const cond = (type: string, status: Condition['status'], reason: string, message: string) => {
      st.conditions = setCondition(st.conditions, { type, status, reason, message, observedGeneration: generation }, now);
    };
    const phase: ProxyVersionPhase = st.phase ?? 'Pending';
    st.phase = phase;
    const genChanged = st.observedGeneration !== undefined && st.observedGeneration !== generation;
    st.observedGeneration = generation;
    const gate = spec.strategy.healthGate;
    const result = (active: boolean, wakeAt?: number): PlanResult => ({ status: st, actions, active, ...(wakeAt !== undefined ? { wakeAt } : {}) });

    // Live counts come only from a complete aggregate: a partial sum would look like a regression.
    if (agg.complete) {
      st.targeted = agg.targeted;
      st.updated = agg.upgraded;
      st.ready = agg.ready;
      st.failed = agg.failed;
      if (agg.failures.length) st.failures = agg.failures.map((f) => ({ instanceId: f.instanceId, reason: f.reason, ...(f.message ? { message: f.message } : {}) }));
      else delete st.failures;
    }

    const abort = input.requests?.abort;
    if (abort && abort !== st.abortHandled) {
      st.abortHandled = abort;
      if (ACTIVE.includes(phase)) return this.fail(input, st, 'Aborted', `aborted by request (${abort})`, result, cond, event);
      event('Normal', 'AbortIgnored', `abort requested (${abort}) while ${phase}: nothing to abort`);
    }
    const undo = input.requests?.undo;
    if (undo && undo !== st.undoHandled) {
      st.undoHandled = undo;
      if (phase === 'Succeeded' || ACTIVE.includes(phase) || phase === 'Superseded') {
        const back = rollbackTarget(input.spec, input.others);
        st.phase = 'RollingBack';
        if (back) st.rollbackTo = back.spec.version;
        else delete st.rollbackTo;
        delete st.batchHealthyAt;
        const message = `undone by request (${undo}); rolling back to ${back ? back.spec.version : 'what each instance ran before'}`;
        cond('Progressing', 'False', 'RollingBack', message);
        st.message = message;
        event('Normal', 'Undo', message);
        return result(true);
      }
      event('Normal', 'UndoIgnored', `undo requested (${undo}) while ${phase}: nothing to undo`);
    }

    if (TERMINAL.includes(phase) && !(phase === 'RolledBack' && genChanged)) {
      // Done: counts stay current (a regression after success is visible, not acted on).
      return result(false);
    }
    if ((phase === 'Failed' || phase === 'RolledBack') && genChanged) {
      // A changed spec after a failure is a new attempt, from the start.
      for (const k of ['currentBatch', 'batchStartedAt', 'batchHealthyAt', 'batchBaseline', 'total', 'batches'] as const) delete st[k];
      st.phase = 'Pending';
      cond('Progressing', 'Unknown', 'SpecChanged', 'spec changed after the rollout ended; starting again');
      event('Normal', 'Restarted', `generation ${generation}: the rollout starts again`);
      const again = this.plan({ ...input, status: st });
      return { ...again, actions: [...actions, ...again.actions] };
    }
    if (phase === 'Failed') return result(false);
    if (phase === 'RollingBack') return this.rollingBack(input, st, result, cond, event);

    // Pending, Progressing, Paused: first, has a newer release taken over?
    const newer = supersedingRelease(spec, input.others);
    if (newer) {
      st.phase = 'Superseded';
      st.supersededBy = newer.key;
      delete st.batchHealthyAt;
      cond('Progressing', 'False', 'Superseded', `superseded by ${newer.key} (${newer.spec.version}), which covers the same sidecars`);
      st.message = `superseded by ${newer.key}`;
      event('Normal', 'Superseded', `superseded by ${newer.key} (${newer.spec.version}); instances keep this release until it reaches them`);
      return result(false);
    }

    if (phase === 'Pending') {
      if (spec.paused) {
        cond('Progressing', 'False', 'Paused', 'paused before the first batch');
        st.phase = 'Pending';
        st.message = 'paused before the first batch';
        return result(false);
      }
      if (!agg.complete) return this.hold(st, agg, result, cond);
      const batches = rolloutBatches(spec.strategy, agg.inScope);
      const back = rollbackTarget(spec, input.others);
      st.phase = 'Progressing';
      st.currentBatch = 0;
      st.batches = batches.length;
      st.total = agg.inScope;
      st.batchStartedAt = iso(now);
      st.batchBaseline = agg.targeted;
      delete st.batchHealthyAt;
      if (back) st.rollbackTo = back.spec.version;
      else delete st.rollbackTo;
      cond('Progressing', 'True', 'BatchStarted', `batch 1/${batches.length} started`);
      cond('Healthy', 'True', 'WithinGate', 'no failures');
      st.message = `batch 1/${batches.length}: ${Math.round(batches[0]!)}% of ${agg.inScope} instances`;
      event('Normal', 'RolloutStarted', `rolling out ${spec.version} to ${agg.inScope} instances in ${batches.length} batches${back ? `; rollback target ${back.spec.version}` : ''}`);
      return result(true, now + SETTLE_MS);
    }

    // Progressing or Paused.
    let batches = rolloutBatches(spec.strategy, st.total ?? 0);
    if (genChanged) {
      st.batches = batches.length;
      if ((st.currentBatch ?? 0) > batches.length - 1) st.currentBatch = batches.length - 1;
    }
    batches = rolloutBatches(spec.strategy, st.total ?? 0);
    const batch = st.currentBatch ?? 0;
    const label = `batch ${batch + 1}/${batches.length}`;
    if (phase === 'Progressing' && spec.paused) {
      st.phase = 'Paused';
      event('Normal', 'Paused', `paused at ${label}`);
    } else if (phase === 'Paused' && !spec.paused) {
      st.phase = 'Progressing';
      // The deadline counts from the resume: time spent paused is a person's choice, not slowness.
      st.batchStartedAt = iso(now);
      event('Normal', 'Resumed', `resumed at ${label}`);
    }
    const paused = st.phase === 'Paused';
    if (!agg.complete) return this.hold(st, agg, result, cond);

    if (agg.failed > 0 && agg.failed * 100 > gate.maxFailurePercent * Math.max(agg.targeted, 1)) {
      const first = agg.failures[0];
      const why = `${agg.failed} of ${agg.targeted} targeted instances failed (max ${gate.maxFailurePercent}%)${first ? `; first: ${first.instanceId}: ${first.reason}` : ''}`;
      return this.fail(input, st, 'FailureThreshold', `${label}: ${why}`, result, cond, event);
    }

    const started = ms(st.batchStartedAt) ?? now;
    // The last batch is everyone in scope: it is seen only when every one of them is targeted (a
    // pilot that says it is at the batch but targets fewer — say it cannot see the status — must
    // not let an untouched fleet pass as Succeeded).
    const last = batch >= batches.length - 1;
    const seen = (agg.batch !== undefined ? agg.batch >= batch : agg.targeted > (st.batchBaseline ?? 0) || agg.targeted >= agg.inScope || now - started >= SETTLE_MS) && (!last || agg.targeted + agg.failed >= agg.inScope);
    const readySince = agg.newestReadyAt;
    const allReady = agg.ready + agg.failed >= agg.targeted;
    const readyLongEnough = agg.ready === 0 || (readySince !== undefined && readySince + gate.minReadySeconds * 1000 <= now);
    const healthy = seen && allReady && readyLongEnough;
    const deadline = started + (parseDuration(gate.progressDeadline) ?? 600_000);

    if (!healthy) {
      if (st.batchHealthyAt !== undefined) {
        delete st.batchHealthyAt;
        event('Warning', 'BatchRegressed', `${label}: ${agg.ready} of ${agg.targeted} ready, was healthy`);
      }
      if (!paused && now > deadline) {
        return this.fail(input, st, 'ProgressDeadlineExceeded', `${label}: not healthy within ${gate.progressDeadline} (${agg.ready}/${agg.targeted} ready)`, result, cond, event);
      }
      const why = !seen ? 'waiting for the pilots to target the batch' : !allReady ? `${agg.ready}/${agg.targeted} ready` : `ready, counting ${gate.minReadySeconds}s`;
      cond('Progressing', paused ? 'False' : 'True', paused ? 'Paused' : 'WaitingForBatch', `${label}: ${why}`);
      cond('Healthy', 'True', 'WithinGate', `${agg.failed} failed`);
      st.message = `${label}: ${agg.ready}/${agg.targeted} ready${paused ? ' (paused)' : ''}`;
      const wakes = [paused ? undefined : deadline + 1, !seen ? started + SETTLE_MS : undefined, allReady && readySince !== undefined ? readySince + gate.minReadySeconds * 1000 : undefined].filter(
        (x): x is number => x !== undefined && x > now,
      );
      return result(true, wakes.length ? Math.min(...wakes) : undefined);
    }

    cond('Healthy', 'True', 'WithinGate', `${agg.failed} failed`);
    if (st.batchHealthyAt === undefined) {
      st.batchHealthyAt = iso(now);
      event('Normal', 'BatchHealthy', `${label} healthy: ${agg.ready}/${agg.targeted} ready`);
    }
    if (batch >= batches.length - 1) {
      st.phase = 'Succeeded';
      st.currentBatch = batches.length - 1;
      cond('Progressing', 'False', 'RolloutSucceeded', `all ${batches.length} batches healthy`);
      st.message = `${spec.version} on ${agg.ready} instances`;
      event('Normal', 'RolloutSucceeded', `${spec.version} rolled out to ${agg.ready} instances`);
      return result(false);
    }
    if (paused) {
      cond('Progressing', 'False', 'Paused', `${label} healthy; paused before the next batch`);
      st.message = `${label}: healthy (paused)`;
      return result(true);
    }
    const pauseEnd = ms(st.batchHealthyAt)! + (parseDuration(spec.strategy.pauseBetweenBatches) ?? 0);
    if (now < pauseEnd) {
      cond('Progressing', 'True', 'PausingBetweenBatches', `${label} healthy; next batch after ${spec.strategy.pauseBetweenBatches}`);
      st.message = `${label}: healthy, pausing`;
      return result(true, pauseEnd);
    }
    const next = batch + 1;
    st.currentBatch = next;
    // `total` stays what it was when the rollout started: re-planning the shares on a fleet that
    // grew would shrink a maxUnavailable batch's share below the one before and un-target instances.
    st.batches = batches.length;
    st.batchStartedAt = iso(now);
    st.batchBaseline = agg.targeted;
    delete st.batchHealthyAt;
    const nextLabel = `batch ${next + 1}/${st.batches}`;
    cond('Progressing', 'True', 'BatchStarted', `${nextLabel} started`);
    st.message = `${nextLabel}: ${Math.round(batches[next] ?? 100)}% of ${st.total ?? 0} instances`;
    event('Normal', 'BatchStarted', `${nextLabel} started`);
    return result(true, now + SETTLE_MS);
  }

  /** Missing data: keep everything as it is and say why. */
  private hold(st: ProxyVersionStatus, agg: RolloutObservation, result: (active: boolean) => PlanResult, cond: (type: string, status: Condition['status'], reason: string, message: string) => void): PlanResult {
    const why = agg.missing.slice(0, 3).join('; ') + (agg.missing.length > 3 ? `; and ${agg.missing.length - 3} more` : '');
    cond('Progressing', 'Unknown', 'AggregateIncomplete', `holding: ${why}`);
    return result(true);
  }

  private fail(
    input: PlanInput,
    st: ProxyVersionStatus,
    reason: string,
    message: string,
    result: (active: boolean) => PlanResult,
    cond: (type: string, status: Condition['status'], reason: string, message: string) => void,
    event: (severity: RolloutEvent['severity'], reason: string, message: string) => void,
  ): PlanResult {
    cond('Healthy', 'False', reason, message);
    delete st.batchHealthyAt;
    if (input.spec.strategy.autoRollback) {
      const back = rollbackTarget(input.spec, input.others);
      st.phase = 'RollingBack';
      if (back) st.rollbackTo = back.spec.version;
      else delete st.rollbackTo;
      cond('Progressing', 'False', 'RollingBack', `${message}; rolling back to ${back ? back.spec.version : 'what each instance ran before'}`);
      st.message = `rolling back: ${message}`;
      event('Warning', 'RollingBack', `${message}; rolling back to ${back ? back.spec.version : 'the previous release'}`);
      return result(true);
    }
    st.phase = 'Failed';
    cond('Progressing', 'False', reason, `${message}; held (autoRollback is off)`);
    st.message = `failed: ${message}`;
    event('Warning', 'RolloutFailed', `${message}; held, autoRollback is off`);
    return result(false);
  }

  /**
   * RollingBack → RolledBack once no pilot targets this release any more and every instance the
   * rollback target covers runs it (its aggregate: upgraded = targeted). Without a previous
   * release, once nothing targets this one.
   */
  private rollingBack(
    input: PlanInput,
    st: ProxyVersionStatus,
    result: (active: boolean) => PlanResult,
    cond: (type: string, status: Condition['status'], reason: string, message: string) => void,
    event: (severity: RolloutEvent['severity'], reason: string, message: string) => void,
  ): PlanResult {
    const agg = input.aggregate;
    if (!agg.complete) return this.hold(st, agg, result, cond);
    const back = st.rollbackTo ? input.others.find((o) => o.spec.version === st.rollbackTo) : undefined;
    const backObs = back?.observation;
    const untargeted = agg.targeted === 0;
    const backDone = !st.rollbackTo || (backObs?.complete === true && backObs.upgraded >= backObs.targeted);
    if (!untargeted || !backDone) {
      const why = !untargeted ? `${agg.targeted} instances still target ${input.spec.version}` : `${backObs?.upgraded ?? 0}/${backObs?.targeted ?? '?'} back on ${st.rollbackTo}`;
      st.message = `rolling back: ${why}`;
      return result(true);
    }
    st.phase = 'RolledBack';
    cond('Progressing', 'False', 'RolledBack', st.rollbackTo ? `every instance runs ${st.rollbackTo} again` : 'no instance targets this release any more');
    st.message = st.rollbackTo ? `rolled back to ${st.rollbackTo}` : 'rolled back';
    event('Normal', 'RolledBack', st.message);
    return result(false);
  }
}

/** Whether a phase still needs the fleet polled. */
export const isActivePhase = (phase: ProxyVersionPhase | undefined): boolean => phase === undefined || ACTIVE.includes(phase) || phase === 'RollingBack';

/**
 * A ProxyVersion was deleted: pilots stop targeting it at once (it is gone from their view), so
 * its instances go back to the last Succeeded release in their scope. Nothing is left to write;
 * this says so.
 */
export function planDeleted(key: string, last: { spec: Pick<ProxyVersionSpec, 'version' | 'scope'>; status?: ProxyVersionStatus | undefined }, others: readonly OtherRelease[]): RolloutEvent[] {
  const back = rollbackTarget(last.spec, others);
  const phase = last.status?.phase ?? 'Pending';
  if (phase === 'RolledBack' || phase === 'Pending') return [];
  return [
    {
      type: 'event',
      severity: phase === 'Succeeded' ? 'Normal' : 'Warning',
      reason: 'RolloutDeleted',
      message: `${key} (${last.spec.version}) deleted while ${phase}; its instances return to ${back ? back.spec.version : 'what they ran before'}`,
    },
  ];
}
