/**
 * Runs a scenario's steps in order against a control plane, with a fleet of {@link MockSidecar}s.
 * Every expectation polls the sidecars' own records (what arrived, when) until it holds or its
 * time is up; a failure names the step (`steps[4] (expectPush)`) and what was missing, for whom.
 * Every step yields a {@link StepResult} with the per-sidecar latencies it measured, so one run is
 * a CI check at small scale and a benchmark at large scale (`bench/mock-sidecar`).
 */
import { MODEL_API_VERSION } from '@octo-mesh/api';
import { DispatcherConnection, MetaAdminClient, PilotAdminClient } from '@octo-mesh/clients';
import { parseDependency, worstSyncState } from '@octo-mesh/contracts';
import { sleep } from '@octo-mesh/runtime';
import type { ControlPlane } from './control-plane.js';
import { ProcSampler, type RunReport, type StepResult } from './report.js';
import type { MeshService, Scenario, Selector, Step, StepOf, XdsType } from './scenario.js';
import { MockSidecar, TYPE_OF } from './sidecar.js';

export interface RunnerOptions {
  controlPlane: ControlPlane;
  /** Prefix of node ids, so parallel copies of a scenario do not collide. */
  idPrefix?: string;
  /** Progress lines (one per step). */
  log?: (line: string) => void;
  /** Keep going after a failed step (stress runs want every figure); default: stop. */
  continueOnFailure?: boolean;
  /** /proc sampling interval; 0 = off. */
  sampleIntervalMs?: number;
  /** How often expectations poll the sidecars. */
  pollMs?: number;
}

/** A failed expectation; the message names the step. */
export class StepFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StepFailure';
  }
}

const SAMPLE = 5; // ids named in a failure message

const list = (ids: string[]) => (ids.length > SAMPLE ? `${ids.slice(0, SAMPLE).join(', ')} and ${ids.length - SAMPLE} more` : ids.join(', '));

/** Made-up endpoints of a service: half v1, half v2, two zones; `gen` makes a new set. */
export function endpointsOf(count: number, gen: number, healthy = true) {
  return Array.from({ length: count }, (_, j) => ({
    address: `10.${gen % 250}.${(j + 1) >> 8}.${(j + 1) & 255}`,
    port: 15006,
    labels: { version: j % 2 ? 'v2' : 'v1' },
    locality: { region: 'r1', zone: j % 2 ? 'a' : 'b' },
    healthy,
  }));
}

export class ScenarioRunner {
  readonly sidecars: MockSidecar[] = [];
  private readonly dispatcher: DispatcherConnection;
  private readonly meta: MetaAdminClient;
  /** performance.now() of the last change step (what expectPush measures from). */
  private markAt = performance.now();
  private lastKill: { at: number; component: string; victims: MockSidecar[] } | undefined;
  private readonly generation = new Map<string, number>();
  private readonly count = new Map<string, number>();
  private scenario!: Scenario;

  constructor(private readonly opts: RunnerOptions) {
    this.dispatcher = new DispatcherConnection(opts.controlPlane.dispatcherAddress);
    this.meta = new MetaAdminClient(opts.controlPlane.metaAdminAddress);
  }

  async run(scenario: Scenario): Promise<RunReport> {
    this.scenario = scenario;
    const t0 = performance.now();
    const sampler = this.opts.sampleIntervalMs === 0 ? undefined : new ProcSampler(() => this.opts.controlPlane.components(), this.opts.sampleIntervalMs ?? 1000);
    sampler?.start();
    const steps: StepResult[] = [];
    let ok = true;
    try {
      for (const s of scenario.services) await this.applyService(s);
      for (const step of scenario.steps) {
        const started = performance.now();
        const result: StepResult = { index: step.index, kind: step.kind, summary: '', ok: true, wallMs: 0, latencies: [] };
        try {
          await this.step(step, result);
        } catch (err) {
          result.ok = false;
          ok = false;
          const e = err as Error;
          result.error = `${scenario.name}: steps[${step.index}] (${step.kind}) failed: ${e.message}`;
        }
        result.wallMs = performance.now() - started;
        steps.push(result);
        this.opts.log?.(`${result.ok ? 'ok  ' : 'FAIL'} steps[${step.index}] ${step.kind}: ${result.summary}${result.error ? `\n     ${result.error}` : ''}`);
        if (!result.ok && !this.opts.continueOnFailure) break;
      }
    } finally {
      for (const s of this.sidecars) s.close();
      this.dispatcher.close();
    }
    return { scenario: scenario.name, sidecars: this.sidecars.length, ok, steps, samples: sampler?.stop() ?? [], wallMs: performance.now() - t0 };
  }

