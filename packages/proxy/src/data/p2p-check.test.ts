import { afterEach, describe, expect, it } from '@jest/globals';
import { TYPE_URL } from '@octo-mesh/proto';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { XdsServerFixture } from '../test-support/xds-server.js';
import { edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';
import { isEjected } from './outlier.js';

/**
 * Selective P2P health checks through real sockets: a real ADS server (the test fixture) gives
 * the proxy a cluster of two real HTTP upstreams, their central verdicts (EDS health_status and
 * filter_metadata["octo.mesh"]) and the service's health check (ServiceGovernance); the proxy
 * calls them, probes them itself when its evidence disagrees, and the test watches which
 * upstream gets the requests. The decision table is tested in p2p-decision.test.ts.
 */

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An upstream whose health the test switches: `/healthz` and every other path answer 200, or 503 when sick. */
interface Switchable extends Upstream {
  sick: boolean;
  /** Requests other than health probes (the proxy's traffic). */
  served: number;
  probes: number;
}
async function switchable(name: string): Promise<Switchable> {
  const ref: { u?: Switchable } = {};
  const u = await httpUpstream(name, (req, res) => {
    const self = ref.u!;
    req.resume();
    if (req.url === '/healthz') self.probes++;
    else self.served++;
    res.writeHead(self.sick ? 503 : 200, { 'x-upstream': name }).end(name);
  });
  return (ref.u = Object.assign(u, { sick: false, served: 0, probes: 0 }));
}

const CHECK = { httpPath: '/healthz', intervalMs: 200, timeoutMs: 150, healthyThreshold: 1, unhealthyThreshold: 2 };

function endpoints(eps: { port: number; status?: 'HEALTHY' | 'UNHEALTHY'; verdict?: 'healthy' | 'unhealthy'; since?: number }[]): unknown {
  return {
    cluster_name: 'c',
    endpoints: [
      {
        lb_endpoints: eps.map((e) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: e.port } } },
          health_status: e.status ?? 'HEALTHY',
          ...(e.verdict
            ? { metadata: { filter_metadata: { 'octo.mesh': { health_verdict: e.verdict, ...(e.since !== undefined ? { health_since: new Date(e.since).toISOString() } : {}) } } } }
            : {}),
        })),
      },
    ],
  };
}

async function setup(cluster: Record<string, unknown> = {}, staleFactor = 3, maxConcurrent = 4, check: typeof CHECK = CHECK): Promise<{ xds: XdsServerFixture; proxy: Proxy & { port: number }; eds: (v: string, cla: unknown) => Promise<void>; governance: (v: string, hc: typeof CHECK | undefined) => void }> {
  const xds = new XdsServerFixture();
  await xds.start();
  cleanup.push(() => xds.stop());
  xds.set(TYPE_URL.cluster, 'c1', [pack(TYPE_URL.cluster, edsCluster('c', cluster))]);
  xds.set(TYPE_URL.listener, 'l1', [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'routes' }))]);
  xds.set(TYPE_URL.route, 'r1', [pack(TYPE_URL.route, routeConfig('routes', [{ match: { prefix: '/' }, route: { cluster: 'c' } }]))]);
  const gov = ServiceGovernance.fromPartial({ service: 'svc.default.svc', clusters: ['c'], healthCheck: check });
  xds.set(TYPE_URL.serviceGovernance, 'g1', [{ name: gov.service, any: { typeUrl: TYPE_URL.serviceGovernance, value: Buffer.from(ServiceGovernance.encode(gov).finish()) } }]);
  const proxy = await startProxy({}, { xds: { address: `127.0.0.1:${xds.port}`, mode: 'sotw' }, xdsBackoff: { initialMs: 50, maxMs: 200 }, peerChecks: { tickMs: 50, staleFactor, maxConcurrent } });
  cleanup.push(() => proxy.stop(50));
  const governance = (v: string, healthCheck: typeof CHECK | undefined) => {
    const g = ServiceGovernance.fromPartial({ service: 'svc.default.svc', clusters: ['c'], ...(healthCheck ? { healthCheck } : {}) });
    xds.set(TYPE_URL.serviceGovernance, v, [{ name: g.service, any: { typeUrl: TYPE_URL.serviceGovernance, value: Buffer.from(ServiceGovernance.encode(g).finish()) } }]);
  };
  const eds = async (v: string, cla: unknown) => {
    xds.set(TYPE_URL.endpoint, v, [pack(TYPE_URL.endpoint, cla)]);
    await until(() => proxy.snapshot.versions[TYPE_URL.endpoint] === v, `EDS ${v} in force`);
  };
  await until(() => proxy.store.serviceGovernance.size === 1, 'the service governance');
  return { xds, proxy, eds, governance };
}

