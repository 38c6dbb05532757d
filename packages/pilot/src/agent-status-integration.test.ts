// The LEGO agent's status reaches the pilot through the real proxy: the agent (here the test,
// as the proxy's IPC parent) sends `octo.agent.status`, the proxy forwards it to the pilot of its
// ADS stream, and the pilot's rollout aggregate counts the sidecar. After the pilot restarts the
// proxy reconnects and reports again, so nothing the agent said is lost with a pilot.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { proxyVersion } from '@octo-mesh/api';
import type { AgentStatus } from '@octo-mesh/contracts';
import { createLogger } from '@octo-mesh/runtime';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, startSidecar, stopChild, until } from './test-support/sidecar.js';

const pv = proxyVersion.parse({
  apiVersion: 'mesh.octo.io/v1alpha1',
  kind: 'ProxyVersion',
  metadata: { name: 'proxy-2', namespace: 'octo-system', generation: 1 },
  spec: { version: '2.0.0', package: { url: 'http://repo/p.tgz', sha256: 'b'.repeat(64) }, strategy: { steps: [100] } },
  status: { phase: 'Succeeded' },
});

const status = (ready: boolean): AgentStatus => ({
  instanceId: 'catalog-0',
  runningVersion: '2.0.0',
  target: { version: '2.0.0', sha256: 'b'.repeat(64), rollout: 'octo-system/proxy-2', generation: 1 },
  phase: 'Idle',
  ready,
  readySince: ready ? new Date().toISOString() : null,
  lastError: null,
  badVersions: [],
  lastChange: new Date().toISOString(),
});

const quiet = () => createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

describe('agent status through a real proxy to its pilot', () => {
  let pilot: RunningPilot | undefined;
  let sidecar: Awaited<ReturnType<typeof startSidecar>> | undefined;
  const source = new MemoryMeshSource();
  const start = async (xdsPort: number) => {
    const p = await startPilot(pilotConfig.parse({ xdsPort, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', debounceQuietMs: 10, debounceMaxMs: 50, shutdownGraceSeconds: 0.1 }), quiet(), source);
    p.pilot.setProxyVersions([pv]);
    return p;
  };
  const aggregate = () => pilot!.pilot.rollouts()[0]!;

  beforeAll(() => buildProxy(), 120_000);
  afterAll(async () => {
    await stopChild(sidecar?.child);
    await pilot?.stop();
  });

  it('is counted by the pilot, follows updates, and is reported again to a restarted pilot', async () => {
    pilot = await start(0);
    const port = pilot.xdsPort;
    sidecar = await startSidecar(port, { nodeId: 'catalog-0', workload: 'catalog', dependencies: '' });
    sidecar.child.send({ type: 'octo.agent.status', status: status(false) });
    await until('the pilot to count the sidecar as upgraded', async () => (aggregate().upgraded === 1 ? true : undefined), 20_000);
    expect(aggregate()).toMatchObject({ inScope: 1, targeted: 1, upgraded: 1, ready: 0 });

    sidecar.child.send({ type: 'octo.agent.status', status: status(true) });
    await until('the pilot to count it ready', async () => (aggregate().ready === 1 ? true : undefined), 20_000);

    // A new pilot on the same port knows nothing until the proxy reconnects and reports again.
    await pilot.stop();
    pilot = await start(port);
    expect(aggregate().ready).toBe(0);
    await until('the reconnected proxy to report again', async () => (aggregate().ready === 1 ? true : undefined), 40_000);
  }, 90_000);
});