  private async step(step: Step, r: StepResult): Promise<void> {
    switch (step.kind) {
      case 'start':
        return this.start(step.args, r);
      case 'stop': {
        const chosen = this.select(step.args);
        for (const s of chosen) s.close();
        this.sidecars.splice(0, this.sidecars.length, ...this.sidecars.filter((s) => !chosen.includes(s)));
        r.summary = `stopped ${chosen.length} sidecars`;
        return;
      }
      case 'expectResources':
        return this.expectResources(step.args, r);
      case 'applyPolicy': {
        const p = step.args;
        this.mark();
        await this.dispatcher.apply({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'RoutePolicy', ...p } as never);
        r.summary = `applied RoutePolicy ${p.metadata.namespace}/${p.metadata.name}`;
        return;
      }
      case 'deletePolicy':
        this.mark();
        await this.dispatcher.delete('RoutePolicy', `${step.args.namespace}/${step.args.name}`);
        r.summary = `deleted RoutePolicy ${step.args.namespace}/${step.args.name}`;
        return;
      case 'applyService':
        this.mark();
        await this.applyService(step.args);
        r.summary = `applied service ${step.args.namespace}/${step.args.name} with ${step.args.endpoints} endpoints`;
        return;
      case 'deleteService':
        this.mark();
        await this.dispatcher.delete('ServiceEndpoints', step.args.service).catch(() => undefined);
        await this.dispatcher.delete('Service', step.args.service);
        r.summary = `deleted service ${step.args.service}`;
        return;
      case 'setEndpoints':
        this.mark();
        await this.setEndpoints(step.args.service, step.args.count, step.args.healthy);
        r.summary = `${step.args.service}: ${step.args.count} endpoints${step.args.healthy ? '' : ' (unhealthy)'}`;
        return;
      case 'expectPush':
        return this.expectPush(step.args, r);
      case 'nack': {
        const chosen = this.select(step.args.to);
        if (!chosen.length) throw new StepFailure('no sidecar matches `to`');
        for (const s of chosen) s.nackNext(step.args.type, step.args.message);
        r.summary = `${chosen.length} sidecars will NACK their next ${step.args.type} response`;
        return;
      }
      case 'expectSyncState':
        return this.expectSyncState(step.args, r);
      case 'kill':
        return this.kill(step.args, r);
      case 'restart': {
        const name = step.args.component === 'pilot' ? this.lastKill?.component : step.args.component;
        if (!name?.startsWith('pilot') && step.args.component === 'pilot') throw new StepFailure('`pilot` names the pilot killed last, and no pilot was killed');
        const t = performance.now();
        await this.opts.controlPlane.restart(name!, step.args.within);
        r.latencies.push(performance.now() - t);
        r.summary = `restarted ${name} (ready)`;
        return;
      }
      case 'expectRehomed':
        return this.expectRehomed(step.args, r);
      case 'reconnectStorm':
        return this.reconnectStorm(step.args, r);
      case 'churn':
        return this.churn(step.args, r);
      case 'sleep':
        await sleep(step.args);
        r.summary = `slept ${step.args} ms`;
        return;
    }
  }

  private mark(): void {
    this.markAt = performance.now();
  }

  // ---- the mesh --------------------------------------------------------------------------------

  private async applyService(s: MeshService): Promise<void> {
    const key = `${s.namespace}/${s.name}`;
    this.count.set(key, s.endpoints);
    await this.dispatcher.apply({ apiVersion: MODEL_API_VERSION, kind: 'Service', metadata: { name: s.name, namespace: s.namespace }, spec: { ports: [{ name: s.protocol === 'tcp' ? 'tcp' : 'http', port: s.port, protocol: s.protocol }] } } as never);
    await this.setEndpoints(key, s.endpoints, true);
  }

