import { describe, expect, it } from '@jest/globals';
import type { Endpoint, EndpointHealth } from '@octo-mesh/api';
import { applyEndpointHealth } from './endpoint-health.js';

const ep = (address: string, healthy = true): Endpoint => ({ address, port: 80, healthy, labels: {} }) as Endpoint;
const verdicts = (...v: [string, boolean, string?][]): EndpointHealth =>
  ({
    apiVersion: 'model.mesh.octo.io/v1',
    kind: 'EndpointHealth',
    metadata: { name: 'svc', namespace: 'default' },
    spec: { endpoints: v.map(([address, healthy, since]) => ({ address, port: 80, healthy, ...(since ? { since } : {}) })) },
  }) as EndpointHealth;

describe('applyEndpointHealth', () => {
  // columns: case, source endpoints, verdicts, expected [healthy, verdict] per endpoint
  it.each<[string, Endpoint[], EndpointHealth | undefined, [boolean, unknown][]]>([
    ['no verdicts', [ep('10.0.0.1')], undefined, [[true, undefined]]],
    ['unhealthy verdict decides and is carried with its time', [ep('10.0.0.1')], verdicts(['10.0.0.1', false, '2026-01-01T00:00:00.000Z']), [[false, { healthy: false, since: '2026-01-01T00:00:00.000Z' }]]],
    ['healthy verdict is carried too', [ep('10.0.0.1')], verdicts(['10.0.0.1', true, '2026-01-01T00:00:00.000Z']), [[true, { healthy: true, since: '2026-01-01T00:00:00.000Z' }]]],
    ['source unhealthy wins and carries no verdict', [ep('10.0.0.1', false)], verdicts(['10.0.0.1', true]), [[false, undefined]]],
    ['endpoint without a verdict is untouched', [ep('10.0.0.1'), ep('10.0.0.2')], verdicts(['10.0.0.2', false]), [[true, undefined], [false, { healthy: false }]]],
    ['verdict for an endpoint the source no longer lists is ignored', [ep('10.0.0.1')], verdicts(['10.0.0.9', false]), [[true, undefined]]],
  ])('%s', (_case, endpoints, health, want) => {
    const out = applyEndpointHealth(endpoints, health);
    expect(out.map((e) => [e.healthy, e.verdict])).toEqual(want);
  });

  it('returns the input array when nothing applies', () => {
    const eps = [ep('10.0.0.1')];
    expect(applyEndpointHealth(eps, undefined)).toBe(eps);
    expect(applyEndpointHealth(eps, verdicts(['10.0.0.9', false]))).toBe(eps);
  });
});
