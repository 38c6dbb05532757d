import { describe, expect, it } from '@jest/globals';
import { FIXED_PORTS, agentConfig, planEmbedded, portsOf, sidecarBootstrap } from './topology.js';

const socketDir = '/run/octo-demo/sockets';

const counter = () => {
  let next = 40000;
  return async () => next++;
};

describe('planEmbedded', () => {
  it('puts the control plane on the well-known ports when fixed, allocates everything per instance', async () => {
    const plan = await planEmbedded({ pilots: 2, fixed: true, alloc: counter(), socketDir });
    expect(plan.dispatcher).toEqual({ grpcPort: FIXED_PORTS.dispatcherGrpc, adminPort: FIXED_PORTS.dispatcherAdmin });
    expect(plan.meta).toEqual({ grpcPort: 15011, adminPort: 15015 });
    expect(plan.pilots).toEqual([
      { id: 'pilot-a', xdsPort: 15010, adminPort: 15016 },
      { id: 'pilot-b', xdsPort: 15020, adminPort: 15026 },
    ]);
    expect(plan.sidecars.map((s) => s.nodeId)).toEqual(['frontend-v1-0.demo', 'catalog-v1-0.demo', 'catalog-v2-0.demo', 'ratings-v1-0.demo']);
    const perInstance = plan.sidecars.flatMap((s) => [...(s.appPort ? [s.appPort] : []), s.adminPort, s.inboundPort, s.outboundPort]);
    expect(new Set(perInstance).size).toBe(perInstance.length);
  });

  it('allocates every port when not fixed, all distinct, and names each for error messages', async () => {
    const plan = await planEmbedded({ pilots: 3, fixed: false, alloc: counter(), socketDir });
    const ports = portsOf(plan);
    expect(ports.every((p) => p.port >= 40000)).toBe(true);
    expect(new Set(ports.map((p) => p.port)).size).toBe(ports.length);
    expect(ports.map((p) => p.use)).toContain('pilot-c xDS');
  });

  it('never uses a port twice in one plan, even when the allocator repeats itself (as free ports do)', async () => {
    // An allocator that hands out each port three times, like probing the OS for free ports
    // before anything binds them.
    let n = 0;
    const repeating = async () => 41000 + Math.floor(n++ / 3);
    for (const fixed of [false, true]) {
      const plan = await planEmbedded({ pilots: 2, fixed, alloc: repeating, socketDir });
      const planPorts = [...portsOf(plan).map((p) => p.port), ...plan.sidecars.flatMap((s) => [...(s.appPort ? [s.appPort] : []), s.adminPort, s.inboundPort, s.outboundPort])];
      expect(new Set(planPorts).size).toBe(planPorts.length);
    }
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
  it('declares identity, dependencies, the meta server and the app port (Pilot then sends the inbound listener to the local app)', async () => {
    const plan = await planEmbedded({ pilots: 1, fixed: false, alloc: counter(), socketDir });
    const catalog = plan.sidecars[1]!;
    const b = sidecarBootstrap(catalog, '127.0.0.1:15011') as { dependencies: string[]; staticResources?: unknown };
    expect(b).toMatchObject({ metaAddress: '127.0.0.1:15011', nodeId: 'catalog-v1-0.demo', workload: 'catalog', namespace: 'demo', version: 'v1', outboundPort: catalog.outboundPort, inboundPort: catalog.inboundPort, appPort: catalog.appPort });
    expect(b).not.toHaveProperty('appSocket');
    expect(b).not.toHaveProperty('outboundSocket');
    expect(b.dependencies).toEqual([]);
    expect(b.staticResources).toBeUndefined();
  });

  it('puts frontend and ratings on Unix sockets (OCTO\'s default): app socket instead of app port, and an outbound socket', async () => {
    const plan = await planEmbedded({ pilots: 1, fixed: false, alloc: counter(), socketDir });
    // columns: instance, app socket, outbound socket (undefined: TCP)
    expect(plan.sidecars.map((s) => [s.instanceId, s.appSocket, s.outboundSocket])).toEqual([
      ['frontend-v1-0', `${socketDir}/frontend-v1-0.app.sock`, `${socketDir}/frontend-v1-0.out.sock`],
      ['catalog-v1-0', undefined, undefined],
      ['catalog-v2-0', undefined, undefined],
      ['ratings-v1-0', `${socketDir}/ratings-v1-0.app.sock`, `${socketDir}/ratings-v1-0.out.sock`],
    ]);
    const frontend = plan.sidecars[0]!;
    expect(frontend.appPort).toBeUndefined();
    const b = sidecarBootstrap(frontend, '127.0.0.1:15011') as { dependencies: string[] };
    expect(b).toMatchObject({ appSocket: frontend.appSocket, outboundSocket: frontend.outboundSocket, outboundPort: frontend.outboundPort });
    expect(b).not.toHaveProperty('appPort');
    expect(b.dependencies).toEqual(['catalog.demo.svc', 'ratings.demo.svc']);
    // The agent binds the outbound socket (and hands it to every proxy it runs); the proxy is told the app's.
    const c = agentConfig(frontend, '127.0.0.1:15011', '/tmp/agents/frontend') as { proxy: Record<string, unknown> } & Record<string, unknown>;
    expect(c.outboundSocket).toBe(frontend.outboundSocket);
    expect(c.proxy).not.toHaveProperty('outboundSocket');
    expect(c.proxy['appSocket']).toBe(frontend.appSocket);
  });

  // columns: socketDir, expected error
  it.each([
    [undefined, 'socketDir must be an absolute directory for frontend-v1-0'],
    ['run/sockets', 'socketDir must be an absolute directory'],
    [`/${'d'.repeat(90)}`, "frontend-v1-0's Unix socket"],
  ])('refuses socket directory %j for the Unix-socket instances', async (dir, error) => {
    await expect(planEmbedded({ pilots: 1, fixed: false, alloc: counter(), ...(dir ? { socketDir: dir } : {}) })).rejects.toThrow(error);
  });
});

describe('agentConfig', () => {
  it('gives the agent the listeners and the admin port, and the proxy the rest of the bootstrap', async () => {
    const plan = await planEmbedded({ pilots: 1, fixed: false, alloc: counter(), socketDir });
    const s = plan.sidecars[1]!;
    const c = agentConfig(s, '127.0.0.1:15011', '/tmp/agents/catalog') as { proxy: Record<string, unknown> } & Record<string, unknown>;
    expect(c).toMatchObject({ instanceId: 'catalog-v1-0', adminPort: s.adminPort, outboundPort: s.outboundPort, inboundPort: s.inboundPort, stateDir: '/tmp/agents/catalog' });
    expect(c.proxy).toMatchObject({ metaAddress: '127.0.0.1:15011', nodeId: 'catalog-v1-0.demo', workload: 'catalog', instanceId: 'catalog-v1-0' });
    for (const owned of ['adminPort', 'outboundPort', 'inboundPort', 'adminHost', 'outboundHost', 'inboundHost']) expect(c.proxy).not.toHaveProperty(owned);
  });

  it('keeps the repository and the operator on their well-known ports, off the pilots\' ones', async () => {
    const plan = await planEmbedded({ pilots: 3, fixed: true, alloc: counter(), socketDir });
    expect([plan.repositoryPort, plan.operatorAdminPort]).toEqual([15018, 15019]);
    const fixed = portsOf(plan).map((p) => p.port).filter((p) => p < 40000);
    expect(new Set(fixed).size).toBe(fixed.length);
  });
});