  private async setEndpoints(key: string, count: number, healthy: boolean): Promise<void> {
    const gen = (this.generation.get(key) ?? 0) + 1;
    this.generation.set(key, gen);
    const [namespace, name] = key.split('/') as [string, string];
    await this.dispatcher.apply({ apiVersion: MODEL_API_VERSION, kind: 'ServiceEndpoints', metadata: { name, namespace }, spec: { endpoints: endpointsOf(count, gen, healthy) } } as never);
  }

  // ---- sidecars --------------------------------------------------------------------------------

  private templateDeps(template: string): Set<string> {
    const t = this.scenario.templates[template]!;
    return new Set(t.dependencies.map((d) => parseDependency(d, t.namespace)).filter((k): k is string => !!k));
  }

  select(sel: Selector): MockSidecar[] {
    const templates = sel.template === undefined ? undefined : new Set(Array.isArray(sel.template) ? sel.template : [sel.template]);
    let out = this.sidecars.filter((s) => (!templates || templates.has(s.spec.template)) && (!sel.dependsOn || this.templateDeps(s.spec.template).has(sel.dependsOn)));
    if (sel.count !== undefined) out = out.slice(0, sel.count);
    return out;
  }

  private async start(a: StepOf<'start'>, r: StepResult): Promise<void> {
    const t = this.scenario.templates[a.template]!;
    const first = this.sidecars.filter((s) => s.spec.template === a.template).length;
    const fresh: MockSidecar[] = [];
    const discovery = { metaAddress: this.opts.controlPlane.metaAddress };
    const t0 = performance.now();
    for (let i = first; i < first + a.count; i++) {
      const s = new MockSidecar(
        { id: `${this.opts.idPrefix ?? ''}${a.template}-${i}.${t.namespace}`, template: a.template, namespace: t.namespace, workload: t.workload, version: t.version, dependencies: t.dependencies, protocol: t.protocol, zone: t.zone, region: t.region },
        discovery,
      );
      fresh.push(s);
      this.sidecars.push(s);
      s.start();
    }
    await this.until(a.within, () => fresh.every((s) => s.synced), () => {
      const late = fresh.filter((s) => !s.synced);
      return `${late.length} of ${fresh.length} sidecars not synced within ${a.within} ms: ${list(late.map((s) => `${s.spec.id}${s.lastError ? ` (${s.lastError})` : ''}`))}`;
    });
    for (const s of fresh) r.latencies.push(s.syncedAt! - t0);
    r.summary = `started ${a.count} × ${a.template} (${t.protocol}), all synced`;
  }

  private async expectResources(a: StepOf<'expectResources'>, r: StepResult): Promise<void> {
    const chosen = this.select(a.to);
    if (!chosen.length) throw new StepFailure('no sidecar matches the selector');
    const t0 = performance.now();
    const missing = (s: MockSidecar): string[] => {
      const out: string[] = [];
      for (const type of a.types) if (!s.held.has(type)) out.push(`no ${type}`);
      for (const [type, names] of Object.entries(a.resources) as [XdsType, string[]][])
        for (const n of names) {
          const held = s.held.get(type);
          if (n.startsWith('!') ? held?.has(n.slice(1)) : !held?.has(n)) out.push(n.startsWith('!') ? `${type} still has ${n.slice(1)}` : `${type} lacks ${n}`);
        }
      return out;
    };
    const doneAt = new Map<MockSidecar, number>();
    await this.until(a.within, () => {
      for (const s of chosen) if (!doneAt.has(s) && missing(s).length === 0) doneAt.set(s, performance.now() - t0);
      return doneAt.size === chosen.length;
    }, () => {
      const bad = chosen.filter((s) => !doneAt.has(s));
      const s = bad[0]!;
      return `${bad.length} of ${chosen.length} sidecars lack resources after ${a.within} ms; ${s.spec.id}: ${missing(s).join(', ')} (holds ${[...s.held].map(([t, n]) => `${t}: ${[...n].slice(0, 6).join(' ')}`).join('; ')})${bad.length > 1 ? `; also ${list(bad.slice(1).map((x) => x.spec.id))}` : ''}`;
    });
    r.latencies.push(...doneAt.values());
    r.summary = `${chosen.length} sidecars hold ${a.types.join('+')}${Object.keys(a.resources).length ? ' and the named resources' : ''}`;
  }