const send = async (port: number, n: number) => {
  for (let i = 0; i < n; i++) await request(port, { host: 'svc' });
};
const metric = async (proxy: Proxy, name: string) =>
  (await proxy.registry.getSingleMetric(name)!.get()).values.map((v) => ({ labels: v.labels, value: v.value }));

describe('selective P2P health checks', () => {
  it('a centrally unhealthy endpoint that serves gets this proxy\'s traffic again only once the verdict is stale', async () => {
    const x = await switchable('x');
    const y = await switchable('y');
    cleanup.push(() => x.close(), () => y.close());
    // Stale after 10 × 200 ms: the fresh phase below lasts well under 2 s.
    const { proxy, eds } = await setup({}, 10);
    await eds('e1', endpoints([{ port: x.port, status: 'UNHEALTHY', verdict: 'unhealthy', since: Date.now() }, { port: y.port, verdict: 'healthy', since: Date.now() }]));
    await send(proxy.port, 40);
    // Over many P2P ticks (50 ms) the fresh verdict stood: no probe, no traffic to X.
    await new Promise((r) => setTimeout(r, 500));
    await send(proxy.port, 20);
    expect([x.served, x.probes]).toEqual([0, 0]);
    expect(y.served).toBe(60);

    // The same verdict, older than 10 intervals: stale. This proxy probes X, finds it healthy and sends it traffic.
    await eds('e2', endpoints([{ port: x.port, status: 'UNHEALTHY', verdict: 'unhealthy', since: Date.now() - 5_000 }, { port: y.port, verdict: 'healthy', since: Date.now() }]));
    await until(async () => {
      await send(proxy.port, 4);
      return x.served > 0;
    }, 'traffic to X again');
    expect(x.probes).toBeGreaterThan(0);
    expect(await metric(proxy, 'octo_proxy_p2p_overrides')).toEqual([{ labels: {}, value: 1 }]);
    expect(await metric(proxy, 'octo_proxy_p2p_checks_total')).toContainEqual({ labels: { cluster: 'c', result: 'success' }, value: expect.any(Number) });
    // Only for this proxy: the control plane's view is unchanged (nothing is sent back).
    expect(proxy.snapshot.endpoints.get('c')!.localities[0]!.endpoints[0]!.health).toBe('unhealthy');

    // X dies: its probes fail, the override ends, X gets no traffic again.
    x.sick = true;
    await until(() => proxy.clusters.get('c')!.hosts.hosts[0]!.override === undefined, 'the override to end');
    const before = x.served;
    await send(proxy.port, 30);
    expect(x.served - before).toBeLessThanOrEqual(2);
    expect(await metric(proxy, 'octo_proxy_p2p_checks_total')).toContainEqual({ labels: { cluster: 'c', result: 'failure' }, value: expect.any(Number) });

    // A new central verdict (healthy) replaces local evidence at once.
    x.sick = false;
    await eds('e3', endpoints([{ port: x.port, verdict: 'healthy', since: Date.now() }, { port: y.port, verdict: 'healthy', since: Date.now() }]));
    expect(proxy.clusters.get('c')!.hosts.hosts[0]!.p2p).toBeUndefined();
  }, 30_000);

  it('a centrally healthy endpoint that fails is ejected, kept out while P2P probes fail, and back once they pass', async () => {
    const x = await switchable('x');
    const y = await switchable('y');
    cleanup.push(() => x.close(), () => y.close());
    // Outlier detection: 2 gateway errors in a row eject for 300 ms (the P2P override must outlast it).
    const { proxy, eds } = await setup({
      outlier_detection: { consecutive_5xx: 2, consecutive_gateway_failure: 2, enforcing_consecutive_gateway_failure: 100, interval: '1s', base_ejection_time: '0.3s', max_ejection_percent: 50 },
    });
    await eds('e1', endpoints([{ port: x.port, verdict: 'healthy', since: Date.now() }, { port: y.port, verdict: 'healthy', since: Date.now() }]));
    const host = () => proxy.clusters.get('c')!.hosts.hosts.find((h) => h.key.endsWith(`:${x.port}`))!;
    x.sick = true;
    await until(async () => {
      await send(proxy.port, 2);
      return isEjected(host().outlier, Date.now());
    }, 'X to be ejected');
    // The ejection disagrees with the central verdict: probes fail twice, the local verdict keeps X out.
    await until(() => host().override === 'unhealthy', 'the P2P override (unhealthy)');
    // Past the ejection time, X still gets no request: the failing probes keep it out.
    await until(() => !isEjected(host().outlier, Date.now()), 'the ejection to expire');
    const out = x.served;
    await send(proxy.port, 40);
    expect(x.served).toBe(out);
    expect(await metric(proxy, 'octo_proxy_p2p_overrides')).toEqual([{ labels: {}, value: 1 }]);

    // X recovers: the next probe passes, the override ends and X is back in rotation for this proxy.
    x.sick = false;
    await until(async () => {
      await send(proxy.port, 4);
      return x.served > out;
    }, 'traffic to X again');
    expect(host().override).toBeUndefined();
    const results = (await metric(proxy, 'octo_proxy_p2p_checks_total')).map((m) => m.labels['result']);
    expect(results).toEqual(expect.arrayContaining(['failure', 'success']));
  }, 30_000);

  it('keeps at most maxConcurrent probes in flight, and drops its overrides when the service loses its health check', async () => {
    // Five endpoints, all centrally unhealthy with a stale verdict, each answering its probe after 100 ms.
    let inFlight = 0;
    let most = 0;
    const ups: Upstream[] = [];
    for (let i = 0; i < 5; i++)
      ups.push(
        await httpUpstream(`u${i}`, (req, res) => {
          req.resume();
          if (req.url !== '/healthz') return void res.writeHead(200, { 'x-upstream': `u${i}` }).end();
          most = Math.max(most, ++inFlight);
          res.on('close', () => inFlight--);
          setTimeout(() => res.writeHead(200).end(), 100);
        }),
      );
    cleanup.push(...ups.map((u) => () => u.close()));
    // Probes every 400 ms per host with 300 ms to answer: five hosts want more than 2 in flight at times.
    const { proxy, eds, governance } = await setup({}, 3, 2, { ...CHECK, intervalMs: 400, timeoutMs: 300 });
    await eds('e1', endpoints(ups.map((u) => ({ port: u.port, status: 'UNHEALTHY' as const, verdict: 'unhealthy' as const, since: Date.now() - 60_000 }))));
    await send(proxy.port, 5); // every host unhealthy: panic routing, and the cluster counts as called
    await until(async () => (await metric(proxy, 'octo_proxy_p2p_overrides'))[0]?.value === 5, 'all five overridden healthy');
    expect(most).toBe(2);

    governance('g2', undefined);
    await until(async () => (await metric(proxy, 'octo_proxy_p2p_overrides'))[0]?.value === 0, 'the overrides to end');
    expect(proxy.clusters.get('c')!.hosts.hosts.every((h) => h.override === undefined && h.p2p === undefined)).toBe(true);
  }, 30_000);
});
