/**
 * Selective peer-to-peer health checks, the pure part: when a sidecar probes a host itself, and
 * what its own evidence does to the host's place in rotation. The runtime (p2p-check.ts) feeds it
 * the central verdict from EDS, the host's outlier state and request counts, and `now`.
 *
 * The central checker's verdict stands unless this sidecar has reason to doubt it for a host it
 * actually calls: the host is outlier-ejected (or its own probes failed) although the verdict
 * says healthy; or the verdict says unhealthy while this sidecar's requests to the host succeed
 * (panic routing sends it traffic) or the verdict is stale. Then it probes, and its fresh
 * evidence wins for this sidecar only, until the central verdict changes or the evidence ages
 * out. A stale *healthy* verdict alone is not a reason: the sidecar's own traffic is evidence
 * about it, and failures there lead to ejection, which is a disagreement. So a healthy mesh costs
 * no P2P probes, and the probes a sidecar sends grow with its disagreements, not its endpoints.
 */

/** The service's active health check as it reaches the proxy (ServiceGovernance.health_check). */
export interface PeerCheckSpec {
  /** `http`: GET `path`, healthy on `expectedStatuses`; `tcp`: a connection opens (gRPC checks are probed as TCP). */
  kind: 'http' | 'tcp';
  path: string;
  /** Empty: 200–399. */
  expectedStatuses: readonly number[];
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** The service's host (`name.namespace.svc`), sent as `Host` by HTTP probes. */
  host: string;
}

/** What this sidecar's probes have established about one host. */
export interface PeerEvidence {
  /** The local verdict once a threshold was reached; undefined before. */
  healthy: boolean | undefined;
  /** When the local verdict was last confirmed by a probe (epoch ms). */
  at: number;
  /** Probe results in a row that disagree with the local verdict (or, before one, of each kind). */
  successes: number;
  failures: number;
  /** When the last probe ended; the next is due an interval later. */
  lastProbeAt: number;
}

export const newEvidence = (): PeerEvidence => ({ healthy: undefined, at: 0, successes: 0, failures: 0, lastProbeAt: 0 });

/**
 * Records one probe result (thresholds as the central checker applies them): `unhealthyThreshold`
 * failures in a row make the local verdict unhealthy, `healthyThreshold` successes in a row
 * healthy; a result that agrees with the verdict refreshes it. Returns a new value.
 */
export function observe(e: PeerEvidence, ok: boolean, now: number, spec: Pick<PeerCheckSpec, 'healthyThreshold' | 'unhealthyThreshold'>): PeerEvidence {
  if (e.healthy === ok) return { healthy: ok, at: now, successes: 0, failures: 0, lastProbeAt: now };
  const successes = ok ? e.successes + 1 : 0;
  const failures = ok ? 0 : e.failures + 1;
  if (ok && successes >= spec.healthyThreshold) return { healthy: true, at: now, successes: 0, failures: 0, lastProbeAt: now };
  if (!ok && failures >= spec.unhealthyThreshold) return { healthy: false, at: now, successes: 0, failures: 0, lastProbeAt: now };
  return { ...e, successes, failures, lastProbeAt: now };
}

/** What the P2P path knows about one host at one moment. */
export interface PeerInput {
  now: number;
  /** This sidecar sent requests to the host's cluster recently. */
  called: boolean;
  /** The host is in rotation by the central verdict (EDS `health_status` healthy or degraded). */
  centralHealthy: boolean;
  /**
   * The central checker decides the host's health (EDS metadata `health_verdict`), so local
   * evidence may override an unhealthy verdict; a host its source marked unhealthy or draining
   * (a pod not ready, an instance going away) is never brought back by a probe.
   */
  checkerDecides: boolean;
  /** When the central verdict last changed (epoch ms), when the metadata says. */
  since: number | undefined;
  /** The service's check interval: the central verdict is stale after `staleFactor` of them. */
  intervalMs: number;
  staleFactor: number;
  /** Passive outlier detection has the host ejected right now, since `ejectedAt` (epoch ms). */
  ejected: boolean;
  ejectedAt: number;
  /** Requests of this sidecar to the host succeeded since the last look. */
  recentSuccess: boolean;
  evidence: PeerEvidence | undefined;
}

