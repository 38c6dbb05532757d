import { describe, expect, it } from '@jest/globals';
import type { Service } from '@octo-mesh/api';
import type { CheckedEndpoint } from '@octo-mesh/contracts';
import { HealthStatus } from '@octo-mesh/proto';
import { generateLoadAssignments } from './endpoints.js';

const service = { apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } } as unknown as Service;
const ep = (address: string, healthy: boolean, verdict?: CheckedEndpoint['verdict']): CheckedEndpoint => ({ address, port: 15006, labels: {}, healthy, ...(verdict ? { verdict } : {}) }) as CheckedEndpoint;

describe('endpoint metadata: the central verdict for P2P checks', () => {
  // columns: case, endpoint, expected health_status, expected filter_metadata["octo.mesh"]
  it.each<[string, CheckedEndpoint, HealthStatus, unknown]>([
    ['no verdict: no metadata', ep('10.0.0.1', true), HealthStatus.HEALTHY, undefined],
    ['unhealthy verdict with its time', ep('10.0.0.1', false, { healthy: false, since: '2026-12-06T00:00:00.000Z' }), HealthStatus.UNHEALTHY, { health_verdict: 'unhealthy', health_since: '2026-12-06T00:00:00.000Z' }],
    ['healthy verdict without a time', ep('10.0.0.1', true, { healthy: true }), HealthStatus.HEALTHY, { health_verdict: 'healthy' }],
    ['source-unhealthy endpoint: no metadata', ep('10.0.0.1', false), HealthStatus.UNHEALTHY, undefined],
  ])('%s', (_case, e, status, meta) => {
    const [cla] = generateLoadAssignments(service, [e], undefined);
    const lb = cla!.endpoints[0]!.lbEndpoints[0]!;
    expect(lb.healthStatus).toBe(status);
    expect(lb.metadata?.filterMetadata['octo.mesh']).toEqual(meta);
  });
});
