import type { OutlierSpec } from '../model.js';

/** What passive outlier detection learns from one request to a host. */
export type HostResult = 'success' | 'error-5xx' | 'gateway-error' | 'local-failure';

/** Per-host detector state, kept on the host across config updates. */
export interface OutlierState {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Epoch ms until which the host is ejected; 0 when not ejected. */
  ejectedUntil: number;
  /** How many times the host was ejected (decays while it behaves); multiplies the ejection time. */
  ejections: number;
  lastEjectedAt: number;
}

export const newOutlierState = (): OutlierState => ({ consecutive5xx: 0, consecutiveGateway: 0, ejectedUntil: 0, ejections: 0, lastEjectedAt: 0 });

export const isEjected = (s: OutlierState, now: number): boolean => s.ejectedUntil > now;

/**
 * Records a result; returns true when the host must now be ejected. Gateway errors (502, 503,
 * 504) and local-origin failures (connect failure, reset, timeout) count as both kinds, as in
 * Envoy without split_external_local_origin_errors. `ejectedShare` is the share of the cluster's
 * hosts ejected right now; the cap lets at least one host be ejected regardless.
 */
export function recordResult(
  spec: OutlierSpec,
  s: OutlierState,
  r: HostResult,
  now: number,
  ejectedCount: number,
  hostCount: number,
  random: () => number = Math.random,
): boolean {
  if (r === 'success') {
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    return false;
  }
  if (isEjected(s, now)) return false;
  s.consecutive5xx++;
  if (r !== 'error-5xx') s.consecutiveGateway++;
  let trip = false;
  if (s.consecutiveGateway >= spec.consecutiveGatewayFailure && random() * 100 < spec.enforcingConsecutiveGatewayFailure) trip = true;
  if (s.consecutive5xx >= spec.consecutive5xx && random() * 100 < spec.enforcingConsecutive5xx) trip = true;
  if (!trip) return false;
  if (ejectedCount > 0 && ((ejectedCount + 1) / hostCount) * 100 > spec.maxEjectionPercent) return false;
  s.ejections++;
  s.ejectedUntil = now + Math.min(spec.baseEjectionTimeMs * s.ejections, spec.maxEjectionTimeMs);
  s.lastEjectedAt = now;
  s.consecutive5xx = 0;
  s.consecutiveGateway = 0;
  return true;
}

/** Called every `intervalMs`: a host that stayed un-ejected for an interval lowers its multiplier. */
export function decay(spec: OutlierSpec, s: OutlierState, now: number): void {
  if (s.ejections > 0 && !isEjected(s, now) && now - Math.max(s.lastEjectedAt, s.ejectedUntil) >= spec.intervalMs) {
    s.ejections--;
    s.lastEjectedAt = now;
  }
}