  private async expectPush(a: StepOf<'expectPush'>, r: StepResult): Promise<void> {
    const mark = this.markAt;
    const targets = this.select(a.to);
    if (!targets.length) throw new StepFailure('no sidecar matches `to`');
    const set = new Set(targets);
    const others = this.sidecars.filter((s) => !set.has(s));
    const pushedAt = (s: MockSidecar): number | undefined => {
      const first = s.firstSince(mark);
      let latest = 0;
      for (const t of a.types) {
        const at = first.get(t);
        if (at === undefined) return undefined;
        latest = Math.max(latest, at);
      }
      return latest - mark;
    };
    const deadline = mark + a.within;
    await this.until(Math.max(0, deadline - performance.now()), () => targets.every((s) => pushedAt(s) !== undefined), () => {
      const late = targets.filter((s) => pushedAt(s) === undefined);
      const got = (s: MockSidecar) => [...s.firstSince(mark).keys()].join('+') || 'nothing';
      return `${late.length} of ${targets.length} sidecars got no ${a.types.join('+')} push within ${a.within} ms of the change: ${list(late.map((s) => `${s.spec.id} (got ${got(s)})`))}`;
    });
    for (const s of targets) r.latencies.push(pushedAt(s)!);
    // None to the others: wait out the quiet window, then look.
    const quietUntil = mark + a.othersQuietFor;
    if (performance.now() < quietUntil) await sleep(quietUntil - performance.now());
    const disturbed = others.filter((s) => s.countSince(mark) > 0);
    if (disturbed.length)
      throw new StepFailure(`${disturbed.length} sidecars outside \`to\` got a push after the change: ${list(disturbed.map((s) => `${s.spec.id} (${[...s.firstSince(mark).keys()].join('+')})`))}`);
    r.summary = `${targets.length} sidecars got ${a.types.join('+')}, ${others.length} others nothing`;
  }

  private async expectSyncState(a: StepOf<'expectSyncState'>, r: StepResult): Promise<void> {
    const chosen = this.select(a.to);
    if (!chosen.length) throw new StepFailure('no sidecar matches `to`');
    const t0 = performance.now();
    const typeName = a.type ? TYPE_OF[a.type].split('.').pop() : undefined;
    const states = new Map<string, string>();
    const check = async () => {
      const admins = new Map((await this.meta.pilots()).map((p) => [p.id, p.adminAddress]));
      await Promise.all(
        chosen.map(async (s) => {
          const admin = admins.get(s.pilotId);
          if (!admin) return states.set(s.spec.id, `no admin address for ${s.pilotId}`);
          try {
            const view = await new PilotAdminClient(admin).nodeSync(s.spec.id);
            const state = typeName ? (view.types.find((t) => t.type === typeName)?.state ?? 'NOT SENT') : worstSyncState(view);
            states.set(s.spec.id, state);
          } catch (err) {
            states.set(s.spec.id, (err as Error).message);
          }
        }),
      );
      return chosen.every((s) => states.get(s.spec.id) === a.state);
    };
    await this.until(a.within, check, () => {
      const bad = chosen.filter((s) => states.get(s.spec.id) !== a.state);
      return `${bad.length} of ${chosen.length} sidecars not ${a.state}${typeName ? ` for ${typeName}` : ''} on their pilot within ${a.within} ms: ${list(bad.map((s) => `${s.spec.id} on ${s.pilotId}: ${states.get(s.spec.id)}`))}`;
    }, 250);
    r.latencies.push(performance.now() - t0);
    r.summary = `${chosen.length} sidecars ${a.state}${typeName ? ` for ${typeName}` : ''} per their pilot`;
  }

  // ---- faults ----------------------------------------------------------------------------------

  /** `pilot` alone = the pilot serving most of the scenario's sidecars. */
  private resolveComponent(name: string): string {
    if (name !== 'pilot') return name;
    const counts = new Map<string, number>();
    for (const s of this.sidecars) if (s.connected) counts.set(s.pilotId, (counts.get(s.pilotId) ?? 0) + 1);
    const best = [...counts].sort((a, b) => b[1] - a[1])[0];
    if (!best) throw new StepFailure('no sidecar is connected to a pilot, so there is no "pilot" to pick; name one (pilot-a)');
    return best[0];
  }

