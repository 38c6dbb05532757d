/**
 * Polls the fleet: the live pilots from the meta server, then each pilot's rollout and
 * RoutePolicy views, in parallel with a timeout. One poll serves every reconcile that asks within
 * `maxAgeMs` (concurrent askers share the poll in flight), so N rollouts cost one round of
 * requests, not N.
 */
import { MetaAdminClient, PilotAdminClient, type MeshTls } from '@octo-mesh/clients';
import type { PilotPolicyView } from '@octo-mesh/contracts';
import type { Logger } from '@octo-mesh/runtime';
import type { FleetClient, FleetSnapshot, PilotRef, PilotRollouts, PilotRoutePolicies, RoutePolicyView } from './aggregate.js';
import type { OperatorMetrics } from './metrics.js';

/**
 * The fleet over HTTP with the typed clients: the meta server lists the live pilots, each pilot
 * answers `/debug/rollouts` (the contract, parsed as such) and `/debug/routepolicyz`, read here
 * as the operator's per-policy views. With `tls` (the components' `adminMtls`), over HTTPS with
 * the operator's certificate, each server checked by its control-plane identity.
 */
export function httpFleetClient(metaServerUrl: string, timeoutMs: number, tls?: MeshTls): FleetClient {
  const address = (url: string) => url.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const opts = { timeoutMs, ...(tls ? { tls } : {}) };
  const meta = new MetaAdminClient(address(metaServerUrl), opts);
  const pilot = (p: PilotRef) => new PilotAdminClient(address(p.adminAddress), opts);
  return {
    async listPilots() {
      return (await meta.pilots()).filter((p) => p.adminAddress).map((p) => ({ id: p.id, adminAddress: p.adminAddress }));
    },
    rollouts: (p) => pilot(p).rollouts(),
    async routePolicies(p) {
      return { pilotId: p.id, policies: (await pilot(p).routePolicies()).map(policyView) };
    },
    async authorizationPolicies(p) {
      return { pilotId: p.id, policies: (await pilot(p).authorizationPolicies()).map(policyView) };
    },
  };
}

/** A pilot's verdict and counts for one policy, as the RoutePolicy status planner reads them. */
export function policyView(v: PilotPolicyView): RoutePolicyView {
  const slash = v.policy.indexOf('/');
  const accepted = v.status.accepted ?? false;
  const why = v.status.conditions?.find((c) => c.type === 'Accepted');
  return {
    namespace: v.policy.slice(0, slash),
    name: v.policy.slice(slash + 1),
    generation: v.status.observedGeneration ?? 0,
    accepted,
    ...(!accepted && why ? { reason: why.reason, message: why.message } : {}),
    acked: v.status.sidecars?.acked ?? 0,
    nacked: v.status.sidecars?.nacked ?? 0,
    total: v.status.sidecars?.total ?? 0,
  };
}

const errorText = (err: unknown) => ((err as Error)?.name === 'ZodError' ? 'answer does not match the contract' : ((err as Error)?.message ?? String(err)));

export class FleetPoller {
  private readonly latest = new Map<string, { snapshot: FleetSnapshot<unknown>; inFlight?: Promise<FleetSnapshot<unknown>> }>();

  constructor(
    private readonly client: FleetClient,
    private readonly logger: Logger,
    private readonly metrics: OperatorMetrics,
    private readonly now: () => number = Date.now,
  ) {}

  rollouts(maxAgeMs: number): Promise<FleetSnapshot<PilotRollouts>> {
    return this.cached('rollouts', maxAgeMs, (p) => this.client.rollouts(p));
  }

  routePolicies(maxAgeMs: number): Promise<FleetSnapshot<PilotRoutePolicies>> {
    return this.cached('routepolicies', maxAgeMs, (p) => this.client.routePolicies(p));
  }

  authorizationPolicies(maxAgeMs: number): Promise<FleetSnapshot<PilotRoutePolicies>> {
    return this.cached('authorizationpolicies', maxAgeMs, (p) => this.client.authorizationPolicies(p));
  }

  private cached<T>(what: string, maxAgeMs: number, fetchOne: (p: PilotRef) => Promise<T>): Promise<FleetSnapshot<T>> {
    const entry = this.latest.get(what);
    if (entry?.inFlight) return entry.inFlight as Promise<FleetSnapshot<T>>;
    if (entry && this.now() - entry.snapshot.at <= maxAgeMs) return Promise.resolve(entry.snapshot as FleetSnapshot<T>);
    const inFlight = this.poll(what, fetchOne).then((snapshot) => {
      this.latest.set(what, { snapshot });
      return snapshot;
    });
    this.latest.set(what, { snapshot: entry?.snapshot ?? { at: 0, pilots: [], answers: new Map(), missing: [] }, inFlight });
    return inFlight;
  }

  private async poll<T>(what: string, fetchOne: (p: PilotRef) => Promise<T>): Promise<FleetSnapshot<T>> {
    let pilots: PilotRef[];
    try {
      pilots = await this.client.listPilots();
      this.metrics.fleetPolls.inc({ result: 'meta_ok' });
    } catch (err) {
      this.metrics.fleetPolls.inc({ result: 'meta_error' });
      this.metrics.errors.inc({ where: 'meta-server' });
      this.logger.warn('could not list pilots; rollouts hold', { error: errorText(err) });
      return { at: this.now(), pilots: [], answers: new Map(), missing: [], listError: errorText(err) };
    }
    const answers = new Map<string, T>();
    const missing: { pilot: string; error: string }[] = [];
    await Promise.all(
      pilots.map(async (p) => {
        try {
          answers.set(p.id, await fetchOne(p));
          this.metrics.fleetPolls.inc({ result: 'ok' });
        } catch (err) {
          this.metrics.fleetPolls.inc({ result: 'error' });
          this.metrics.errors.inc({ where: 'pilot' });
          this.logger.warn('pilot did not answer; rollouts hold', { pilot: p.id, adminAddress: p.adminAddress, what, error: errorText(err) });
          missing.push({ pilot: p.id, error: errorText(err) });
        }
      }),
    );
    return { at: this.now(), pilots: pilots.map((p) => p.id), answers, missing };
  }
}
