/**
 * Polls the fleet: the live pilots from the meta server, then each pilot's rollout and
 * RoutePolicy views, in parallel with a timeout. One poll serves every reconcile that asks within
 * `maxAgeMs` (concurrent askers share the poll in flight), so N rollouts cost one round of
 * requests, not N.
 */
import type { Logger } from '@octo-mesh/runtime';
import { pilotRollouts, pilotRoutePolicies, type FleetClient, type FleetSnapshot, type PilotRef, type PilotRollouts, type PilotRoutePolicies } from './aggregate.js';
import type { OperatorMetrics } from './metrics.js';

/**
 * The fleet over HTTP: the meta server's `GET /debug/pilots` and each pilot's
 * `GET /debug/rollouts` and `GET /debug/routepolicies`, validated by the contract's schemas.
 */
export function httpFleetClient(metaServerUrl: string, timeoutMs: number): FleetClient {
  const getJson = async (url: string): Promise<unknown> => {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return res.json();
  };
  const base = (p: PilotRef) => (/^https?:\/\//.test(p.adminAddress) ? p.adminAddress : `http://${p.adminAddress}`);
  return {
    async listPilots() {
      const body = await getJson(new URL('/debug/pilots', metaServerUrl).toString());
      if (!Array.isArray(body)) throw new Error('meta server /debug/pilots: not a list');
      return body.flatMap((p: { id?: unknown; adminAddress?: unknown }) => (typeof p.id === 'string' && typeof p.adminAddress === 'string' && p.adminAddress ? [{ id: p.id, adminAddress: p.adminAddress }] : []));
    },
    async rollouts(p) {
      return pilotRollouts.parse(await getJson(`${base(p)}/debug/rollouts`));
    },
    async routePolicies(p) {
      return pilotRoutePolicies.parse(await getJson(`${base(p)}/debug/routepolicies`));
    },
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
