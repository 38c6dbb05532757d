import { afterEach, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, ProxyVersion, RoutePolicy, Service } from '@octo-mesh/api';
import { Cluster, ClusterLoadAssignment, Listener, Node, RouteConfiguration, TYPE_URL, UpgradeTarget, type AggregatedDiscoveryServiceClient } from '@octo-mesh/proto';
import { Pilot } from '../pilot.js';
import { adsClient, DeltaClient, SotwClient } from '../sim/ads-client.js';
import { MemoryMeshSource } from '../source.js';
import type { AdmissionOptions } from './admission.js';
import { AdsServer } from './ads.js';

const svc = (name: string, port: number, namespace = 'demo'): Service => ({
  apiVersion: 'model.mesh.octo.io/v1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { ports: [{ name: 'http', port, protocol: 'http' }] },
});
const ep = (address: string, labels: Record<string, string> = {}): Endpoint => ({ address, port: 15006, labels, healthy: true });
const node = (id: string, dependencies: unknown[], extra: Record<string, unknown> = {}): Node => Node.fromPartial({ id, cluster: 'demo', metadata: { namespace: 'demo', dependencies, ...extra } });
const policy = (generation: number, timeout = '1s'): RoutePolicy => ({
  apiVersion: 'mesh.octo.io/v1alpha1',
  kind: 'RoutePolicy',
  metadata: { name: 'catalog', namespace: 'demo', generation },
  spec: { targetRef: { service: 'catalog' }, rules: [{ route: [{}], timeout }] },
});

const CATALOG = 'outbound|8080||catalog.demo.svc';
const REVIEWS = 'outbound|9080||reviews.demo.svc';
const names = (r: { resources: { value: Buffer }[] }, decode: (b: Buffer) => { name?: string; clusterName?: string }) =>
  r.resources.map((a) => {
    const m = decode(a.value);
    return m.name ?? m.clusterName;
  });
const clusterNames = (r: { resources: { value: Buffer }[] }) => names(r, (b) => Cluster.decode(b));

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A pilot serving ADS on a free port; `shared`: the mesh state of an earlier pilot (a restart of it), else a new one; `admission`: the server's stream admission. */
async function setup(shared?: MemoryMeshSource, admission?: AdmissionOptions) {
  const source = shared ?? new MemoryMeshSource();
  if (!shared) {
    source.upsertService(svc('catalog', 8080), [ep('10.0.0.1')]);
    source.upsertService(svc('reviews', 9080), [ep('10.0.0.2')]);
  }
  const propagated: { nodeId: string; typeUrl: string; ms: number }[] = [];
  const pilot = new Pilot({ source, debounce: { quietMs: 10, maxDelayMs: 50 }, onPropagated: (nodeId, typeUrl, ms) => propagated.push({ nodeId, typeUrl, ms }) });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks, ...(admission ? { admission } : {}) });
  const port = await server.listen(0, '127.0.0.1');
  const client: AggregatedDiscoveryServiceClient = adsClient(`127.0.0.1:${port}`);
  const clients: { close(): void }[] = [];
  cleanup.push(async () => {
    for (const c of clients) c.close();
    client.close();
    pilot.close();
    await server.close(100);
  });
  const sotw = (n: Node) => {
    const c = new SotwClient(client, n);
    clients.push(c);
    return c;
  };
  const delta = (n: Node) => {
    const c = new DeltaClient(client, n);
    clients.push(c);
    return c;
  };
  return { source, pilot, server, port, sotw, delta, propagated };
}