  private async kill(a: StepOf<'kill'>, r: StepResult): Promise<void> {
    const name = this.resolveComponent(a.component);
    const victims = name.startsWith('pilot') ? this.sidecars.filter((s) => s.pilotId === name && s.connected) : [];
    const at = performance.now();
    await this.opts.controlPlane.kill(name, a.signal);
    this.lastKill = { at, component: name, victims };
    r.summary = `${a.signal} ${name}${victims.length ? `, which served ${victims.length} sidecars` : ''}`;
  }

  private async expectRehomed(a: StepOf<'expectRehomed'>, r: StepResult): Promise<void> {
    const k = this.lastKill;
    if (!k) throw new StepFailure('no kill step before it');
    const home = (s: MockSidecar) => s.synced && s.pilotId !== k.component && s.syncedAt! > k.at;
    await this.until(Math.max(0, k.at + a.within - performance.now()), () => k.victims.every(home), () => {
      const late = k.victims.filter((s) => !home(s));
      return `${late.length} of ${k.victims.length} sidecars of ${k.component} not re-homed and synced within ${a.within} ms of the kill: ${list(late.map((s) => `${s.spec.id} (${s.connected ? `on ${s.pilotId}${s.synced ? '' : ', not synced'}` : `disconnected: ${s.lastError}`})`))}`;
    });
    for (const s of k.victims) r.latencies.push(s.syncedAt! - k.at);
    const to = new Map<string, number>();
    for (const s of k.victims) to.set(s.pilotId, (to.get(s.pilotId) ?? 0) + 1);
    r.summary = `${k.victims.length} sidecars of ${k.component} re-homed (${[...to].map(([p, n]) => `${n} → ${p}`).join(', ') || 'none to move'})`;
  }

  private async reconnectStorm(a: StepOf<'reconnectStorm'>, r: StepResult): Promise<void> {
    const chosen = this.select(a.to);
    const t0 = performance.now();
    for (const s of chosen) s.reconnectNow();
    const back = (s: MockSidecar) => s.synced && s.syncedAt! > t0;
    await this.until(a.within, () => chosen.every(back), () => {
      const late = chosen.filter((s) => !back(s));
      return `${late.length} of ${chosen.length} sidecars not back and synced within ${a.within} ms: ${list(late.map((s) => `${s.spec.id}${s.lastError ? ` (${s.lastError})` : ''}`))}`;
    });
    for (const s of chosen) r.latencies.push(s.syncedAt! - t0);
    r.summary = `${chosen.length} sidecars dropped their streams at once and came back synced`;
  }

  private async churn(a: StepOf<'churn'>, r: StepResult): Promise<void> {
    const affected = this.sidecars.filter((s) => this.templateDeps(s.spec.template).has(a.service));
    const t0 = performance.now();
    const total = Math.max(1, Math.round((a.perSecond * a.duration) / 1000));
    const gap = 1000 / a.perSecond;
    const applyMs: number[] = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + i * gap;
      if (performance.now() < due) await sleep(due - performance.now());
      const t = performance.now();
      this.mark();
      await this.setEndpoints(a.service, this.count.get(a.service) ?? a.endpoints, true);
      applyMs.push(performance.now() - t);
    }
    const seconds = (performance.now() - t0) / 1000;
    const pushes = affected.map((s) => s.received.filter((x) => x.at >= t0 && x.type === 'eds').length);
    r.latencies.push(...applyMs);
    r.figures = {
      changes: total,
      changesPerSecond: total / seconds,
      edsPushesPerSidecar: pushes.length ? pushes.reduce((x, y) => x + y, 0) / pushes.length : 0,
      edsPushesPerSidecarPerSecond: pushes.length ? pushes.reduce((x, y) => x + y, 0) / pushes.length / seconds : 0,
    };
    r.summary = `${total} endpoint changes of ${a.service} in ${seconds.toFixed(1)} s (latencies: dispatcher apply)`;
  }

  // ---- polling ---------------------------------------------------------------------------------

  private async until(timeoutMs: number, ok: () => boolean | Promise<boolean>, why: () => string, pollMs = this.opts.pollMs ?? 10): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (await ok()) return;
      if (performance.now() >= deadline) throw new StepFailure(why());
      await sleep(Math.min(pollMs, Math.max(1, deadline - performance.now())));
    }
  }
}
