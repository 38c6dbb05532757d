/**
 * The health checker's I/O around the pure parts: it reads RoutePolicies, ServiceEndpoints and
 * its own verdicts (EndpointHealth) through a dispatcher informer, checks the services its shard
 * owns (one round per service per `interval`, every endpoint probed concurrently), runs the
 * verdicts through the threshold state machine and the panic rule, and writes a service's
 * EndpointHealth to the dispatcher only when what is published changes. Pilots see it as an
 * endpoints change and push EDS with the new health_status.
 *
 * Level-triggered: everything it needs is re-read from the informer's cache at every round and
 * every reconcile, so a restart, a takeover or a missed event converges by itself.
 */
import { MODEL_API_VERSION, parseDuration, type EndpointHealth, type RoutePolicy, type ServiceEndpoints } from '@octo-mesh/api';
import { DispatcherInformer, SOURCE_ANNOTATION, type DispatcherConnection } from '@octo-mesh/clients';
import { endpointId, policyKey, policyTarget, splitServiceKey } from '@octo-mesh/contracts';
import { Counter, Gauge, Histogram, recordError, type Logger, type Registry } from '@octo-mesh/runtime';
import { GrpcHealthChannels } from './grpc-probe.js';
import { probe, type ProbeResult, type ProbeSpec } from './probe.js';
import { ServiceShards } from './shard.js';
import { initialState, maxUnhealthyShare, observe, planPublish, type EndpointState } from './verdict.js';

/** The source annotation on what the checker writes (the dispatcher's ownership model). */
export const HEALTH_SOURCE = 'health-checker';

export interface HealthCheckerOptions {
  checkerId: string;
  connection: DispatcherConnection;
  logger: Logger;
  registry: Registry;
  maxUnhealthyPercent: number;
  maxConcurrentProbes: number;
  vnodes: number;
}

/** A service's active check as the checker runs it (from its RoutePolicy's `spec.healthCheck`). */
export interface CheckPlan {
  policy: string;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  http?: { path: string; expectedStatuses?: number[] };
  /** gRPC health (`grpc.health.v1.Health/Check`); authority absent = the service's host. */
  grpc?: { service: string; authority?: string };
  /** Share of endpoints the panic rule lets be unhealthy. */
  maxUnhealthyShare: number;
}

/**
 * The check each service gets: from the oldest RoutePolicy targeting it that has a healthCheck
 * (the pilot resolves conflicting policies the same way: the older one wins).
 */
export function checkPlans(policies: readonly RoutePolicy[], defaultMaxUnhealthyPercent: number): Map<string, CheckPlan> {
  const ordered = [...policies].sort(
    (a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || policyKey(a).localeCompare(policyKey(b)),
  );
  const out = new Map<string, CheckPlan>();
  for (const p of ordered) {
    const hc = p.spec.healthCheck;
    const target = policyTarget(p);
    if (!hc || out.has(target)) continue;
    const intervalMs = parseDuration(hc.interval);
    const timeoutMs = parseDuration(hc.timeout);
    if (intervalMs === undefined || timeoutMs === undefined) continue;
    out.set(target, {
      policy: policyKey(p),
      intervalMs,
      timeoutMs,
      healthyThreshold: hc.healthyThreshold,
      unhealthyThreshold: hc.unhealthyThreshold,
      ...(hc.http ? { http: { path: hc.http.path, ...(hc.http.expectedStatuses ? { expectedStatuses: hc.http.expectedStatuses } : {}) } } : {}),
      ...(hc.grpc ? { grpc: { service: hc.grpc.service ?? '', ...(hc.grpc.authority ? { authority: hc.grpc.authority } : {}) } } : {}),
      maxUnhealthyShare: maxUnhealthyShare(p.spec.loadBalancer?.panicThreshold, defaultMaxUnhealthyPercent),
    });
  }
  return out;
}

/** The `protocol` label of a plan's checks. */
export const protocolOf = (plan: Pick<CheckPlan, 'http' | 'grpc'>): 'http' | 'grpc' | 'tcp' => (plan.grpc ? 'grpc' : plan.http ? 'http' : 'tcp');

/** A bound on probes in flight, over all services. */
class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.busy++;
    try {
      return await fn();
    } finally {
      this.busy--;
      this.waiting.shift()?.();
    }
  }
}

