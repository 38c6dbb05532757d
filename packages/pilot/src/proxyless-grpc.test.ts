import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import type { Endpoint, RoutePolicy, Service } from '@octo-mesh/api';
import { TYPE_URL } from '@octo-mesh/proto';
import { Pilot } from './pilot.js';
import { AdsServer } from './server/ads.js';
import type { ServerCallbacks } from './server/stream.js';
import { MemoryMeshSource } from './source.js';

// The real proxyless gRPC client (@grpc/grpc-js-xds, `xds:///` targets) against an in-process
// pilot, with real gRPC servers on loopback as the service's endpoints. grpc-js-xds keeps global
// state per process (the resolver registration, one xDS client per bootstrap read from the
// environment), so this one file holds every such test: the resolver is registered once, and all
// channels share the process-wide xDS client of GRPC_XDS_BOOTSTRAP_CONFIG — one ADS stream, as in
// an application.

const NODE_ID = 'proxyless-frontend';
const TARGET = 'xds:///catalog.demo.svc:8080';

/** One unary method with raw bytes both ways: the answer is the name of the backend. */
const WHO = {
  path: '/demo.Catalog/Who',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;
const CatalogClient = grpc.makeGenericClientConstructor({ Who: WHO }, 'Catalog');

interface Backend {
  name: string;
  port: number;
  calls: number;
  server: grpc.Server;
}

async function backend(name: string): Promise<Backend> {
  const server = new grpc.Server();
  const b: Backend = { name, port: 0, calls: 0, server };
  server.addService({ Who: WHO } as unknown as grpc.ServiceDefinition, {
    Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      b.calls++;
      cb(null, Buffer.from(name));
    },
  });
  b.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return b;
}

const catalog: Service = {
  apiVersion: 'model.mesh.octo.io/v1',
  kind: 'Service',
  metadata: { name: 'catalog', namespace: 'demo' },
  spec: { ports: [{ name: 'grpc', port: 8080, protocol: 'grpc' }] },
};
// Each backend in a locality of its own: without a locality weight gRPC would drop both (gRFC A27).
const ep = (b: Backend, version: string, zone: string): Endpoint => ({ address: '127.0.0.1', port: b.port, labels: { version }, healthy: true, locality: { region: 'r1', zone } });
const policy = (generation: number, spec: RoutePolicy['spec']): RoutePolicy => ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'RoutePolicy', metadata: { name: 'catalog', namespace: 'demo', generation }, spec });
const SUBSETS = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
];

