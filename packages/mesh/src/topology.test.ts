import { describe, expect, it } from '@jest/globals';
import { FIXED_PORTS, planEmbedded, portsOf, sidecarBootstrap } from './topology.js';

const counter = () => {
  let next = 40000;
  return async () => next++;
};

describe('planEmbedded', () => {
  it('puts the control plane on the well-known ports when fixed, allocates everything per instance', async () => {
    const plan = await planEmbedded({ pilots: 2, fixed: true, alloc: counter() });
    expect(plan.dispatcher).toEqual({ grpcPort: FIXED_PORTS.dispatcherGrpc, adminPort: FIXED_PORTS.dispatcherAdmin });
    expect(plan.meta).toEqual({ grpcPort: 15011, adminPort: 15015 });
    expect(plan.pilots).toEqual([
      { id: 'pilot-a', xdsPort: 15010, adminPort: 15016 },
      { id: 'pilot-b', xdsPort: 15020, adminPort: 15026 },
    ]);
    expect(plan.sidecars.map((s) => s.nodeId)).toEqual(['frontend-v1-0.demo', 'catalog-v1-0.demo', 'catalog-v2-0.demo', 'ratings-v1-0.demo']);
    const perInstance = plan.sidecars.flatMap((s) => [s.appPort, s.adminPort, s.inboundPort, s.outboundPort]);
    expect(new Set(perInstance).size).toBe(perInstance.length);
  });

  it('allocates every port when not fixed, all distinct, and names each for error messages', async () => {
    const plan = await planEmbedded({ pilots: 3, fixed: false, alloc: counter() });
    const ports = portsOf(plan);
    expect(ports.every((p) => p.port >= 40000)).toBe(true);
    expect(new Set(ports.map((p) => p.port)).size).toBe(ports.length);
    expect(ports.map((p) => p.use)).toContain('pilot-c xDS');
  });

  it('numbers instances of one service and version', async () => {
    const plan = await planEmbedded({ pilots: 1, fixed: false, alloc: counter(), system: [
      { service: 'catalog', version: 'v1', calls: [] },
      { service: 'catalog', version: 'v1', calls: [] },
    ] });
    expect(plan.sidecars.map((s) => s.instanceId)).toEqual(['catalog-v1-0', 'catalog-v1-1']);
  });
});

describe('sidecarBootstrap', () => {
  it('declares identity, dependencies and the meta server, and routes inbound to the local app', async () => {
    const plan = await planEmbedded({ pilots: 1, fixed: false, alloc: counter() });
    const frontend = plan.sidecars[0]!;
    const b = sidecarBootstrap(frontend, '127.0.0.1:15011') as { dependencies: string[]; inboundPort: number; staticResources: { clusters: { load_assignment: unknown }[] } };
    expect(b).toMatchObject({ metaAddress: '127.0.0.1:15011', nodeId: 'frontend-v1-0.demo', workload: 'frontend', namespace: 'demo', version: 'v1', outboundPort: frontend.outboundPort, inboundPort: frontend.inboundPort });
    expect(b.dependencies).toEqual(['catalog.demo.svc', 'ratings.demo.svc']);
    expect(JSON.stringify(b.staticResources.clusters[0]!.load_assignment)).toContain(`"port_value":${frontend.appPort}`);
  });
});
