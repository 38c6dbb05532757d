/**
 * The health checker's decisions, as pure functions with time passed in: the threshold state
 * machine of one endpoint, and which verdicts of one service are published (the panic rule).
 * `checker.ts` does the probing and the writing around them.
 */

/** What the checker believes about one endpoint. */
export interface EndpointState {
  healthy: boolean;
  /** Consecutive successful checks while unhealthy (towards healthyThreshold). */
  successes: number;
  /** Consecutive failed checks while healthy (towards unhealthyThreshold). */
  failures: number;
  /** When `healthy` last changed (epoch ms). */
  since: number;
  /** The last failure, while it counts. */
  reason?: string;
  /** When the current run of failures began (epoch ms), while there is one. */
  failingSince?: number;
}

export interface Thresholds {
  healthyThreshold: number;
  unhealthyThreshold: number;
}

/**
 * An endpoint's first state: what was published for it before (a checker taking a service over
 * continues from its predecessor's verdict instead of starting over), else healthy — the source
 * listed it, and a checker that has not decided yet must not take traffic away.
 */
export function initialState(published: { healthy: boolean; since?: number } | undefined, now: number): EndpointState {
  return { healthy: published?.healthy ?? true, successes: 0, failures: 0, since: published?.since ?? now };
}

/**
 * One check's result applied: `unhealthyThreshold` failures in a row turn a healthy endpoint
 * unhealthy, `healthyThreshold` successes in a row turn it back; a result that agrees with the
 * state resets the opposite count (as Envoy's health checker does).
 */
export function observe(s: EndpointState, ok: boolean, reason: string | undefined, t: Thresholds, now: number): EndpointState {
  if (ok) {
    if (s.healthy) return { healthy: true, successes: 0, failures: 0, since: s.since };
    const successes = s.successes + 1;
    if (successes >= t.healthyThreshold) return { healthy: true, successes: 0, failures: 0, since: now };
    return { ...s, successes, failures: 0 };
  }
  const failingSince = s.failingSince ?? now;
  if (!s.healthy) return { healthy: false, successes: 0, failures: 0, since: s.since, failingSince, ...(reason ? { reason } : {}) };
  const failures = s.failures + 1;
  if (failures >= t.unhealthyThreshold) return { healthy: false, successes: 0, failures: 0, since: now, failingSince, ...(reason ? { reason } : {}) };
  return { ...s, failures, successes: 0, failingSince, ...(reason ? { reason } : {}) };
}

export interface PublishDecision {
  /** endpoint id → the health to publish. */
  healthy: Map<string, boolean>;
  /** Endpoints the checker finds unhealthy whose verdict is held back (published as before). */
  held: string[];
  /** True when anything was held: the service's verdict is suspect. */
  suspect: boolean;
}

/**
 * The panic rule: what to publish for one service, given what the state machines say (`states`,
 * every current endpoint) and what is published now (`published`, by id; absent = healthy).
 *
 * A checker that lost its network, or a check that is wrong for the whole service (a path that
 * moved), sees most endpoints fail at once; publishing that would take the service's traffic
 * away although it may be serving fine — and with few healthy endpoints left, proxies would
 * ignore health anyway (their panic threshold). So at most `floor(N × maxUnhealthyShare)` of a
 * service's N endpoints are published unhealthy:
 *
 * - recoveries are always published;
 * - endpoints published unhealthy and still failing stay unhealthy (they count first);
 * - newly failing endpoints are admitted oldest failure first (then by id) while the budget
 *   lasts; the rest are held — published healthy as before — and the service is `suspect`;
 * - held endpoints are reconsidered every round, so when some recover, or the source removes
 *   the dead ones (N and the budget change), the rest follow.
 *
 * `maxUnhealthyShare` is 1 − the service's RoutePolicy `loadBalancer.panicThreshold` / 100 when
 * it sets one (the checker never publishes a set the proxies would panic on), else the checker's
 * `maxUnhealthyPercent`. A share of 1 turns the rule off.
 */
export function planPublish(states: ReadonlyMap<string, EndpointState>, published: ReadonlyMap<string, boolean>, maxUnhealthyShare: number): PublishDecision {
  const healthy = new Map<string, boolean>();
  const budget = Math.floor(states.size * maxUnhealthyShare + 1e-9);
  let unhealthy = 0;
  const candidates: [string, EndpointState][] = [];
  for (const [id, s] of states) {
    if (s.healthy) healthy.set(id, true);
    else if (published.get(id) === false) {
      healthy.set(id, false);
      unhealthy++;
    } else candidates.push([id, s]);
  }
  candidates.sort(([a, x], [b, y]) => (x.failingSince ?? x.since) - (y.failingSince ?? y.since) || (a < b ? -1 : a > b ? 1 : 0));
  const held: string[] = [];
  for (const [id] of candidates) {
    if (unhealthy < budget) {
      healthy.set(id, false);
      unhealthy++;
    } else {
      healthy.set(id, true);
      held.push(id);
    }
  }
  return { healthy, held, suspect: held.length > 0 };
}

/** The share of a service's endpoints the panic rule lets be unhealthy (see {@link planPublish}). */
export function maxUnhealthyShare(policyPanicThreshold: number | undefined, defaultPercent: number): number {
  if (policyPanicThreshold !== undefined) return 1 - policyPanicThreshold / 100;
  return defaultPercent / 100;
}
