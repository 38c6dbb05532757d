/**
 * The two reconcilers: observe (store cache + fleet poll) → plan (pure) → apply (one status write,
 * conditional on the resourceVersion planned from; events after the write lands). Status is
 * written only when it says something new, and at most once per `statusMinIntervalMs` per object.
 */
import { proxyVersionSpec, type ProxyVersion } from '@octo-mesh/api';
import { TerminalError, formatPath, type Logger } from '@octo-mesh/runtime';
import { observeRollout, observeRoutePolicy } from './aggregate.js';
import type { ReconcileResult, Reconciler } from './controller.js';
import type { EventRecorder } from './events.js';
import type { FleetPoller } from './fleet.js';
import type { OperatorMetrics } from './metrics.js';
import { ABORT_ANNOTATION, RolloutPlanner, UNDO_ANNOTATION, planDeleted, type OtherRelease, type PlanResult } from './planner.js';
import { AUTHORIZATION_NO_SIDECARS, planRoutePolicyStatus, sameStatus } from './routepolicy-status.js';
import { keyOf, serverMeta, type ObjectOf, type OperatorStore, type StatusOf } from './store.js';

export interface ReconcilerDeps {
  store: OperatorStore;
  fleet: FleetPoller;
  events: EventRecorder;
  metrics: OperatorMetrics;
  logger: Logger;
  now?: () => number;
  /** How often an active rollout is re-planned from a fresh poll. Default 1000. */
  pollIntervalMs?: number;
  /** At most one status write per object per this long. Default 1000. */
  statusMinIntervalMs?: number;
  /** RoutePolicy and AuthorizationPolicy status is refreshed this often (ACK counts move without events). Default 5000. */
  routePolicyResyncMs?: number;
}

const generationOf = (o: { metadata: object }) => serverMeta(o).generation ?? 1;
const target = (kind: string, o: ProxyVersion) => ({ kind, namespace: o.metadata.namespace ?? 'default', name: o.metadata.name, uid: serverMeta(o).uid });


/** The abort/undo requests a person made (octoctl rollout abort|undo), from the annotations. */
function requestsOf(o: ProxyVersion): { abort?: string; undo?: string } {
  const a = (o.metadata as { annotations?: Record<string, string> }).annotations ?? {};
  return { ...(a[ABORT_ANNOTATION] ? { abort: a[ABORT_ANNOTATION] } : {}), ...(a[UNDO_ANNOTATION] ? { undo: a[UNDO_ANNOTATION] } : {}) };
}

/** Time left before another status write of `key` is allowed (0 = now). */
class WriteGate {
  private readonly last = new Map<string, number>();
  constructor(private readonly minIntervalMs: number) {}
  wait(key: string, now: number): number {
    const l = this.last.get(key);
    return l === undefined ? 0 : Math.max(0, l + this.minIntervalMs - now);
  }
  wrote(key: string, now: number): void {
    this.last.set(key, now);
  }
  forget(key: string): void {
    this.last.delete(key);
  }
}

export class ProxyVersionReconciler implements Reconciler {
  private readonly planner = new RolloutPlanner();
  private readonly gate: WriteGate;
  private readonly known = new Map<string, ProxyVersion>();
  private readonly now: () => number;

  constructor(private readonly deps: ReconcilerDeps) {
    this.gate = new WriteGate(deps.statusMinIntervalMs ?? 1000);
    this.now = deps.now ?? Date.now;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { store, fleet, events, metrics, logger } = this.deps;
    const pollMs = this.deps.pollIntervalMs ?? 1000;
    const pv = store.get('ProxyVersion', key);
    if (!pv) {
      const last = this.known.get(key);
      this.known.delete(key);
      this.gate.forget(key);
      metrics.forget(key);
      if (last) {
        const others = store.list('ProxyVersion').map((o): OtherRelease => ({ key: keyOf(o), spec: o.spec, status: o.status }));
        for (const a of planDeleted(key, last, others)) await events.record(target('ProxyVersion', last), a.severity, a.reason, a.message);
        logger.info('rollout deleted', { kind: 'ProxyVersion', key, phase: last.status?.phase });
      }
      return {};
    }
    const parsed = proxyVersionSpec.safeParse(pv.spec);
    if (!parsed.success) {
      throw new TerminalError(`ProxyVersion ${key}: invalid spec: ${parsed.error.issues.map((i) => `${formatPath(i.path, 'spec')}: ${i.message}`).join('; ')}`);
    }
    const snapshot = await fleet.rollouts(Math.min(250, pollMs / 2));
    const now = this.now();
    const others: OtherRelease[] = store
      .list('ProxyVersion')
      .filter((o) => keyOf(o) !== key)
      .map((o) => ({ key: keyOf(o), spec: o.spec, status: o.status, observation: observeRollout(snapshot, keyOf(o), generationOf(o)) }));
    const planFor = (o: ProxyVersion): PlanResult =>
      this.planner.plan({ key, spec: proxyVersionSpec.parse(o.spec), status: o.status, generation: generationOf(o), aggregate: observeRollout(snapshot, key, generationOf(o)), now, others, requests: requestsOf(o) });
    let plan = planFor(pv);
    if (!sameStatus(pv.status, plan.status)) {
      // The gate counts from the moment a write is sent, so sends are at least the interval apart.
      const sentAt = this.now();
      const wait = this.gate.wait(key, sentAt);
      if (wait > 0) return { requeueAfterMs: wait };
      let decided: PlanResult | undefined;
      const stored = await store.updateStatus('ProxyVersion', key, (current) => {
        decided = planFor(current);
        return sameStatus(current.status, decided.status) ? undefined : decided.status;
      });
      if (stored && decided) {
        this.gate.wrote(key, sentAt);
        plan = decided;
        logger.info('rollout status written', { kind: 'ProxyVersion', key, sentAt: new Date(sentAt).toISOString(), resourceVersion: serverMeta(stored).resourceVersion, phase: plan.status.phase, batch: plan.status.currentBatch, ready: plan.status.ready, targeted: plan.status.targeted });
        for (const a of plan.actions) {
          await events.record(target('ProxyVersion', stored), a.severity, a.reason, a.message);
          if (a.reason === 'BatchHealthy') this.observeGate(key, plan, observeRollout(snapshot, key, generationOf(stored)).newestReadyAt, parsed.data.strategy.healthGate.minReadySeconds, now);
        }
      }
    }
    this.known.set(key, { ...pv, status: plan.status });
    metrics.rollout(key, plan.status);
    if (!plan.active) return {};
    const untilWake = plan.wakeAt !== undefined ? Math.max(10, plan.wakeAt - now) : pollMs;
    return { requeueAfterMs: Math.min(pollMs, untilWake) };
  }