export type ProbeReason = 'ejected' | 'local-unhealthy' | 'succeeds' | 'stale' | 'local-healthy';

export interface PeerDecision {
  /** Probe the host (when one is due); the reason names the disagreement. */
  probe: ProbeReason | undefined;
  /** This sidecar's fresh evidence against the central verdict, or undefined when it stands. */
  override: 'healthy' | 'unhealthy' | undefined;
  /** End the host's outlier ejection now: centrally healthy and this sidecar's probes pass. */
  uneject: boolean;
}

/** How long local evidence wins, and after how long a central verdict is stale: `staleFactor` × interval. */
export const freshFor = (i: Pick<PeerInput, 'intervalMs' | 'staleFactor'>): number => i.intervalMs * i.staleFactor;

/** The decision table (see the file comment; p2p-decision.test.ts lists every row). */
export function decide(i: PeerInput): PeerDecision {
  const ttl = freshFor(i);
  const local = i.evidence && i.evidence.healthy !== undefined && i.now - i.evidence.at < ttl ? i.evidence.healthy : undefined;
  const overridable = i.centralHealthy || i.checkerDecides;
  const override: PeerDecision['override'] = !overridable || local === undefined || local === i.centralHealthy ? undefined : local ? 'healthy' : 'unhealthy';
  // Only probes that passed after the ejection may end it: an ejection newer than the evidence
  // is newer evidence (the host failed real requests since), so it is probed again first.
  const uneject = i.centralHealthy && i.ejected && local === true && i.evidence!.at > i.ejectedAt;
  let probe: ProbeReason | undefined;
  if (i.called && overridable) {
    if (i.centralHealthy) {
      if (local === false) probe = 'local-unhealthy';
      else if (i.ejected && !uneject) probe = 'ejected';
    } else if (local === true) probe = 'local-healthy';
    else if (local === undefined) {
      if (i.recentSuccess) probe = 'succeeds';
      else if (i.since !== undefined && i.now - i.since >= ttl) probe = 'stale';
    }
  }
  return { probe, override, uneject };
}

/**
 * The health check of one ServiceGovernance (its JSON form, as the config store keeps it), or
 * undefined when it has none or an unusable one. gRPC checks are probed as TCP connects.
 */
export function peerCheckSpec(governance: unknown): PeerCheckSpec | undefined {
  if (!governance || typeof governance !== 'object') return undefined;
  const g = governance as Record<string, unknown>;
  const hc = g['healthCheck'] as Record<string, unknown> | undefined;
  if (!hc || typeof hc !== 'object') return undefined;
  const num = (k: string, def: number) => {
    const v = Number(hc[k] ?? def);
    return Number.isFinite(v) && v > 0 ? v : def;
  };
  const path = typeof hc['httpPath'] === 'string' ? hc['httpPath'] : '';
  const intervalMs = num('intervalMs', 10_000);
  return {
    kind: path ? 'http' : 'tcp',
    path,
    expectedStatuses: Array.isArray(hc['expectedStatuses']) ? hc['expectedStatuses'].map(Number) : [],
    intervalMs,
    timeoutMs: Math.min(num('timeoutMs', 1000), intervalMs),
    healthyThreshold: num('healthyThreshold', 1),
    unhealthyThreshold: num('unhealthyThreshold', 3),
    host: typeof g['service'] === 'string' ? g['service'] : '',
  };
}

/** Whether an HTTP status counts healthy for a check (empty list: 200–399): the central checker's rule. */
export { httpCheckHealthy as statusHealthy } from '@octo-mesh/contracts/endpoint-health.js';
