/**
 * How the central health checker's verdicts combine with a service's endpoints: the one rule
 * every reader of the mesh applies (the dispatcher's mesh source for pilots, debug views), so a
 * verdict means the same thing everywhere.
 */
import type { Endpoint, EndpointHealth } from '@octo-mesh/api';

/** `address:port`, how a verdict names its endpoint (IPv6 addresses are bracketed). */
export const endpointId = (e: { address: string; port: number }): string => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

/**
 * The endpoints with the checker's verdicts applied: an endpoint is healthy when its source says
 * so and no verdict says otherwise. A verdict for an endpoint the source no longer lists is
 * ignored; an endpoint without a verdict keeps its source's health (never checked, or its
 * checker is new and has not decided yet). Returns the input array when nothing changes.
 */
export function applyEndpointHealth(endpoints: Endpoint[], health: EndpointHealth | undefined): Endpoint[] {
  if (!health || health.spec.endpoints.length === 0) return endpoints;
  const unhealthy = new Set(health.spec.endpoints.filter((v) => !v.healthy).map(endpointId));
  if (unhealthy.size === 0) return endpoints;
  let changed = false;
  const out = endpoints.map((e) => {
    if (!e.healthy || !unhealthy.has(endpointId(e))) return e;
    changed = true;
    return { ...e, healthy: false };
  });
  return changed ? out : endpoints;
}
