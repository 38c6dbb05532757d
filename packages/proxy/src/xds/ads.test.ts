import { afterEach, describe, expect, it } from '@jest/globals';
import { TYPE_URL, type DeltaDiscoveryRequest, type DiscoveryRequest } from '@octo-mesh/proto';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { XdsServerFixture } from '../test-support/xds-server.js';
import { cla, edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';
import { httpUpstream, request } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';

// The proxy against a real gRPC ADS server (a test fixture, not Pilot).
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const NODE = {
  id: 'sidecar~10.0.0.7~reviews-v1-abc.default',
  cluster: 'reviews',
  metadata: { workload: 'reviews-v1', namespace: 'default', version: 'v1', instance_id: 'reviews-v1-abc', proxy_version: '0.1.0', dependencies: ['ratings', 'details'] },
};

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup(mode: 'sotw' | 'delta') {
  const v1 = await httpUpstream('v1');
  const v2 = await httpUpstream('v2');
  const xds = new XdsServerFixture();
  await xds.start();
  cleanup.push(async () => {
    await xds.stop();
    await v1.close();
    await v2.close();
  });
  const route = (cluster: string, version = 'r1') => [pack(TYPE_URL.route, routeConfig('outbound-routes', [{ name: `to-${cluster}`, match: { prefix: '/' }, route: { cluster } }], ['reviews']))].map((r) => ({ ...r, version }));
  xds.set(TYPE_URL.cluster, 'c1', [pack(TYPE_URL.cluster, edsCluster('v1')), pack(TYPE_URL.cluster, edsCluster('v2'))]);
  xds.set(TYPE_URL.endpoint, 'e1', [pack(TYPE_URL.endpoint, cla('v1', [v1.port])), pack(TYPE_URL.endpoint, cla('v2', [v2.port]))]);
  xds.set(TYPE_URL.listener, 'l1', [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'outbound-routes' }))]);
  xds.set(TYPE_URL.route, 'r1', route('v1'));
  const proxy = await startProxy(
    {},
    { node: NODE as never, xds: { address: `127.0.0.1:${xds.port}`, mode }, admin: { host: '127.0.0.1', port: 0 }, xdsBackoff: { initialMs: 50, maxMs: 200 } },
  );
  cleanup.push(() => proxy.stop(100));
  const upstreamOf = async () => {
    const r = await request(proxy.port, { host: 'reviews' });
    return r.status === 200 ? String(r.headers['x-upstream']) : `${r.status} ${String(r.headers['x-octo-reason'])}`;
  };
  await until(async () => (await upstreamOf()) === 'v1');
  return { v1, v2, xds, proxy, upstreamOf, route };
}

