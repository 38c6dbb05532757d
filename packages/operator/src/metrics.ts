/**
 * The operator's Prometheus metrics: per rollout (phase, batch, counts, time in batch), the
 * controllers (reconciles, errors, status writes, conflicts), leadership and fleet polls.
 */
import { PROXY_VERSION_PHASES, type ProxyVersionStatus } from '@octo-mesh/api';
import { Counter, Gauge, Histogram, type Registry } from '@octo-mesh/runtime';

export class OperatorMetrics {
  readonly reconciles: Counter<'controller' | 'result'>;
  readonly reconcileSeconds: Histogram<'controller'>;
  /** Every caught error, by where it was caught. */
  readonly errors: Counter<'where'>;
  readonly statusWrites: Counter<'kind'>;
  readonly statusConflicts: Counter<'kind'>;
  readonly events: Counter<'reason'>;
  readonly leader: Gauge;
  readonly fleetPolls: Counter<'result'>;
  readonly phase: Gauge<'rollout' | 'phase'>;
  readonly batch: Gauge<'rollout'>;
  readonly instances: Gauge<'rollout' | 'state'>;
  /** Batch start → gate decision, and the part of it beyond the last instance's minReadySeconds. */
  readonly gateSeconds: Histogram<'rollout'>;
  readonly gateOverheadSeconds: Histogram;
  private readonly batchStarted = new Map<string, number>();

  constructor(registry: Registry, now: () => number = Date.now) {
    const registers = [registry];
    this.reconciles = new Counter({ name: 'octo_operator_reconciles_total', help: 'Reconciles by controller and result (success, requeue, error, terminal).', labelNames: ['controller', 'result'], registers });
    this.reconcileSeconds = new Histogram({ name: 'octo_operator_reconcile_seconds', help: 'Time of one reconcile.', labelNames: ['controller'], buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10], registers });
    this.errors = new Counter({ name: 'octo_operator_errors_total', help: 'Errors caught, by where.', labelNames: ['where'], registers });
    this.statusWrites = new Counter({ name: 'octo_operator_status_writes_total', help: 'Status subresource writes.', labelNames: ['kind'], registers });
    this.statusConflicts = new Counter({ name: 'octo_operator_status_conflicts_total', help: 'Status writes that lost a resourceVersion race and were re-read and re-decided.', labelNames: ['kind'], registers });
    this.events = new Counter({ name: 'octo_operator_events_total', help: 'Events recorded, by reason.', labelNames: ['reason'], registers });
    this.leader = new Gauge({ name: 'octo_operator_leader', help: '1 while this replica holds the leader Lease.', registers });
    this.fleetPolls = new Counter({ name: 'octo_operator_fleet_polls_total', help: 'Polls of a pilot (ok, error) and of the meta server (meta_ok, meta_error).', labelNames: ['result'], registers });
    this.phase = new Gauge({ name: 'octo_operator_rollout_phase', help: '1 for the phase the rollout is in.', labelNames: ['rollout', 'phase'], registers });
    this.batch = new Gauge({ name: 'octo_operator_rollout_batch', help: 'Index of the batch in progress (0 is the canary, if any).', labelNames: ['rollout'], registers });
    this.instances = new Gauge({ name: 'octo_operator_rollout_instances', help: 'Instances by state (total, targeted, updated, ready, failed).', labelNames: ['rollout', 'state'], registers });
    const started = this.batchStarted;
    new Gauge({
      name: 'octo_operator_rollout_batch_age_seconds',
      help: 'Time in the current batch.',
      labelNames: ['rollout'],
      registers,
      collect() {
        this.reset();
        for (const [rollout, at] of started) this.set({ rollout }, (now() - at) / 1000);
      },
    });
    this.gateSeconds = new Histogram({ name: 'octo_operator_gate_decision_seconds', help: 'From the start of a batch to its gate decision.', labelNames: ['rollout'], buckets: [1, 5, 10, 30, 60, 300, 900], registers });
    this.gateOverheadSeconds = new Histogram({
      name: 'octo_operator_gate_overhead_seconds',
      help: 'From the moment a batch could pass its gate (last instance ready + minReadySeconds) to the decision.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
  }

  /** Shows a rollout's status. */
  rollout(key: string, st: ProxyVersionStatus): void {
    for (const p of PROXY_VERSION_PHASES) this.phase.set({ rollout: key, phase: p }, st.phase === p ? 1 : 0);
    this.batch.set({ rollout: key }, st.currentBatch ?? 0);
    for (const s of ['total', 'targeted', 'updated', 'ready', 'failed'] as const) this.instances.set({ rollout: key, state: s }, st[s] ?? 0);
    const active = st.phase === 'Progressing' || st.phase === 'Paused';
    if (active && st.batchStartedAt) this.batchStarted.set(key, Date.parse(st.batchStartedAt));
    else this.batchStarted.delete(key);
  }

  /** A deleted rollout's series go away. */
  forget(key: string): void {
    for (const p of PROXY_VERSION_PHASES) this.phase.remove({ rollout: key, phase: p });
    this.batch.remove({ rollout: key });
    for (const s of ['total', 'targeted', 'updated', 'ready', 'failed']) this.instances.remove({ rollout: key, state: s });
    this.batchStarted.delete(key);
  }
}