describe('ADS state of the world', () => {
  it('serves only the declared dependencies, with a version and nonce, and stays quiet after the ACK', async () => {
    const { sotw } = await setup();
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.cluster);
    const r = await c.next();
    expect(r.typeUrl).toBe(TYPE_URL.cluster);
    expect(r.versionInfo).not.toBe('');
    expect(r.nonce).not.toBe('');
    expect(clusterNames(r)).toEqual([CATALOG]);
    c.ack(r);
    expect(await c.quiet()).toBe(true);
  });

  it('scopes per node: two nodes with different dependencies get different clusters', async () => {
    const { sotw } = await setup();
    const a = sotw(node('a', ['catalog']));
    const b = sotw(node('b', ['reviews', 'catalog']));
    a.subscribe(TYPE_URL.cluster);
    b.subscribe(TYPE_URL.cluster);
    expect(clusterNames(await a.next())).toEqual([CATALOG]);
    expect(clusterNames(await b.next()).sort()).toEqual([CATALOG, REVIEWS]);
  });

  it('never resends a NACKed version, records the error, and sends the next version', async () => {
    const { sotw, source, pilot } = await setup();
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.route, ['outbound']);
    const r1 = await c.next();
    c.nack(r1, 'route timeout not supported', '', ['outbound']);
    expect(await c.quiet()).toBe(true);
    // a follow-up on the same nonce (as a proxy sends on a subscription change) is no ACK
    c.send({ typeUrl: TYPE_URL.route, versionInfo: '', responseNonce: r1.nonce, resourceNames: ['outbound'] });
    expect(await c.quiet(100)).toBe(true);
    const report = pilot.sync.report('a', new Map([[TYPE_URL.route, r1.versionInfo]]));
    expect(report[0]).toMatchObject({ state: 'NACKED', nacked: r1.versionInfo, error: 'route timeout not supported' });
    source.applyPolicy(policy(1));
    const r2 = await c.next();
    expect(r2.versionInfo).not.toBe(r1.versionInfo);
    expect(r2.nonce).not.toBe(r1.nonce);
    c.ack(r2, ['outbound']);
    await c.quiet(100);
    expect(pilot.sync.report('a', new Map([[TYPE_URL.route, r2.versionInfo]]))[0]!.state).toBe('SYNCED');
  });

  it('ignores a request with a stale nonce', async () => {
    const { sotw } = await setup();
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.cluster);
    const r = await c.next();
    c.send({ typeUrl: TYPE_URL.cluster, versionInfo: '', responseNonce: 'not-a-nonce-we-sent' });
    expect(await c.quiet()).toBe(true);
    c.ack(r);
    expect(await c.quiet()).toBe(true);
  });

  it('pushes only EDS on an endpoint change, and measures change→ACK', async () => {
    const { sotw, source, propagated } = await setup();
    const c = sotw(node('a', ['catalog']));
    for (const t of [TYPE_URL.cluster, TYPE_URL.listener]) c.subscribe(t);
    const first = [await c.next(), await c.next()];
    for (const r of first) c.ack(r);
    c.subscribe(TYPE_URL.endpoint, [CATALOG]);
    c.subscribe(TYPE_URL.route, ['outbound']);
    for (const r of [await c.next(), await c.next()]) c.ack(r, r.typeUrl === TYPE_URL.endpoint ? [CATALOG] : ['outbound']);
    expect(await c.quiet(100)).toBe(true);

    source.setEndpoints('demo/catalog', [ep('10.0.0.1'), ep('10.0.0.9')]);
    const push = await c.next();
    expect(push.typeUrl).toBe(TYPE_URL.endpoint);
    const cla = ClusterLoadAssignment.decode(push.resources[0]!.value);
    expect(cla.endpoints.flatMap((l) => l.lbEndpoints.map((e) => e.endpoint?.address?.socketAddress?.address))).toEqual(['10.0.0.1', '10.0.0.9']);
    c.ack(push, [CATALOG]);
    expect(await c.quiet()).toBe(true);
    expect(propagated).toEqual([expect.objectContaining({ nodeId: 'a', typeUrl: TYPE_URL.endpoint })]);
    expect(propagated[0]!.ms).toBeGreaterThan(0);
  });

  it('sends nothing to a named subscription whose resources did not change, and counts it synced', async () => {
    const { sotw, source, pilot } = await setup();
    const c = sotw(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.endpoint, [CATALOG]);
    const r1 = await c.next();
    c.ack(r1, [CATALOG]);
    source.setEndpoints('demo/reviews', [ep('10.0.0.6')]); // in the node's snapshot, not subscribed
    expect(await c.quiet()).toBe(true);
    const current = pilot.cache.getSnapshot('a')!.version(TYPE_URL.endpoint);
    expect(current).not.toBe(r1.versionInfo);
    expect(pilot.sync.report('a', new Map([[TYPE_URL.endpoint, current]]))[0]!.state).toBe('SYNCED');
    // subscribing to the other one now sends both, at the current version
    c.send({ typeUrl: TYPE_URL.endpoint, versionInfo: r1.versionInfo, responseNonce: r1.nonce, resourceNames: [CATALOG, REVIEWS] });
    const r2 = await c.next();
    expect(r2.versionInfo).toBe(current);
    expect(names(r2, (b) => ClusterLoadAssignment.decode(b)).sort()).toEqual([CATALOG, REVIEWS]);
  });

  it('rebuilds routes and clusters on a RoutePolicy change, and counts the ACKs in its status', async () => {
    const { sotw, source, pilot } = await setup();
    const c = sotw(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.cluster);
    c.ack(await c.next());
    c.subscribe(TYPE_URL.route, ['outbound']);
    c.ack(await c.next(), ['outbound']);
    source.applyPolicy(policy(4, '3s'));
    const pushed = new Map<string, Awaited<ReturnType<typeof c.next>>>();
    const r = await c.next();
    pushed.set(r.typeUrl, r);
    c.ack(r, r.typeUrl === TYPE_URL.route ? ['outbound'] : []);
    // The policy sets a route timeout only: the clusters' bytes are unchanged, so CDS is not pushed.
    expect([...pushed.keys()]).toEqual([TYPE_URL.route]);
    expect(await c.quiet()).toBe(true);
    const rc = RouteConfiguration.decode(pushed.get(TYPE_URL.route)!.resources[0]!.value);
    const vh = rc.virtualHosts.find((v) => v.name === 'catalog.demo.svc:8080')!;
    expect(vh.routes[0]!.route!.timeout).toEqual({ seconds: 3, nanos: 0 });
    const status = pilot.routePolicyStatuses().find((s) => s.policy === 'demo/catalog')!;
    expect(status.status).toMatchObject({ accepted: true, observedGeneration: 4, sidecars: { total: 1, acked: 1, nacked: 0 } });
  });

  it('gives bare-name domains only to callers in the service namespace', async () => {
    const { sotw } = await setup();
    const local = sotw(node('a', ['catalog']));
    const remote = sotw(Node.fromPartial({ id: 'b', metadata: { namespace: 'web', dependencies: ['catalog.demo'] } }));
    const domains = async (c: SotwClient) => {
      c.subscribe(TYPE_URL.route, ['outbound']);
      return RouteConfiguration.decode((await c.next()).resources[0]!.value).virtualHosts[0]!.domains;
    };
    expect(await domains(local)).toContain('catalog');
    const far = await domains(remote);
    expect(far).toContain('catalog.demo:8080');
    expect(far.filter((d) => !d.split(':')[0]!.includes('.'))).toEqual([]);
  });

  it('removes a deleted service from a wildcard CDS subscription', async () => {
    const { sotw, source } = await setup();
    const c = sotw(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.cluster);
    const r1 = await c.next();
    expect(clusterNames(r1).sort()).toEqual([CATALOG, REVIEWS]);
    c.ack(r1);
    source.deleteService('demo/reviews');
    const r2 = await c.next();
    expect(clusterNames(r2)).toEqual([CATALOG]);
  });

  it('does not resend on reconnect with the version the proxy already has', async () => {
    const { sotw } = await setup();
    const c1 = sotw(node('a', ['catalog']));
    c1.subscribe(TYPE_URL.cluster);
    const r = await c1.next();
    c1.ack(r);
    c1.close();
    const c2 = sotw(node('a', ['catalog']));
    c2.subscribe(TYPE_URL.cluster, [], r.versionInfo);
    expect(await c2.quiet()).toBe(true);
    const c3 = sotw(node('a', ['catalog']));
    c3.subscribe(TYPE_URL.cluster, [], 'some-older-version');
    expect((await c3.next()).versionInfo).toBe(r.versionInfo);
  });

  it('a restarted pilot sends nothing to a proxy that resumes with what the old one sent: versions are content hashes', async () => {
    // Issue 18: after both pilots were killed under load, the proxies were not sent their
    // configuration again (bench/embedded/pilot-return-under-load.mjs: 0 responses) — which holds
    // only while a new process derives every type's version from the same mesh state alike.
    const first = await setup();
    const c1 = first.sotw(node('a', ['catalog']));
    const held = new Map<string, { versionInfo: string; names: string[] }>();
    for (const t of [TYPE_URL.cluster, TYPE_URL.listener]) c1.subscribe(t);
    c1.subscribe(TYPE_URL.endpoint, [CATALOG]);
    c1.subscribe(TYPE_URL.route, ['outbound']);
    while (held.size < 4) {
      const r = await c1.next();
      const names = r.typeUrl === TYPE_URL.endpoint ? [CATALOG] : r.typeUrl === TYPE_URL.route ? ['outbound'] : [];
      c1.ack(r, names);
      held.set(r.typeUrl, { versionInfo: r.versionInfo, names });
    }
    c1.close();
    first.pilot.close();

    const restarted = await setup(first.source);
    const c2 = restarted.sotw(node('a', ['catalog']));
    for (const [t, h] of held) c2.subscribe(t, h.names, h.versionInfo);
    expect(await c2.quiet()).toBe(true);
    // and a proxy holding something else is sent the current configuration
    const c3 = restarted.sotw(node('b', ['catalog']));
    c3.subscribe(TYPE_URL.cluster, [], 'some-older-version');
    expect((await c3.next()).versionInfo).toBe(held.get(TYPE_URL.cluster)!.versionInfo);
  });

  it('learns a dependency on demand when a proxy asks for a cluster it did not declare', async () => {
    const { sotw } = await setup();
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.cluster);
    const r1 = await c.next();
    expect(clusterNames(r1)).toEqual([CATALOG]);
    c.ack(r1);
    c.subscribe(TYPE_URL.endpoint, [REVIEWS]);
    const seen = new Map<string, Awaited<ReturnType<typeof c.next>>>();
    while (!(seen.has(TYPE_URL.cluster) && seen.get(TYPE_URL.endpoint)?.resources.length)) {
      const r = await c.next();
      seen.set(r.typeUrl, r);
      c.ack(r, r.typeUrl === TYPE_URL.endpoint ? [REVIEWS] : []);
    }
    expect(clusterNames(seen.get(TYPE_URL.cluster)!).sort()).toEqual([CATALOG, REVIEWS]);
    expect(names(seen.get(TYPE_URL.endpoint)!, (b) => ClusterLoadAssignment.decode(b))).toEqual([REVIEWS]);
  });

  it('gives a node that declares its app port an inbound listener and the static cluster behind it', async () => {
    const { sotw } = await setup();
    const c = sotw(node('a', ['catalog'], { app_port: 9000 }));
    c.subscribe(TYPE_URL.listener);
    c.subscribe(TYPE_URL.cluster);
    const got = new Map<string, Awaited<ReturnType<typeof c.next>>>();
    for (let i = 0; i < 2; i++) {
      const r = await c.next();
      got.set(r.typeUrl, r);
    }
    expect(names(got.get(TYPE_URL.listener)!, (b) => Listener.decode(b))).toEqual(['outbound', 'inbound']);
    expect(clusterNames(got.get(TYPE_URL.cluster)!)).toEqual([CATALOG, 'inbound|9000||local']);
    const d = sotw(node('b', ['catalog'], { app_port: 'eighty' }));
    d.subscribe(TYPE_URL.listener);
    await expect(d.next()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('node.metadata.app_port') });
  });

  it('refuses a node whose metadata is invalid, naming the field', async () => {
    const { sotw } = await setup();
    const c = sotw(node('a', ['not a service!']));
    c.subscribe(TYPE_URL.cluster);
    await expect(c.next()).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('node.metadata.dependencies[0]') });
  });

  it('serves the OCTO UpgradeTarget on the same stream', async () => {
    const { sotw, pilot } = await setup();
    const pv: ProxyVersion = {
      apiVersion: 'mesh.octo.io/v1alpha1',
      kind: 'ProxyVersion',
      metadata: { name: 'proxy-1-5-0', namespace: 'octo-system', generation: 2 },
      spec: {
        version: '1.5.0',
        package: { url: 'https://repo/octo-proxy-1.5.0.tgz', sha256: 'a'.repeat(64) },
        scope: {},
        strategy: { steps: [100], pauseBetweenBatches: '30s', healthGate: { minReadySeconds: 10, maxFailurePercent: 0, progressDeadline: '10m' }, autoRollback: true },
        paused: false,
      },
      status: { phase: 'Succeeded' },
    };
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.upgradeTarget);
    const r1 = await c.next();
    expect(r1.resources).toEqual([]);
    c.ack(r1);
    pilot.setProxyVersions([pv]);
    const r2 = await c.next();
    expect(UpgradeTarget.decode(r2.resources[0]!.value)).toMatchObject({ version: '1.5.0', rollout: 'octo-system/proxy-1-5-0', generation: 2 });
  });
});

