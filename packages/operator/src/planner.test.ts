import { describe, expect, it } from '@jest/globals';
import type { Condition, ProxyVersionSpec, ProxyVersionStatus } from '@octo-mesh/api';
import type { RolloutObservation } from './aggregate.js';
import { RolloutPlanner, SETTLE_MS, planDeleted, scopesOverlap, type OtherRelease } from './planner.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const t = (s: number) => T0 + s * 1000;

const spec = (o: Omit<Partial<ProxyVersionSpec>, 'strategy'> & { strategy?: Partial<ProxyVersionSpec['strategy']> } = {}): ProxyVersionSpec => ({
  version: '1.5.0',
  package: { url: 'https://repo/1.5.0.tgz', sha256: 'a'.repeat(64) },
  scope: {},
  paused: false,
  ...o,
  strategy: {
    canary: { percent: 10 },
    steps: [50, 100],
    pauseBetweenBatches: '30s',
    healthGate: { minReadySeconds: 10, maxFailurePercent: 0, progressDeadline: '10m' },
    autoRollback: true,
    ...o.strategy,
  },
});

const agg = (o: Partial<RolloutObservation> = {}): RolloutObservation => ({
  complete: true,
  missing: [],
  inScope: 100,
  targeted: 0,
  upgraded: 0,
  ready: 0,
  failed: 0,
  newestReadyAt: undefined,
  failures: [],
  batch: undefined,
  ...o,
});
const missingPilot = agg({ complete: false, missing: ['pilot-b: connect ECONNREFUSED'], inScope: 60, targeted: 5, ready: 5, upgraded: 5 });
const counts = (targeted: number, ready: number, failed = 0) => ({ targeted, updated: ready, ready, failed });

const c = (type: string, status: Condition['status'], reason: string, message: string, since: number, observedGeneration = 1): Condition => ({
  type,
  status,
  reason,
  message,
  observedGeneration,
  lastTransitionTime: at(since),
});

const previous: OtherRelease = { key: 'mesh/proxy-1-4-0', spec: { version: '1.4.0', scope: {} }, status: { phase: 'Succeeded' } };
const OTHERS = [previous];

/** A rollout in batch `batch` (0 = canary), started at `startedAt` s. */
const progressing = (batch: number, startedAt: number, o: ProxyVersionStatus = {}): ProxyVersionStatus => ({
  phase: 'Progressing',
  observedGeneration: 1,
  currentBatch: batch,
  batches: 3,
  total: 100,
  batchStartedAt: at(startedAt),
  batchBaseline: [0, 10, 50][batch]!,
  rollbackTo: '1.4.0',
  ...counts([0, 10, 50][batch]!, [0, 10, 50][batch]!),
  conditions: [c('Progressing', 'True', 'BatchStarted', `batch ${batch + 1}/3 started`, 0), c('Healthy', 'True', 'WithinGate', 'no failures', 0)],
  message: `batch ${batch + 1}/3`,
  ...o,
});

interface Row {
  name: string;
  status: ProxyVersionStatus | undefined;
  spec?: ProxyVersionSpec;
  generation?: number;
  aggregate: RolloutObservation;
  now: number;
  others?: OtherRelease[];
  expected: ProxyVersionStatus;
  events: string[];
  wakeAt?: number;
}

const planner = new RolloutPlanner();