type Published = Map<string, { healthy: boolean; since?: number }>;

const publishedOf = (h: EndpointHealth | undefined): Published =>
  new Map((h?.spec.endpoints ?? []).map((v) => [endpointId(v), { healthy: v.healthy, ...(v.since ? { since: Date.parse(v.since) } : {}) }]));

/** One owned service: its plan, its endpoints' states and its round timer. */
class ServiceRun {
  states = new Map<string, EndpointState>();
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  stopped = false;
  /** What this run wrote last (the informer may not have seen it yet). */
  lastWritten: EndpointHealth | undefined;
  suspect = false;
  /** gRPC checks: one channel per endpoint, kept across rounds, closed when the endpoint goes. */
  grpc: GrpcHealthChannels | undefined;

  constructor(
    readonly key: string,
    public plan: CheckPlan,
  ) {}
}

export class HealthChecker {
  readonly informer: DispatcherInformer;
  readonly shards: ServiceShards;
  private readonly runs = new Map<string, ServiceRun>();
  private readonly slots: Slots;
  private reconcileQueued = false;
  private stopped = false;
  private readonly checks: Counter;
  private readonly checkSeconds: Histogram;
  private readonly transitions: Counter;
  private readonly heldTotal: Counter;
  private readonly writes: Counter;

  constructor(private readonly opts: HealthCheckerOptions) {
    this.shards = new ServiceShards(opts.checkerId, [opts.checkerId], opts.vnodes);
    this.slots = new Slots(opts.maxConcurrentProbes);
    this.informer = new DispatcherInformer({
      connection: opts.connection,
      clientId: `health-checker/${opts.checkerId}`,
      kinds: ['RoutePolicy', 'ServiceEndpoints', 'EndpointHealth'],
      onChange: () => this.queueReconcile(),
      onSynced: () => this.queueReconcile(),
      logger: opts.logger,
    });
    const r = [opts.registry];
    this.checks = new Counter({ name: 'octo_health_checks_total', help: 'Active checks run, by protocol and result.', labelNames: ['protocol', 'result'], registers: r });
    this.checkSeconds = new Histogram({ name: 'octo_health_check_duration_seconds', help: 'Time an active check took.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: r });
    this.transitions = new Counter({ name: 'octo_health_transitions_total', help: 'Published endpoint health changes, by new state.', labelNames: ['to'], registers: r });
    this.heldTotal = new Counter({ name: 'octo_health_held_total', help: 'Unhealthy verdicts held back by the panic rule (per endpoint and round).', registers: r });
    this.writes = new Counter({ name: 'octo_health_writes_total', help: 'EndpointHealth objects written to the dispatcher, by result.', labelNames: ['result'], registers: r });
    const runs = this.runs;
    const shards = this.shards;
    new Gauge({ name: 'octo_health_services', help: 'Services this replica checks.', registers: r, collect() { this.set(runs.size); } });
    new Gauge({ name: 'octo_health_suspect_services', help: 'Services whose failures the panic rule is holding back.', registers: r, collect() { this.set([...runs.values()].filter((x) => x.suspect).length); } });
    new Gauge({ name: 'octo_health_checkers', help: 'Live checker replicas sharing the services.', registers: r, collect() { this.set(shards.members.length); } });
    new Gauge({
      name: 'octo_health_endpoints',
      help: 'Endpoints this replica checks, by the state machine\'s verdict.',
      labelNames: ['state'],
      registers: r,
      collect() {
        let up = 0;
        let down = 0;
        for (const run of runs.values()) for (const s of run.states.values()) if (s.healthy) up++;
        else down++;
        this.set({ state: 'healthy' }, up);
        this.set({ state: 'unhealthy' }, down);
      },
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
    this.reconcile();
  }

  /** The live checkers from the meta server (the ring is rebuilt when they change). */
  setMembers(live: readonly string[]): void {
    if (!this.shards.setMembers(live)) return;
    this.opts.logger.info('checker membership changed', { checker: this.opts.checkerId, members: this.shards.members });
    this.queueReconcile();
  }

  private queueReconcile(): void {
    if (this.reconcileQueued || this.stopped) return;
    this.reconcileQueued = true;
    setImmediate(() => {
      this.reconcileQueued = false;
      if (!this.stopped) this.reconcile();
    });
  }

  /** Starts, updates and stops service runs to match policies × shard ownership. */
  reconcile(): void {
    if (!this.informer.synced) return;
    const plans = checkPlans(this.informer.list('RoutePolicy') as RoutePolicy[], this.opts.maxUnhealthyPercent);
    for (const [key, plan] of plans) {
      if (!this.shards.owns(key)) continue;
      const run = this.runs.get(key);
      if (!run) {
        const fresh = new ServiceRun(key, plan);
        this.runs.set(key, fresh);
        this.opts.logger.info('checking service', { service: key, policy: plan.policy, intervalMs: plan.intervalMs, protocol: protocolOf(plan) });
        // Spread first rounds over the interval (at most 1 s), so a takeover is not a burst.
        this.schedule(fresh, Math.random() * Math.min(plan.intervalMs, 1000));
      } else run.plan = plan;
    }
    for (const [key, run] of this.runs) {
      if (plans.has(key) && this.shards.owns(key)) continue;
      this.stopRun(run);
      this.runs.delete(key);
      this.opts.logger.info('no longer checking service', { service: key, reason: plans.has(key) ? `owned by ${this.shards.owner(key)}` : 'no healthCheck' });
    }
    // Verdicts of services nobody checks any more would hold endpoints down for ever: the ring
    // owner of such a service removes them.
    for (const h of this.informer.list('EndpointHealth') as EndpointHealth[]) {
      const key = `${h.metadata.namespace ?? 'default'}/${h.metadata.name}`;
      if (plans.has(key) || !this.shards.owns(key) || h.metadata.annotations?.[SOURCE_ANNOTATION] !== HEALTH_SOURCE) continue;
      this.opts.connection.delete('EndpointHealth', key).then(
        () => this.opts.logger.info('verdicts removed: service no longer checked', { service: key }),
        (err: unknown) => recordError(this.opts.logger, 'removing verdicts', err, { service: key }),
      );
    }
  }

  private schedule(run: ServiceRun, delayMs: number): void {
    if (run.stopped || this.stopped) return;
    run.timer = setTimeout(() => {
      const started = Date.now();
      run.running = this.round(run)
        .catch((err: unknown) => recordError(this.opts.logger, 'health check round', err, { service: run.key }))
        .finally(() => {
          run.running = undefined;
          this.schedule(run, Math.max(0, run.plan.intervalMs - (Date.now() - started)));
        });
    }, delayMs);
  }

  private stopRun(run: ServiceRun): void {
    run.stopped = true;
    clearTimeout(run.timer);
    // A round in flight still finishes its calls (they end by their deadline); closing a
    // channel fails them at once, which a stopped run ignores.
    run.grpc?.close();
    run.grpc = undefined;
  }

  /** One round of a service: probe every endpoint, step the state machines, publish what changed. */
  private async round(run: ServiceRun): Promise<void> {
    const { key, plan } = run;
    const endpoints = (this.informer.get('ServiceEndpoints', key) as ServiceEndpoints | undefined)?.spec.endpoints ?? [];
    const inCache = this.informer.get('EndpointHealth', key) as EndpointHealth | undefined;
    const previous = run.lastWritten ?? inCache;
    const published = publishedOf(previous);
    const host = `${splitServiceKey(key).name}.${splitServiceKey(key).namespace}.svc`;
    const grpc = plan.grpc;
    if (grpc) run.grpc ??= new GrpcHealthChannels(plan.intervalMs);
    else if (run.grpc) {
      run.grpc.close();
      run.grpc = undefined;
    }
    const channels = run.grpc;
    if (grpc && channels) {
      // Channels of endpoints that went away (or of an authority no longer asked for) are closed.
      const authority = grpc.authority ?? host;
      const closed = channels.retain(new Set(endpoints.map((e) => GrpcHealthChannels.key({ address: e.address, port: e.port, authority }))));
      if (closed) this.opts.logger.debug('gRPC health channels closed', { service: key, closed, open: channels.size });
    }
    const results = await Promise.all(
      endpoints.map((e) => {
        if (grpc && channels) {
          const spec = { address: e.address, port: e.port, timeoutMs: plan.timeoutMs, service: grpc.service, authority: grpc.authority ?? host };
          return this.slots.run(() => channels.check(spec)).then((r): [string, ProbeResult] => [endpointId(e), r]);
        }
        const spec: ProbeSpec = {
          address: e.address,
          port: e.port,
          timeoutMs: plan.timeoutMs,
          ...(plan.http ? { http: { path: plan.http.path, host, ...(plan.http.expectedStatuses ? { expectedStatuses: plan.http.expectedStatuses } : {}) } } : {}),
        };
        return this.slots.run(() => probe(spec)).then((r): [string, ProbeResult] => [endpointId(e), r]);
      }),
    );
    if (run.stopped) return;
    const now = Date.now();
    const protocol = protocolOf(plan);
    const states = new Map<string, EndpointState>();
    for (const [id, r] of results) {
      this.checks.inc({ protocol, result: r.ok ? 'ok' : 'fail' });
      this.checkSeconds.observe(r.ms / 1000);
      const before = run.states.get(id) ?? initialState(published.get(id), now);
      states.set(id, observe(before, r.ok, r.reason, plan, now));
    }
    run.states = states;
    const publishedHealthy = new Map([...published].map(([id, v]) => [id, v.healthy]));
    const decision = planPublish(states, publishedHealthy, plan.maxUnhealthyShare);
    if (decision.suspect && !run.suspect)
      this.opts.logger.warn('verdict suspect: too many endpoints failing at once; holding them healthy (panic rule)', {
        service: key,
        failing: [...states.values()].filter((s) => !s.healthy).length,
        endpoints: states.size,
        held: decision.held,
        maxUnhealthyShare: plan.maxUnhealthyShare,
      });
    if (!decision.suspect && run.suspect) this.opts.logger.info('verdict no longer suspect', { service: key });
    run.suspect = decision.suspect;
    this.heldTotal.inc(decision.held.length);

    const byId = new Map(endpoints.map((e) => [endpointId(e), e]));
    const verdicts = [...decision.healthy.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, healthy]) => {
        const e = byId.get(id)!;
        const s = states.get(id)!;
        const was = published.get(id);
        const since = s.healthy === healthy ? s.since : (was?.since ?? s.since);
        return { address: e.address, port: e.port, healthy, since: new Date(since).toISOString(), ...(!healthy && s.reason ? { reason: s.reason } : {}) };
      });
    const next: EndpointHealth = {
      apiVersion: MODEL_API_VERSION,
      kind: 'EndpointHealth',
      metadata: { name: splitServiceKey(key).name, namespace: splitServiceKey(key).namespace, annotations: { [SOURCE_ANNOTATION]: HEALTH_SOURCE } },
      spec: { endpoints: verdicts, checker: this.opts.checkerId, ...(decision.suspect ? { suspect: true } : {}) },
    };
    const same = previous && JSON.stringify(previous.spec) === JSON.stringify(next.spec);
    if (same) return;
    for (const v of verdicts) {
      const was = published.get(endpointId(v));
      if ((was?.healthy ?? true) === v.healthy) continue;
      this.transitions.inc({ to: v.healthy ? 'healthy' : 'unhealthy' });
      this.opts.logger.info(v.healthy ? 'endpoint healthy' : 'endpoint unhealthy', { service: key, endpoint: endpointId(v), ...(v.reason ? { reason: v.reason } : {}) });
    }
    try {
      await this.opts.connection.apply(next);
      run.lastWritten = next;
      this.writes.inc({ result: 'ok' });
    } catch (err) {
      this.writes.inc({ result: 'error' });
      // Not remembered as written: the next round compares against the old verdict and retries.
      recordError(this.opts.logger, 'publishing endpoint health', err, { service: key });
    }
  }

  /** `/debug/checks`: what this replica checks and believes. */
  debugView(): unknown {
    return {
      checker: this.opts.checkerId,
      members: this.shards.members,
      services: [...this.runs.values()].map((r) => ({
        service: r.key,
        policy: r.plan.policy,
        intervalMs: r.plan.intervalMs,
        suspect: r.suspect,
        endpoints: Object.fromEntries([...r.states].map(([id, s]) => [id, { healthy: s.healthy, since: new Date(s.since).toISOString(), failures: s.failures, successes: s.successes, ...(s.reason ? { reason: s.reason } : {}) }])),
      })),
    };
  }

  health(): true | string {
    return this.informer.health();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const run of this.runs.values()) this.stopRun(run);
    await Promise.allSettled([...this.runs.values()].map((r) => r.running));
    await this.informer.stop();
  }
}