describe('ADS server shutdown', () => {
  it('ends open streams so proxies reconnect elsewhere, without waiting out the grace period', async () => {
    const { sotw, server } = await setup();
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.cluster);
    await c.next();
    const t0 = performance.now();
    await server.close(5000);
    expect(performance.now() - t0).toBeLessThan(2000);
    await expect(c.next(1000)).rejects.toThrow();
  });
});

describe('ADS stream admission', () => {
  it('queues new streams beyond the burst and serves them in turn at the configured rate', async () => {
    const { sotw } = await setup(undefined, { ratePerSecond: 10, burst: 1 });
    const streams = [0, 1, 2].map((i) => sotw(node(`q${i}`, ['catalog'])));
    const t0 = performance.now();
    for (const s of streams) s.subscribe(TYPE_URL.cluster);
    const at = await Promise.all(streams.map(async (s) => (await s.next(3000), performance.now() - t0)));
    // burst 1, then one every 100 ms: the third waits ~200 ms, and nobody is refused
    expect(at[2]!).toBeGreaterThanOrEqual(150);
    expect(at[2]!).toBeLessThan(2000);
    expect(Math.min(...at)).toBeLessThan(150);
  });
});

describe('ADS stream admission: streams setting up at once', () => {
  async function serve(maxSettingUp: number, setupTimeoutMs = 60_000) {
    const { server, sotw } = await setup(undefined, { ratePerSecond: 1_000_000, burst: 1_000_000, maxSettingUp, setupTimeoutMs });
    return { server, open: (id: string) => sotw(node(id, ['catalog'])) };
  }
  const until = async (what: string, cond: () => boolean) => {
    for (const t0 = performance.now(); !cond(); ) {
      if (performance.now() - t0 > 5000) throw new Error(`not within 5 s: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  // A stream the server has taken on (its handler ran) that sends nothing: it holds a place setting up.
  const opened = (server: AdsServer, n: number) => until(`${n} streams open`, () => server.streamCount === n);
  const queuedIs = (server: AdsServer, n: number) => until(`${n} streams queued`, () => server.admission.queued === n);

  it('admits the next stream once the one setting up has answered its first request', async () => {
    const { server, open } = await serve(1);
    const silent = open('silent');
    await opened(server, 1);
    const waiting = open('waiting');
    waiting.subscribe(TYPE_URL.cluster);
    await queuedIs(server, 1);
    expect(await waiting.quiet(300)).toBe(true);
    silent.subscribe(TYPE_URL.cluster);
    expect(clusterNames(await silent.next(3000))).toContain(CATALOG);
    expect(clusterNames(await waiting.next(3000))).toContain(CATALOG);
    expect(server.admission.queued).toBe(0);
  });

  it('frees the place of a stream that closes while setting up, and of one that never sends a first request', async () => {
    const closing = await serve(1);
    const gone = closing.open('gone');
    await opened(closing.server, 1);
    const next = closing.open('next');
    next.subscribe(TYPE_URL.cluster);
    await queuedIs(closing.server, 1);
    gone.close();
    expect(clusterNames(await next.next(3000))).toContain(CATALOG);

    const timing = await serve(1, 300);
    timing.open('mute');
    await opened(timing.server, 1);
    const after = timing.open('after');
    after.subscribe(TYPE_URL.cluster);
    await queuedIs(timing.server, 1);
    expect(clusterNames(await after.next(5000))).toContain(CATALOG);
  });
});

describe('ADS requests that are not protobuf', () => {
  it('end the stream with INVALID_ARGUMENT, and other streams carry on', async () => {
    const { sotw, port } = await setup();
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanup.push(async () => raw.close());
    const call = raw.makeBidiStreamRequest('/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', (b: Buffer) => b, (b: Buffer) => b);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    call.write(Buffer.from([0x12, 0x7f, 0x0a])); // node (field 2) of 127 bytes, 1 there
    expect((await status).code).toBe(grpc.status.INVALID_ARGUMENT);
    const c = sotw(node('a', ['catalog']));
    c.subscribe(TYPE_URL.cluster);
    expect(clusterNames(await c.next())).toContain(CATALOG);
  });
});

describe('ADS delta', () => {
  it('subscribes and unsubscribes by name, sending only what changed', async () => {
    const { delta, source } = await setup();
    const c = delta(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.endpoint, [CATALOG]);
    const r1 = await c.next();
    expect(r1.resources.map((r) => r.name)).toEqual([CATALOG]);
    expect(r1.resources[0]!.version).not.toBe('');
    c.ack(r1);
    c.send({ typeUrl: TYPE_URL.endpoint, resourceNamesSubscribe: [REVIEWS], resourceNamesUnsubscribe: [CATALOG] });
    const r2 = await c.next();
    expect(r2.resources.map((r) => r.name)).toEqual([REVIEWS]);
    expect(r2.removedResources).toEqual([]);
    c.ack(r2);
    source.setEndpoints('demo/catalog', [ep('10.0.0.7')]); // unsubscribed: nothing
    expect(await c.quiet()).toBe(true);
    source.setEndpoints('demo/reviews', [ep('10.0.0.8')]);
    const r3 = await c.next();
    expect(r3.resources.map((r) => r.name)).toEqual([REVIEWS]);
  });

  it('counts a proxy as synced when a type changed only outside its subscription', async () => {
    const { delta, source, pilot } = await setup();
    const c = delta(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.endpoint, [CATALOG]);
    c.ack(await c.next());
    source.setEndpoints('demo/reviews', [ep('10.0.0.5')]);
    expect(await c.quiet()).toBe(true);
    const current = pilot.cache.getSnapshot('a')!.version(TYPE_URL.endpoint);
    expect(pilot.sync.report('a', new Map([[TYPE_URL.endpoint, current]]))[0]).toMatchObject({ state: 'SYNCED', acked: current });
  });

  it('reports removed resources and does not resend a NACKed version', async () => {
    const { delta, source } = await setup();
    const c = delta(node('a', ['catalog', 'reviews']));
    c.subscribe(TYPE_URL.cluster);
    const r1 = await c.next();
    expect(r1.resources.map((r) => r.name).sort()).toEqual([CATALOG, REVIEWS]);
    c.nack(r1, 'nope');
    expect(await c.quiet()).toBe(true);
    source.deleteService('demo/reviews');
    const r2 = await c.next();
    expect(r2.resources).toEqual([]);
    expect(r2.removedResources).toEqual([REVIEWS]);
  });

  it('on reconnect sends only resources whose version differs from initial_resource_versions', async () => {
    const { delta } = await setup();
    const c1 = delta(node('a', ['catalog', 'reviews']));
    c1.subscribe(TYPE_URL.cluster);
    const r1 = await c1.next();
    c1.ack(r1);
    c1.close();
    const known = Object.fromEntries(r1.resources.map((r) => [r.name, r.name === CATALOG ? r.version : 'stale']));
    const c2 = delta(node('a', ['catalog', 'reviews']));
    c2.subscribe(TYPE_URL.cluster, [], known);
    const r2 = await c2.next();
    expect(r2.resources.map((r) => r.name)).toEqual([REVIEWS]);
  });
});

describe('AdsServer.closeNode', () => {
  it("ends one node's streams with status OK (its proxy re-locates) and leaves the others open", async () => {
    const { server, sotw, pilot } = await setup();
    const a = sotw(node('a', ['catalog']));
    const b = sotw(node('b', ['catalog']));
    a.subscribe(TYPE_URL.cluster);
    b.subscribe(TYPE_URL.cluster);
    a.ack(await a.next());
    b.ack(await b.next());
    expect(server.streamCount).toBe(2);
    expect(server.closeNode('nobody')).toBe(0);
    expect(server.closeNode('a')).toBe(1);
    for (let i = 0; i < 50 && !a.status; i++) await new Promise((r) => setTimeout(r, 20));
    expect(a.status?.code).toBe(grpc.status.OK);
    expect(b.status).toBeUndefined();
    expect(server.streamCount).toBe(1);
    expect(pilot.describe().nodes.map((n) => n.id)).toEqual(['b']);
  });
});