describe('RolloutPlanner: every transition, exact next status', () => {
  // columns: name, status (before), spec (default: canary 10% then steps 50, 100; pause 30s;
  // minReady 10s; maxFailure 0%; deadline 10m; autoRollback), generation (default 1), aggregate,
  // now, others (default: 1.4.0 Succeeded), expected status, event reasons, wakeAt
  const rows: Row[] = [
    {
      name: 'Pending → Progressing: canary batch starts, planned on the instances in scope, rollback target recorded',
      status: undefined,
      aggregate: agg({ inScope: 100 }),
      now: t(0),
      expected: {
        phase: 'Progressing',
        observedGeneration: 1,
        currentBatch: 0,
        batches: 3,
        total: 100,
        batchStartedAt: at(0),
        batchBaseline: 0,
        rollbackTo: '1.4.0',
        ...counts(0, 0),
        conditions: [c('Progressing', 'True', 'BatchStarted', 'batch 1/3 started', 0), c('Healthy', 'True', 'WithinGate', 'no failures', 0)],
        message: 'batch 1/3: 10% of 100 instances',
      },
      events: ['RolloutStarted'],
      wakeAt: t(0) + SETTLE_MS,
    },
    {
      name: 'Pending holds while a pilot is missing from the aggregate',
      status: { phase: 'Pending' },
      aggregate: missingPilot,
      now: t(0),
      expected: { phase: 'Pending', observedGeneration: 1, conditions: [c('Progressing', 'Unknown', 'AggregateIncomplete', 'holding: pilot-b: connect ECONNREFUSED', 0)] },
      events: [],
    },
    {
      name: 'Pending and paused: nothing starts',
      status: undefined,
      spec: spec({ paused: true }),
      aggregate: agg(),
      now: t(0),
      expected: { phase: 'Pending', observedGeneration: 1, ...counts(0, 0), conditions: [c('Progressing', 'False', 'Paused', 'paused before the first batch', 0)], message: 'paused before the first batch' },
      events: [],
    },
    {
      name: 'canary not yet seen by the pilots (targeted = baseline) within the settle time: wait',
      status: progressing(0, 0),
      aggregate: agg({ targeted: 0 }),
      now: t(2),
      expected: progressing(0, 0, {
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 1/3: waiting for the pilots to target the batch', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 1/3: 0/0 ready',
      }),
      events: [],
      wakeAt: t(0) + SETTLE_MS,
    },
    {
      name: 'canary upgraded and ready, but not for minReadySeconds yet: wait until then',
      status: progressing(0, 0),
      aggregate: agg({ targeted: 10, upgraded: 10, ready: 10, newestReadyAt: t(15) }),
      now: t(20),
      expected: progressing(0, 0, {
        ...counts(10, 10),
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 1/3: ready, counting 10s', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 1/3: 10/10 ready',
      }),
      events: [],
      wakeAt: t(25),
    },
    {
      name: 'canary not all ready: wait',
      status: progressing(0, 0),
      aggregate: agg({ targeted: 10, upgraded: 9, ready: 7, newestReadyAt: t(15) }),
      now: t(40),
      expected: progressing(0, 0, {
        targeted: 10,
        updated: 9,
        ready: 7,
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 1/3: 7/10 ready', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 1/3: 7/10 ready',
      }),
      events: [],
      wakeAt: t(600) + 1,
    },
    {
      name: 'canary healthy: recorded, pause between batches begins',
      status: progressing(0, 0),
      aggregate: agg({ targeted: 10, upgraded: 10, ready: 10, newestReadyAt: t(15) }),
      now: t(30),
      expected: progressing(0, 0, {
        ...counts(10, 10),
        batchHealthyAt: at(30),
        conditions: [c('Progressing', 'True', 'PausingBetweenBatches', 'batch 1/3 healthy; next batch after 30s', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 1/3: healthy, pausing',
      }),
      events: ['BatchHealthy'],
      wakeAt: t(60),
    },
    {
      name: 'pause over: next batch starts (baseline = targeted now; total stays the rollout start\'s)',
      status: progressing(0, 0, { ...counts(10, 10), batchHealthyAt: at(30) }),
      aggregate: agg({ inScope: 130, targeted: 10, upgraded: 10, ready: 10, newestReadyAt: t(15) }),
      now: t(60),
      expected: progressing(1, 60, {
        batchBaseline: 10,
        ...counts(10, 10),
        conditions: [c('Progressing', 'True', 'BatchStarted', 'batch 2/3 started', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 2/3: 50% of 100 instances',
      }),
      events: ['BatchStarted'],
      wakeAt: t(60) + SETTLE_MS,
    },
    {
      name: 'the pilots report an older batch (batch field): not seen, even though counts look healthy',
      status: progressing(1, 60),
      aggregate: agg({ targeted: 50, upgraded: 50, ready: 50, newestReadyAt: t(15), batch: 0 }),
      now: t(100),
      expected: progressing(1, 60, {
        ...counts(50, 50),
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 2/3: waiting for the pilots to target the batch', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 2/3: 50/50 ready',
      }),
      events: [],
      wakeAt: t(660) + 1,
    },
    {
      name: 'last batch healthy → Succeeded',
      status: progressing(2, 100),
      aggregate: agg({ targeted: 100, upgraded: 100, ready: 100, newestReadyAt: t(150) }),
      now: t(200),
      expected: progressing(2, 100, {
        phase: 'Succeeded',
        ...counts(100, 100),
        batchHealthyAt: at(200),
        conditions: [c('Progressing', 'False', 'RolloutSucceeded', 'all 3 batches healthy', 200), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: '1.5.0 on 100 instances',
      }),
      events: ['BatchHealthy', 'RolloutSucceeded'],
    },
    {
      name: 'a pilot missing from the aggregate holds the batch; counts keep their last complete values',
      status: progressing(1, 60),
      aggregate: missingPilot,
      now: t(2000),
      expected: progressing(1, 60, {
        conditions: [c('Progressing', 'Unknown', 'AggregateIncomplete', 'holding: pilot-b: connect ECONNREFUSED', 2000), c('Healthy', 'True', 'WithinGate', 'no failures', 0)],
      }),
      events: [],
    },
    {
      name: 'a failure over maxFailurePercent → RollingBack to the last Succeeded release',
      status: progressing(0, 0),
      aggregate: agg({ targeted: 10, upgraded: 9, ready: 8, failed: 1, newestReadyAt: t(12), failures: [{ instanceId: 'pod-3', reason: 'NotReady', message: 'no ready within 30s' }] }),
      now: t(20),
      expected: progressing(0, 0, {
        phase: 'RollingBack',
        targeted: 10,
        updated: 9,
        ready: 8,
        failed: 1,
        failures: [{ instanceId: 'pod-3', reason: 'NotReady', message: 'no ready within 30s' }],
        conditions: [
          c('Progressing', 'False', 'RollingBack', 'batch 1/3: 1 of 10 targeted instances failed (max 0%); first: pod-3: NotReady; rolling back to 1.4.0', 20),
          c('Healthy', 'False', 'FailureThreshold', 'batch 1/3: 1 of 10 targeted instances failed (max 0%); first: pod-3: NotReady', 20),
        ],
        message: 'rolling back: batch 1/3: 1 of 10 targeted instances failed (max 0%); first: pod-3: NotReady',
      }),
      events: ['RollingBack'],
    },
    {
      name: 'failures within maxFailurePercent do not fail the batch',
      status: progressing(1, 60, { batchBaseline: 10 }),
      spec: spec({ strategy: { healthGate: { minReadySeconds: 10, maxFailurePercent: 10, progressDeadline: '10m' } } }),
      aggregate: agg({ targeted: 50, upgraded: 50, ready: 45, failed: 5, newestReadyAt: t(70) }),
      now: t(90),
      expected: progressing(1, 60, {
        targeted: 50,
        updated: 50,
        ready: 45,
        failed: 5,
        batchHealthyAt: at(90),
        conditions: [c('Progressing', 'True', 'PausingBetweenBatches', 'batch 2/3 healthy; next batch after 30s', 0), c('Healthy', 'True', 'WithinGate', '5 failed', 0)],
        message: 'batch 2/3: healthy, pausing',
      }),
      events: ['BatchHealthy'],
      wakeAt: t(120),
    },
    {
      name: 'progressDeadline passed without autoRollback → Failed and held',
      status: progressing(1, 60),
      spec: spec({ strategy: { autoRollback: false } }),
      aggregate: agg({ targeted: 50, upgraded: 40, ready: 40, newestReadyAt: t(100) }),
      now: t(661),
      expected: progressing(1, 60, {
        phase: 'Failed',
        ...counts(50, 40),
        conditions: [
          c('Progressing', 'False', 'ProgressDeadlineExceeded', 'batch 2/3: not healthy within 10m (40/50 ready); held (autoRollback is off)', 661),
          c('Healthy', 'False', 'ProgressDeadlineExceeded', 'batch 2/3: not healthy within 10m (40/50 ready)', 661),
        ],
        message: 'failed: batch 2/3: not healthy within 10m (40/50 ready)',
      }),
      events: ['RolloutFailed'],
    },
    {
      name: 'RollingBack while pilots still target the release: stays',
      status: progressing(1, 60, { phase: 'RollingBack' }),
      aggregate: agg({ targeted: 3, upgraded: 3, ready: 3 }),
      now: t(700),
      others: [{ ...previous, observation: agg({ targeted: 97, upgraded: 97, ready: 97 }) }],
      expected: progressing(1, 60, { phase: 'RollingBack', ...counts(3, 3), message: 'rolling back: 3 instances still target 1.5.0' }),
      events: [],
    },
    {
      name: 'RollingBack while instances still run the bad release (previous not upgraded everywhere): stays',
      status: progressing(1, 60, { phase: 'RollingBack' }),
      aggregate: agg({ targeted: 0 }),
      now: t(700),
      others: [{ ...previous, observation: agg({ targeted: 100, upgraded: 95, ready: 95 }) }],
      expected: progressing(1, 60, { phase: 'RollingBack', ...counts(0, 0), message: 'rolling back: 95/100 back on 1.4.0' }),
      events: [],
    },
    {
      name: 'RollingBack → RolledBack when every instance runs the previous release',
      status: progressing(1, 60, { phase: 'RollingBack' }),
      aggregate: agg({ targeted: 0 }),
      now: t(710),
      others: [{ ...previous, observation: agg({ targeted: 100, upgraded: 100, ready: 100 }) }],
      expected: progressing(1, 60, {
        phase: 'RolledBack',
        ...counts(0, 0),
        conditions: [c('Progressing', 'False', 'RolledBack', 'every instance runs 1.4.0 again', 710), c('Healthy', 'True', 'WithinGate', 'no failures', 0)],
        message: 'rolled back to 1.4.0',
      }),
      events: ['RolledBack'],
    },
    {
      name: 'a newer release covering the same sidecars supersedes one in progress',
      status: progressing(1, 60),
      aggregate: agg({ targeted: 50, upgraded: 50, ready: 50 }),
      now: t(100),
      others: [previous, { key: 'mesh/proxy-1-6-0', spec: { version: '1.6.0', scope: {} }, status: { phase: 'Progressing' } }],
      expected: progressing(1, 60, {
        phase: 'Superseded',
        supersededBy: 'mesh/proxy-1-6-0',
        ...counts(50, 50),
        conditions: [c('Progressing', 'False', 'Superseded', 'superseded by mesh/proxy-1-6-0 (1.6.0), which covers the same sidecars', 100), c('Healthy', 'True', 'WithinGate', 'no failures', 0)],
        message: 'superseded by mesh/proxy-1-6-0',
      }),
      events: ['Superseded'],
    },
    {
      name: 'a newer release for other services does not supersede',
      status: progressing(1, 60, { batchBaseline: 10 }),
      spec: spec({ scope: { services: ['cart'] } }),
      aggregate: agg({ targeted: 50, upgraded: 50, ready: 50, newestReadyAt: t(65) }),
      now: t(100),
      others: [previous, { key: 'mesh/proxy-1-6-0', spec: { version: '1.6.0', scope: { services: ['checkout'] } }, status: { phase: 'Progressing' } }],
      expected: progressing(1, 60, {
        ...counts(50, 50),
        batchHealthyAt: at(100),
        conditions: [c('Progressing', 'True', 'PausingBetweenBatches', 'batch 2/3 healthy; next batch after 30s', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 2/3: healthy, pausing',
      }),
      events: ['BatchHealthy'],
      wakeAt: t(130),
    },
    {
      name: 'spec.paused: Progressing → Paused; a healthy batch does not advance',
      status: progressing(0, 0, { batchHealthyAt: at(30) }),
      spec: spec({ paused: true }),
      aggregate: agg({ targeted: 10, upgraded: 10, ready: 10, newestReadyAt: t(15) }),
      now: t(100),
      expected: progressing(0, 0, {
        phase: 'Paused',
        ...counts(10, 10),
        batchHealthyAt: at(30),
        conditions: [c('Progressing', 'False', 'Paused', 'batch 1/3 healthy; paused before the next batch', 100), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 1/3: healthy (paused)',
      }),
      events: ['Paused'],
    },
    {
      name: 'paused past the deadline does not fail; resume restarts the deadline clock',
      status: progressing(1, 60, { phase: 'Paused' }),
      aggregate: agg({ targeted: 50, upgraded: 20, ready: 20, newestReadyAt: t(70) }),
      now: t(5000),
      expected: progressing(1, 5000, {
        ...counts(50, 20),
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 2/3: 20/50 ready', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 2/3: 20/50 ready',
      }),
      events: ['Resumed'],
      wakeAt: t(5600) + 1,
    },
    {
      name: 'counts regress after the batch was healthy: health is withdrawn, no advance',
      status: progressing(1, 60, { ...counts(50, 50), batchHealthyAt: at(100) }),
      aggregate: agg({ targeted: 50, upgraded: 50, ready: 47, newestReadyAt: t(120) }),
      now: t(125),
      expected: progressing(1, 60, {
        targeted: 50,
        updated: 50,
        ready: 47,
        failed: 0,
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 2/3: 47/50 ready', 0), c('Healthy', 'True', 'WithinGate', '0 failed', 0)],
        message: 'batch 2/3: 47/50 ready',
      }),
      events: ['BatchRegressed'],
      wakeAt: t(660) + 1,
    },
    {
      name: 'Succeeded with counts that regress stays Succeeded (counts shown)',
      status: progressing(2, 100, { phase: 'Succeeded', ...counts(100, 100) }),
      aggregate: agg({ targeted: 98, upgraded: 98, ready: 97 }),
      now: t(900),
      expected: progressing(2, 100, { phase: 'Succeeded', targeted: 98, updated: 98, ready: 97, failed: 0 }),
      events: [],
    },
    {
      name: 'generation change mid-rollout: fewer batches, current batch clamped to the last',
      status: progressing(2, 100),
      spec: spec({ strategy: { canary: undefined, steps: [100] } }),
      generation: 2,
      aggregate: agg({ targeted: 100, upgraded: 60, ready: 60, newestReadyAt: t(130) }),
      now: t(140),
      expected: progressing(0, 100, {
        observedGeneration: 2,
        batches: 1,
        batchBaseline: 50,
        ...counts(100, 60),
        conditions: [c('Progressing', 'True', 'WaitingForBatch', 'batch 1/1: 60/100 ready', 0, 2), c('Healthy', 'True', 'WithinGate', '0 failed', 0, 2)],
        message: 'batch 1/1: 60/100 ready',
      }),
      events: [],
      wakeAt: t(700) + 1,
    },
    {
      name: 'generation change after Failed: a new attempt from the first batch',
      status: progressing(1, 60, { phase: 'Failed' }),
      generation: 2,
      aggregate: agg({ targeted: 50, upgraded: 40, ready: 40 }),
      now: t(1000),
      expected: {
        phase: 'Progressing',
        observedGeneration: 2,
        currentBatch: 0,
        batches: 3,
        total: 100,
        batchStartedAt: at(1000),
        batchBaseline: 50,
        rollbackTo: '1.4.0',
        ...counts(50, 40),
        conditions: [c('Progressing', 'True', 'BatchStarted', 'batch 1/3 started', 1000, 2), c('Healthy', 'True', 'WithinGate', 'no failures', 0, 2)],
        message: 'batch 1/3: 10% of 100 instances',
      },
      events: ['Restarted', 'RolloutStarted'],
      wakeAt: t(1000) + SETTLE_MS,
    },
  ];

  it.each(rows)('$name', (row) => {
    const out = planner.plan({
      key: 'mesh/proxy-1-5-0',
      spec: row.spec ?? spec(),
      status: row.status,
      generation: row.generation ?? 1,
      aggregate: row.aggregate,
      now: row.now,
      others: row.others ?? OTHERS,
    });
    expect(out.status).toEqual(row.expected);
    expect(out.actions.map((a) => a.reason)).toEqual(row.events);
    expect(out.wakeAt).toEqual(row.wakeAt);
  });

  // Requests a person makes (octoctl rollout abort|undo → annotations), each acted on once.
  // columns: name, status before, request, expected fields of the next status, event reasons
  it.each<[string, ProxyVersionStatus, { abort?: string; undo?: string }, Partial<ProxyVersionStatus>, string[]]>([
    [
      'abort mid-rollout: fails the batch and rolls back to the last Succeeded release',
      progressing(1, 100),
      { abort: at(150) },
      { phase: 'RollingBack', rollbackTo: '1.4.0', abortHandled: at(150), message: `rolling back: aborted by request (${at(150)})` },
      ['RollingBack'],
    ],
    [
      'the same abort seen again is not acted on twice',
      { ...progressing(1, 100), phase: 'RollingBack', abortHandled: at(150) },
      { abort: at(150) },
      { phase: 'RollingBack', abortHandled: at(150) },
      [],
    ],
    [
      'abort of a finished rollout: recorded, nothing to abort',
      { phase: 'Succeeded', observedGeneration: 1 },
      { abort: at(150) },
      { phase: 'Succeeded', abortHandled: at(150) },
      ['AbortIgnored'],
    ],
    [
      'undo of a Succeeded release: every instance goes back to the release before it',
      { phase: 'Succeeded', observedGeneration: 1, currentBatch: 2, total: 100 },
      { undo: at(200) },
      { phase: 'RollingBack', rollbackTo: '1.4.0', undoHandled: at(200), message: `undone by request (${at(200)}); rolling back to 1.4.0` },
      ['Undo'],
    ],
  ])('%s', (_name, status, requests, expected, events) => {
    const out = planner.plan({ key: 'mesh/proxy-1-5-0', spec: spec(), status, generation: 1, aggregate: agg({ targeted: 10, upgraded: 10, ready: 10 }), now: t(200), others: OTHERS, requests });
    expect(out.status).toMatchObject(expected);
    expect(out.actions.map((a) => a.reason)).toEqual(events);
    if (expected.phase === 'RollingBack' && events.length) expect(out.status.conditions?.find((x) => x.type === 'Progressing')).toMatchObject({ status: 'False', reason: 'RollingBack' });
  });

  it('the last batch is not healthy while a pilot says it is there but targets fewer than are in scope', () => {
    // Pilots at batch 2 (the last: 100 %) that target nobody, e.g. because they cannot see the status.
    const st = progressing(2, 100, { batchBaseline: 50 });
    const out = planner.plan({ key: 'mesh/proxy-1-5-0', spec: spec(), status: st, generation: 1, aggregate: agg({ batch: 2, targeted: 0, upgraded: 0, ready: 0 }), now: t(200), others: OTHERS });
    expect(out.status.phase).toBe('Progressing');
    expect(out.status.conditions?.find((x) => x.type === 'Progressing')?.message).toBe('batch 3/3: waiting for the pilots to target the batch');
    const done = planner.plan({ key: 'mesh/proxy-1-5-0', spec: spec(), status: { ...st, batchHealthyAt: at(150) }, generation: 1, aggregate: agg({ batch: 2, targeted: 100, upgraded: 100, ready: 100, newestReadyAt: t(100) }), now: t(200), others: OTHERS });
    expect(done.status.phase).toBe('Succeeded');
  });

  it('is pure: the input status is not modified, and the same input plans the same', () => {
    const status = progressing(0, 0);
    const before = structuredClone(status);
    const input = { key: 'k', spec: spec(), status, generation: 1, aggregate: agg({ targeted: 10, upgraded: 10, ready: 10, newestReadyAt: t(1) }), now: t(30), others: OTHERS };
    expect(planner.plan(input)).toEqual(planner.plan(input));
    expect(status).toEqual(before);
  });

  it('walks a whole rollout batch by batch with a fleet that follows, never skipping or repeating a batch', () => {
    let status: ProxyVersionStatus | undefined;
    const batchesSeen: number[] = [];
    const shares = [10, 50, 100];
    for (let s = 0; s < 400 && status?.phase !== 'Succeeded'; s++) {
      const b = status?.currentBatch;
      const targeted = b === undefined || status?.phase === 'Pending' ? 0 : shares[b]!;
      // The fleet: instances of a batch become ready 5 s after it started.
      const started = status?.batchStartedAt ? Date.parse(status.batchStartedAt) : t(s);
      const ready = t(s) >= started + 5000 ? targeted : 0;
      const out = planner.plan({ key: 'k', spec: spec(), status, generation: 1, aggregate: agg({ targeted, upgraded: ready, ready, newestReadyAt: ready ? started + 5000 : undefined }), now: t(s), others: OTHERS });
      status = out.status;
      if (out.actions.some((a) => a.reason === 'BatchStarted' || a.reason === 'RolloutStarted')) batchesSeen.push(status.currentBatch!);
    }
    expect(status?.phase).toBe('Succeeded');
    expect(batchesSeen).toEqual([0, 1, 2]);
  });
});

describe('planDeleted and scopes', () => {
  it('says where the instances of a deleted rollout go', () => {
    expect(planDeleted('mesh/p', { spec: spec(), status: { phase: 'Progressing' } }, OTHERS)).toEqual([
      { type: 'event', severity: 'Warning', reason: 'RolloutDeleted', message: 'mesh/p (1.5.0) deleted while Progressing; its instances return to 1.4.0' },
    ]);
    expect(planDeleted('mesh/p', { spec: spec(), status: { phase: 'RolledBack' } }, OTHERS)).toEqual([]);
  });

  // columns: a, b, overlap
  it.each<[ProxyVersionSpec['scope'], ProxyVersionSpec['scope'], boolean]>([
    [{}, {}, true],
    [{ services: ['a'] }, { services: ['b'] }, false],
    [{ services: ['a', 'b'] }, { services: ['b'] }, true],
    [{ namespaceSelector: { matchLabels: { team: 'x' } } }, { namespaceSelector: { matchLabels: { team: 'y' } } }, false],
    [{ workloadSelector: { matchLabels: { tier: 'web' } } }, { workloadSelector: { matchLabels: { app: 'cart' } } }, true],
  ])('scopesOverlap(%j, %j) = %s', (a, b, overlap) => {
    expect(scopesOverlap(a, b)).toBe(overlap);
  });
});