describe.each(['sotw', 'delta'] as const)('ADS (%s)', (mode) => {
  it('configures the data path, ACKs each type and sends the node identity', async () => {
    const { xds, proxy } = await setup(mode);
    const gov = ServiceGovernance.fromPartial({ service: 'reviews.default.svc', routePolicy: 'default/reviews', generation: 3, clusters: ['v1', 'v2'] });
    xds.set(TYPE_URL.serviceGovernance, 'g1', [{ name: gov.service, any: { typeUrl: TYPE_URL.serviceGovernance, value: Buffer.from(ServiceGovernance.encode(gov).finish()) } }]);
    await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => r.typeUrl === TYPE_URL.serviceGovernance && r.responseNonce !== '' && !r.errorDetail);
    const first = await xds.waitFor<DiscoveryRequest>((r) => r.node !== undefined);
    expect(first.node?.id).toBe(NODE.id);
    expect(first.node?.metadata).toMatchObject({ dependencies: ['ratings', 'details'], workload: 'reviews-v1', namespace: 'default' });
    for (const t of [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route]) {
      const ack = await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => r.typeUrl === t && r.responseNonce !== '' && !r.errorDetail);
      if (mode === 'sotw') expect(ack.versionInfo).not.toBe('');
    }
    const ready = await fetch(`http://127.0.0.1:${proxy.adminPort}/ready`);
    expect(ready.status).toBe(200);
    const dump = (await (await fetch(`http://127.0.0.1:${proxy.adminPort}/config_dump`)).json()) as { versions: Record<string, string>; service_governance: Record<string, unknown> };
    expect(dump.versions[TYPE_URL.route]).toBe('r1');
    expect(dump.service_governance['reviews.default.svc']).toMatchObject({ routePolicy: 'default/reviews', generation: 3 });
  });

  it('NACKs an invalid update and keeps routing on the previous config', async () => {
    const { xds, upstreamOf } = await setup(mode);
    // Look-ahead is JavaScript, not RE2 (Envoy's engine): the route table is refused, naming the field.
    const bad = pack(TYPE_URL.route, routeConfig('outbound-routes', [{ match: { safe_regex: { regex: '/(?=api).*' } }, route: { cluster: 'v2' } }], ['reviews']));
    xds.set(TYPE_URL.route, 'r2-bad', [bad]);
    const nack = await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => r.typeUrl === TYPE_URL.route && r.errorDetail !== undefined);
    expect(nack.errorDetail?.message).toContain('virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex "/(?=api).*" (RE2 syntax)');
    if (mode === 'sotw') expect(nack.versionInfo).toBe('r1');
    for (let i = 0; i < 5; i++) expect(await upstreamOf()).toBe('v1');
  });

  it('NACKs a cluster that sets a field the proxy does not implement, naming it, and keeps the clusters in force', async () => {
    const { xds, upstreamOf } = await setup(mode);
    xds.set(TYPE_URL.cluster, 'c2-bad', [pack(TYPE_URL.cluster, edsCluster('v1', { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_params: { tls_minimum_protocol_version: 'TLSv1_3' } } } } })), pack(TYPE_URL.cluster, edsCluster('v2'))]);
    const nack = await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => r.typeUrl === TYPE_URL.cluster && r.errorDetail !== undefined);
    expect(nack.errorDetail?.message).toContain('cluster "v1": transport_socket.typed_config.common_tls_context.tls_params: not implemented by this proxy');
    if (mode === 'sotw') expect(nack.versionInfo).toBe('c1');
    for (let i = 0; i < 5; i++) expect(await upstreamOf()).toBe('v1');
  });

  it('follows a valid update, and keeps serving while the control plane is down', async () => {
    const { xds, upstreamOf, route } = await setup(mode);
    xds.set(TYPE_URL.route, 'r2', route('v2', 'r2'));
    await until(async () => (await upstreamOf()) === 'v2');
    await xds.stop();
    for (let i = 0; i < 20; i++) expect(await upstreamOf()).toBe('v2');
    // Back on the same port: the proxy reconnects (backoff) and takes the new state.
    const again = new XdsServerFixture();
    await again.start(xds.port);
    cleanup.push(() => again.stop());
    again.set(TYPE_URL.cluster, 'c1', [pack(TYPE_URL.cluster, edsCluster('v1')), pack(TYPE_URL.cluster, edsCluster('v2'))]);
    again.set(TYPE_URL.endpoint, 'e1', [pack(TYPE_URL.endpoint, cla('v1', [0])), pack(TYPE_URL.endpoint, cla('v2', [0]))]);
    again.set(TYPE_URL.listener, 'l1', [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'outbound-routes' }))]);
    // v1's endpoint is now unreachable (port 0): a 503 proves the new state is in force.
    again.set(TYPE_URL.route, 'r3', route('v1', 'r3'));
    await until(() => again.streams > 0, 8000);
    await until(async () => (await upstreamOf()).startsWith('503'), 8000);
  });

  it('ACKs a response with nothing new in it at once, without putting it in force again, and counts it', async () => {
    // Issue 18: a pilot may send a reconnecting proxy what it has under a version the proxy did not know.
    const { xds, proxy, upstreamOf } = await setup(mode);
    await until(() => proxy.sync().synced);
    const inForce = proxy.snapshot;
    const from = xds.requests.length;
    const unchanged = async () => {
      const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`)).text();
      return ['Cluster', 'Listener'].map((t) => Number(new RegExp(`octo_proxy_xds_updates_total\\{type="${t}",result="unchanged"\\} (\\d+)`).exec(text)?.[1] ?? 0));
    };
    xds.set(TYPE_URL.cluster, 'c1-again', [pack(TYPE_URL.cluster, edsCluster('v1')), pack(TYPE_URL.cluster, edsCluster('v2'))]);
    xds.set(TYPE_URL.listener, 'l1-again', [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'outbound-routes' }))]);
    for (const t of [TYPE_URL.cluster, TYPE_URL.listener]) {
      const ack = await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => xds.requests.indexOf(r) >= from && r.typeUrl === t && r.responseNonce !== '' && !r.errorDetail);
      if (mode === 'sotw') expect(ack.versionInfo).toBe(t === TYPE_URL.cluster ? 'c1-again' : 'l1-again');
    }
    await until(async () => (await unchanged()).every((n) => n === 1));
    expect(proxy.snapshot).toBe(inForce);
    expect(await upstreamOf()).toBe('v1');
    // and a response with something new in it is put in force as ever
    xds.set(TYPE_URL.cluster, 'c2', [pack(TYPE_URL.cluster, edsCluster('v1'))]);
    await until(() => proxy.snapshot !== inForce);
    expect(await unchanged()).toEqual([1, 1]);
  });

  it('drops a cluster the control plane removes', async () => {
    const { xds, upstreamOf } = await setup(mode);
    xds.set(TYPE_URL.cluster, 'c2', [pack(TYPE_URL.cluster, edsCluster('v2'))]);
    await until(async () => (await upstreamOf()) === '503 cluster-not-found');
    await xds.waitFor<DiscoveryRequest & DeltaDiscoveryRequest>((r) => r.typeUrl === TYPE_URL.cluster && !r.errorDetail && (mode === 'delta' || r.versionInfo === 'c2'));
  });

  it('does not use a new cluster before its endpoints arrive (warming)', async () => {
    const { xds, upstreamOf, route, v2 } = await setup(mode);
    xds.set(TYPE_URL.cluster, 'c2', [pack(TYPE_URL.cluster, edsCluster('v1')), pack(TYPE_URL.cluster, edsCluster('v2')), pack(TYPE_URL.cluster, edsCluster('v3'))]);
    xds.set(TYPE_URL.route, 'r2', route('v3', 'r2'));
    await until(async () => (await upstreamOf()) === '503 cluster-not-found');
    xds.set(TYPE_URL.endpoint, 'e2', [
      pack(TYPE_URL.endpoint, cla('v1', [0])),
      pack(TYPE_URL.endpoint, cla('v2', [v2.port])),
      pack(TYPE_URL.endpoint, cla('v3', [v2.port])),
    ]);
    await until(async () => (await upstreamOf()) === 'v2');
  });
});
