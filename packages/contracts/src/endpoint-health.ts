/**
 * How the central health checker's verdicts combine with a service's endpoints: the one rule
 * every reader of the mesh applies (the dispatcher's mesh source for pilots, debug views), so a
 * verdict means the same thing everywhere.
 */
import type { Endpoint, EndpointHealth } from '@octo-mesh/api';

/**
 * Whether an HTTP health check's answer counts healthy: one of `expectedStatuses`, or 200–399 when
 * the RoutePolicy lists none (the API's default). The central checker and a sidecar's P2P probes
 * both judge by it, so a probe means the same thing on either side.
 */
export const httpCheckHealthy = (status: number, expectedStatuses: readonly number[] | undefined): boolean =>
  expectedStatuses?.length ? expectedStatuses.includes(status) : status >= 200 && status < 400;

/** `address:port`, how a verdict names its endpoint (IPv6 addresses are bracketed). */
export const endpointId = (e: { address: string; port: number }): string => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

/**
 * The central checker's verdict on an endpoint whose health it decides (its source says healthy),
 * as pilots carry it to sidecars in the endpoint's `filter_metadata["octo.mesh"]`: a sidecar's
 * selective peer-to-peer checks read its age to tell a stale verdict from a fresh one.
 */
export interface CentralVerdict {
  healthy: boolean;
  /** When the verdict last changed (RFC 3339), if the checker said. */
  since?: string;
}

/** An endpoint as a pilot receives it: the source's endpoint, plus the checker's verdict when one decides it. */
export type CheckedEndpoint = Endpoint & { verdict?: CentralVerdict };

/**
 * The endpoints with the checker's verdicts applied: an endpoint is healthy when its source says
 * so and no verdict says otherwise. A verdict for an endpoint the source no longer lists is
 * ignored; an endpoint without a verdict keeps its source's health (never checked, or its
 * checker is new and has not decided yet). An endpoint its source calls healthy and that has a
 * verdict also gets `verdict` (healthy or not, and since when); one its source calls unhealthy
 * does not (the source keeps it out, whatever the checker says). Returns the input array when
 * there is no verdict.
 */
export function applyEndpointHealth(endpoints: Endpoint[], health: EndpointHealth | undefined): CheckedEndpoint[] {
  if (!health || health.spec.endpoints.length === 0) return endpoints;
  const verdicts = new Map(health.spec.endpoints.map((v) => [endpointId(v), v]));
  let changed = false;
  const out = endpoints.map((e): CheckedEndpoint => {
    const v = e.healthy ? verdicts.get(endpointId(e)) : undefined;
    if (!v) return e;
    changed = true;
    return { ...e, healthy: v.healthy, verdict: { healthy: v.healthy, ...(v.since ? { since: v.since } : {}) } };
  });
  return changed ? out : endpoints;
}