  /** Batch start → gate decision, and how much of it came after the gate could first pass. */
  private observeGate(key: string, plan: PlanResult, newestReadyAt: number | undefined, minReadySeconds: number, now: number): void {
    const started = plan.status.batchStartedAt ? Date.parse(plan.status.batchStartedAt) : undefined;
    if (started !== undefined) this.deps.metrics.gateSeconds.observe({ rollout: key }, (now - started) / 1000);
    const couldPass = Math.max(started ?? 0, newestReadyAt === undefined ? 0 : newestReadyAt + minReadySeconds * 1000);
    const overheadMs = couldPass > 0 ? Math.max(0, now - couldPass) : undefined;
    if (overheadMs !== undefined) this.deps.metrics.gateOverheadSeconds.observe(overheadMs / 1000);
    this.deps.logger.info('batch gate passed', { kind: 'ProxyVersion', key, batch: plan.status.currentBatch, sinceBatchStartMs: started === undefined ? undefined : now - started, overheadMs });
  }
}

/**
 * Status of a policy kind whose pilots report per-policy views (`/debug/routepolicyz`,
 * `/debug/authorizationpolicyz`): Accepted from the pilots' translation, Synced from their
 * sidecars' ACKs of the current generation. One class, two kinds: their statuses have one shape.
 */
class PolicyStatusReconciler<K extends 'RoutePolicy' | 'AuthorizationPolicy'> implements Reconciler {
  private readonly gate: WriteGate;
  private readonly now: () => number;

  constructor(
    private readonly kind: K,
    private readonly deps: ReconcilerDeps,
  ) {
    this.gate = new WriteGate(deps.statusMinIntervalMs ?? 1000);
    this.now = deps.now ?? Date.now;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { store, fleet, logger } = this.deps;
    const kind = this.kind;
    const resync = this.deps.routePolicyResyncMs ?? 5000;
    const obj = store.get(kind, key);
    if (!obj) {
      this.gate.forget(key);
      return {};
    }
    const maxAge = Math.min(1000, resync / 2);
    const snapshot = await (kind === 'RoutePolicy' ? fleet.routePolicies(maxAge) : fleet.authorizationPolicies(maxAge));
    const now = this.now();
    const [namespace = 'default', name = ''] = key.split('/');
    const planFor = (o: ObjectOf<K>) =>
      planRoutePolicyStatus({
        generation: generationOf(o),
        current: o.status,
        observation: observeRoutePolicy(snapshot, namespace, name, generationOf(o)),
        now,
        ...(kind === 'AuthorizationPolicy' ? { noSidecarsMessage: AUTHORIZATION_NO_SIDECARS } : {}),
      });
    if (!planFor(obj).write) return { requeueAfterMs: resync };
    const wait = this.gate.wait(key, now);
    if (wait > 0) return { requeueAfterMs: wait };
    const stored = await store.updateStatus(kind, key, (current) => {
      const p = planFor(current);
      // The two kinds' statuses have one shape (checked by their schemas in @octo-mesh/api).
      return p.write ? (p.status as StatusOf<K>) : undefined;
    });
    if (stored) {
      this.gate.wrote(key, now);
      logger.debug('policy status written', { kind, key, resourceVersion: serverMeta(stored).resourceVersion });
    }
    return { requeueAfterMs: resync };
  }
}

export class RoutePolicyReconciler extends PolicyStatusReconciler<'RoutePolicy'> {
  constructor(deps: ReconcilerDeps) {
    super('RoutePolicy', deps);
  }
}

export class AuthorizationPolicyReconciler extends PolicyStatusReconciler<'AuthorizationPolicy'> {
  constructor(deps: ReconcilerDeps) {
    super('AuthorizationPolicy', deps);
  }
}
