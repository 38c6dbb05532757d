import { afterEach, describe, expect, it } from '@jest/globals';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { MetaServerService, TYPE_URL, type LocateRequest, type LocateResponse } from '@octo-mesh/proto';
import { XdsServerFixture } from '../test-support/xds-server.js';
import { cla, edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';
import { httpUpstream, request } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { locateAttemptMs, pilotLocator, type PilotLocation } from './locate.js';

// The proxy asks a meta server (a Locate-only fixture here, not the real one) which pilot serves
// it, and asks again — naming the pilot it lost — when that pilot becomes unreachable.
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function until(cond: () => Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('pilot discovery through the meta server', () => {
  it('connects to the pilot it is given and moves when that pilot is lost', async () => {
    const a = await httpUpstream('from-pilot-a');
    const b = await httpUpstream('from-pilot-b');
    const pilots = { 'pilot-a': new XdsServerFixture(), 'pilot-b': new XdsServerFixture() };
    for (const [name, up] of [['pilot-a', a], ['pilot-b', b]] as const) {
      const x = pilots[name];
      await x.start();
      x.set(TYPE_URL.cluster, '1', [pack(TYPE_URL.cluster, edsCluster('svc'))]);
      x.set(TYPE_URL.endpoint, '1', [pack(TYPE_URL.endpoint, cla('svc', [up.port]))]);
      x.set(TYPE_URL.listener, '1', [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'outbound' }))]);
      x.set(TYPE_URL.route, '1', [pack(TYPE_URL.route, routeConfig('outbound', [{ match: { prefix: '/' }, route: { cluster: 'svc' } }]))]);
    }
    const asked: LocateRequest[] = [];
    const meta = new Server();
    meta.addService(MetaServerService, {
      locate: (call: ServerUnaryCall<LocateRequest, LocateResponse>, cb: sendUnaryData<LocateResponse>) => {
        asked.push(call.request);
        const lost = call.request.unreachablePilotId;
        const pilotId = lost === 'pilot-a' ? 'pilot-b' : 'pilot-a';
        cb(null, { pilotId, xdsAddress: `127.0.0.1:${pilots[pilotId].port}` });
      },
      registerPilot: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
      pilotHeartbeat: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
      deregisterPilot: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
    });
    const metaPort = await new Promise<number>((res, rej) => meta.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const proxy = await startProxy(
      {},
      {
        node: { id: 'web-0.shop', cluster: 'web', metadata: { workload: 'web', namespace: 'shop' } } as never,
        xds: { metaAddress: `127.0.0.1:${metaPort}`, mode: 'sotw' },
        xdsBackoff: { initialMs: 50, maxMs: 200 },
      },
    );
    cleanup.push(async () => {
      await proxy.stop(100);
      meta.forceShutdown();
      await pilots['pilot-b'].stop();
      await a.close();
      await b.close();
    });
    const served = async () => String((await request(proxy.port)).headers['x-upstream']);
    await until(async () => (await served()) === 'from-pilot-a');
    expect(asked[0]).toMatchObject({ nodeId: 'web-0.shop', namespace: 'shop', workload: 'web', unreachablePilotId: '' });

    await pilots['pilot-a'].stop();
    // Still serving on the last good config while it finds the next pilot.
    expect(await served()).toBe('from-pilot-a');
    await until(async () => (await served()) === 'from-pilot-b');
    expect(asked.some((r) => r.unreachablePilotId === 'pilot-a')).toBe(true);
  }, 20_000);
});

describe('locate deadlines', () => {
  it.each([
    [0, 3000],
    [1, 6000],
    [2, 12_000],
    [7, 12_000],
    [-1, 3000],
  ])('after %i failures in a row an attempt may take %i ms', (failures, ms) => {
    expect(locateAttemptMs(failures)).toBe(ms);
  });

  it('gives a slow meta server longer on each attempt, and starts over after a success', async () => {
    // The meta server answers every Locate 300 ms late: a fixed 100 ms deadline would never get an answer.
    const deadlines: number[] = [];
    const meta = new Server();
    meta.addService(MetaServerService, {
      locate: (call: ServerUnaryCall<LocateRequest, LocateResponse>, cb: sendUnaryData<LocateResponse>) => {
        deadlines.push(Number(call.getDeadline()) - Date.now());
        setTimeout(() => cb(null, { pilotId: 'pilot-a', xdsAddress: '127.0.0.1:1' }), 300);
      },
      registerPilot: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
      pilotHeartbeat: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
      deregisterPilot: (_c: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED }),
    });
    const port = await new Promise<number>((res, rej) => meta.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanup.push(async () => void meta.forceShutdown());
    const locate = pilotLocator({ metaAddress: `127.0.0.1:${port}`, nodeId: 'web-0.shop', namespace: 'shop', workload: 'web', firstAttemptMs: 100 });
    const errors: string[] = [];
    let found: PilotLocation | undefined;
    while (!found && errors.length < 6)
      found = await locate().catch((err: Error) => void errors.push(err.message));
    expect(found).toEqual({ pilotId: 'pilot-a', xdsAddress: '127.0.0.1:1' });
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]).toMatch(/DEADLINE_EXCEEDED|Deadline exceeded/i);
    // The attempt after a failure was given more time (100, 200, then 400 ms at most; the server
    // reads the deadline a little later than it was set).
    expect(deadlines[1]!).toBeGreaterThan(deadlines[0]!);
    expect(Math.max(...deadlines)).toBeLessThanOrEqual(400);
    // A success starts over at the first deadline.
    deadlines.length = 0;
    await locate().catch(() => undefined);
    expect(deadlines[0]!).toBeLessThanOrEqual(100);
  }, 20_000);
});