describe('proxyless gRPC clients (@grpc/grpc-js-xds) against a pilot', () => {
  const source = new MemoryMeshSource();
  let pilot: Pilot;
  let ads: AdsServer;
  let a: Backend;
  let b: Backend;
  let client: grpc.Client;
  const channels: grpc.Client[] = [];
  /** Waiters for the proxyless node's ACK of a type after a change (Pilot's onPropagated hook). */
  const ackWaiters: { typeUrl: string; resolve: () => void }[] = [];
  const acked = (typeUrl: string, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${typeUrl} not ACKed by ${NODE_ID} within ${timeoutMs} ms`)), timeoutMs);
      ackWaiters.push({ typeUrl, resolve: () => (clearTimeout(timer), resolve()) });
    });
  /** Per type, the names in the last response the proxyless node ACKed; and who waits for a name. */
  const sentNames = new Map<string, readonly string[]>();
  const ackedNames = new Map<string, Set<string>>();
  const holdWaiters: { typeUrl: string; name: string; resolve: () => void }[] = [];
  /** Resolves once the client has ACKed a response of `typeUrl` that holds `name` (e.g. the EDS of a new subset cluster). */
  const holds = (typeUrl: string, name: string, timeoutMs = 10_000) =>
    ackedNames.get(typeUrl)?.has(name)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${NODE_ID} did not ACK ${name} within ${timeoutMs} ms`)), timeoutMs);
          holdWaiters.push({ typeUrl, name, resolve: () => (clearTimeout(timer), resolve()) });
        });
  const callbacks = (p: Pilot): ServerCallbacks => ({
    ...p.callbacks,
    onStreamResponse: (st, typeUrl, version, nonce, names) => {
      p.callbacks.onStreamResponse?.(st, typeUrl, version, nonce, names);
      if (st.node?.id === NODE_ID) sentNames.set(`${typeUrl} ${nonce}`, names);
    },
    onAck: (st, typeUrl, version, nonce) => {
      p.callbacks.onAck?.(st, typeUrl, version, nonce);
      const names = st.node?.id === NODE_ID ? sentNames.get(`${typeUrl} ${nonce}`) : undefined;
      if (!names) return;
      ackedNames.set(typeUrl, new Set(names));
      for (const w of holdWaiters.filter((x) => x.typeUrl === typeUrl && names.includes(x.name))) {
        holdWaiters.splice(holdWaiters.indexOf(w), 1);
        w.resolve();
      }
    },
  });
  /** Calls until `check` holds (the client applies a change a little after it ACKs it); bounded. */
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) => {
    const end = Date.now() + timeoutMs;
    while (!(await check())) if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
  };

  const who = (c: grpc.Client, metadata = new grpc.Metadata(), deadlineMs = 10_000) =>
    new Promise<string>((resolve, reject) =>
      c.makeUnaryRequest(WHO.path, WHO.requestSerialize, WHO.responseDeserialize, Buffer.alloc(0), metadata, { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res!.toString()),
      ),
    );
  /** `n` calls, sequentially; how many each backend answered. */
  const tally = async (n: number, c = client) => {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const name = await who(c);
      out[name] = (out[name] ?? 0) + 1;
    }
    return out;
  };
  /** Resolves when the channel reaches `state` (connecting it first); bounded. */
  const reaches = async (ch: ReturnType<grpc.Client["getChannel"]>, state: grpc.connectivityState, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (let s = ch.getConnectivityState(true); s !== state; s = ch.getConnectivityState(true))
      await new Promise<void>((resolve, reject) => ch.watchConnectivityState(s, deadline, (err) => (err ? reject(new Error(`channel not ${grpc.connectivityState[state]} within ${timeoutMs} ms`)) : resolve())));
  };
  const channel = (target: string) => {
    const c = new CatalogClient(target, grpc.credentials.createInsecure());
    channels.push(c);
    return c;
  };

  beforeAll(async () => {
    [a, b] = await Promise.all([backend('a'), backend('b')]);
    source.upsertService(catalog, [ep(a, 'v1', 'za'), ep(b, 'v2', 'zb')]);
    pilot = new Pilot({
      source,
      debounce: { quietMs: 20, maxDelayMs: 100 },
      onPropagated: (nodeId, typeUrl) => {
        if (nodeId !== NODE_ID) return;
        for (const w of ackWaiters.filter((x) => x.typeUrl === typeUrl)) {
          ackWaiters.splice(ackWaiters.indexOf(w), 1);
          w.resolve();
        }
      },
    });
    ads = new AdsServer({ cache: pilot.cache, callbacks: callbacks(pilot) });
    const port = await ads.listen(0, '127.0.0.1');
    // The bootstrap a proxyless application is given (gRFC A27): the pilot as its xDS server, and
    // a node with no declared dependencies — it learns catalog from the listener name it asks for.
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
      xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: NODE_ID, locality: {}, metadata: { namespace: 'demo', workload: 'frontend' } },
    });
    grpcXds.register();
    client = channel(TARGET);
  });

  afterAll(async () => {
    for (const c of channels) c.close();
    // The xDS client ends its ADS stream once no channel watches anything; closing the pilot
    // before that would leave it retrying (and the process alive) for a while.
    const end = Date.now() + 5000;
    while (ads && ads.streamCount > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    pilot?.close();
    await ads?.close(200);
    a?.server.forceShutdown();
    b?.server.forceShutdown();
    delete process.env['GRPC_XDS_BOOTSTRAP_CONFIG'];
  });

  it('completes calls with no declared dependency, over both localities', async () => {
    // No waitForReady: the first call must not meet a transient "does not exist".
    const got = await tally(100);
    expect(got['a']! + got['b']!).toBe(100);
    expect(got['a']).toBeGreaterThanOrEqual(30);
    expect(got['b']).toBeGreaterThanOrEqual(30);
    const node = pilot.describe().nodes.find((n) => n.id === NODE_ID)!;
    expect(node.learned).toEqual(['demo/catalog']);
    expect(node.apiListeners).toEqual(['catalog.demo.svc:8080']);
  });

  it('resolves every documented form of the name to the same service', async () => {
    for (const t of ['xds:///catalog.demo.svc.cluster.local:8080', 'xds:///catalog.demo:8080', 'xds:///catalog:8080', 'xds:///catalog.demo.svc']) {
      const got = await tally(4, channel(t));
      expect((got['a'] ?? 0) + (got['b'] ?? 0)).toBe(4);
    }
  });

  it('answers an unknown name with "does not exist", and the shared ADS stream keeps serving', async () => {
    // Pilot leaves the name out of its LDS answer (SotW: absent = does not exist; see
    // proxyless-xds.test.ts for the wire). grpc-js-xds concludes "does not exist" for a name it
    // never had only when its resource timer fires (15 s, the xDS protocol's "Knowing when a
    // requested resource does not exist"): the channel then goes TRANSIENT_FAILURE.
    const unknown = channel('xds:///nope.demo.svc:8080').getChannel();
    const failing = reaches(unknown, grpc.connectivityState.TRANSIENT_FAILURE, 30_000);
    const got = await tally(10); // meanwhile, the same ADS stream serves the known target
    expect((got['a'] ?? 0) + (got['b'] ?? 0)).toBe(10);
    await failing;
    // grpc-js then fails or holds calls on that channel (1.14 holds them until their deadline).
    // Its re-resolution arms a new 15 s timer that nothing cancels: the process may outlive the
    // file by up to that much (jest's "did not exit one second after" note when run alone).
    const err = await who(channels.at(-1)!, undefined, 1000).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(err?.code);
    expect(Object.values(await tally(10)).reduce((x, y) => x + y)).toBe(10);
  }, 40_000);

  it('splits 80/20 by a RoutePolicy, within ±5 % over 2,000 calls', async () => {
    source.applyPolicy(policy(1, { targetRef: { service: 'catalog' }, subsets: SUBSETS, rules: [{ route: [{ subset: 'v1', weight: 80 }, { subset: 'v2', weight: 20 }] }] }));
    // The route names two new clusters: the client applies it once it holds their endpoints.
    await Promise.all(['v1', 'v2'].map((v) => holds(TYPE_URL.endpoint, `outbound|8080|${v}|catalog.demo.svc`)));
    const got = await tally(2000);
    const share = (got['a'] ?? 0) / 2000;
    // The measured figure, for the report.
    console.info(`proxyless 80/20 split over 2000 calls: v1 ${(share * 100).toFixed(1)} %, v2 ${(((got['b'] ?? 0) / 2000) * 100).toFixed(1)} %`);
    expect(share).toBeGreaterThanOrEqual(0.75);
    expect(share).toBeLessThanOrEqual(0.85);
  }, 60_000);

  it('follows a policy change', async () => {
    source.applyPolicy(policy(2, { targetRef: { service: 'catalog' }, subsets: SUBSETS, rules: [{ route: [{ subset: 'v2' }] }] }));
    await acked(TYPE_URL.route);
    await until('every call on v2', async () => JSON.stringify(await tally(10)) === JSON.stringify({ b: 10 }));
    expect(await tally(50)).toEqual({ b: 50 });
  });

  it('applies fault injection and header matches of a rule (gRFC A33, A28)', async () => {
    const done = acked(TYPE_URL.route);
    source.applyPolicy(
      policy(3, {
        targetRef: { service: 'catalog' },
        subsets: SUBSETS,
        rules: [
          { matches: [{ headers: [{ name: 'x-fault', exact: 'yes' }] }], route: [{ subset: 'v1' }], fault: { abort: { grpcStatus: 7, percent: 100 } } },
          { matches: [{ headers: [{ name: 'x-canary', exact: 'yes' }] }], route: [{ subset: 'v1' }] },
          { route: [{ subset: 'v2' }] },
        ],
      }),
    );
    await done;
    const md = (k: string) => {
      const m = new grpc.Metadata();
      m.set(k, 'yes');
      return m;
    };
    const faulted = () =>
      who(client, md('x-fault')).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
    await until('the fault rule applied', async () => (await faulted())?.code === grpc.status.PERMISSION_DENIED);
    const aborted = await faulted();
    expect(aborted?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(aborted?.details).toBe('Fault injected');
    expect(await who(client, md('x-canary'))).toBe('a');
    expect(await who(client)).toBe('b');
  });

  it('stops calling an endpoint removed from the service', async () => {
    source.deletePolicy('demo', 'catalog');
    await acked(TYPE_URL.route);
    await until('both endpoints called again', async () => Object.keys(await tally(10)).length === 2);
    const done = acked(TYPE_URL.endpoint);
    source.setEndpoints('demo/catalog', [ep(a, 'v1', 'za')]);
    await done;
    const before = b.calls;
    expect(await tally(200)).toEqual({ a: 200 });
    expect(b.calls).toBe(before);
  });
});
