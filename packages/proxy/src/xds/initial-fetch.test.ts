import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceService,
  DeltaDiscoveryResponse,
  DiscoveryResponse,
  TYPE_URL,
  type Any,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
} from '@octo-mesh/proto';
import { createLogger, waitFor } from '@octo-mesh/runtime';
import { cla, edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';
import { startProxy } from '../test-support/proxy.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { AdsClient } from './ads-client.js';
import { ConfigStore } from './config-store.js';

// Envoy's order of initial fetch (issue 19): CDS, then EDS for the new clusters, then the CDS
// ACK. The control plane here is a real gRPC ADS server written for this test, strict the way
// some control planes are: it sends a cluster's endpoints only once the proxy asked for them by
// name, counts CDS as done only when its ACK comes, and sends listeners and routes only then.

type Mode = 'sotw' | 'delta';

/** A control plane that serves one EDS cluster (`ratings`), then its listener and route once CDS is ACKed. */
class StrictControlPlane {
  /** What happened on the stream, in order: `cds sent`, `eds asked`, `eds sent`, `cds acked`, `lds sent`, `rds sent`. */
  readonly events: string[] = [];
  private readonly server = new Server();
  private nonce = 0;
  port = 0;

  constructor(
    private readonly upstreamPort: number,
    /** Off: never send endpoints (a cluster that never finishes warming). */
    private readonly sendEndpoints = true,
  ) {}

  async start(): Promise<void> {
    this.server.addService(AggregatedDiscoveryServiceService, {
      streamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const send = (typeUrl: string, items: { any: Any }[]) => {
          const nonce = `n${++this.nonce}`;
          call.write(DiscoveryResponse.fromPartial({ typeUrl, versionInfo: 'v1', nonce, resources: items.map((i) => i.any) }));
          return nonce;
        };
        this.serve(call, (req: DiscoveryRequest) => ({ typeUrl: req.typeUrl, nonce: req.responseNonce, nack: !!req.errorDetail, names: req.resourceNames }), send);
      },
      deltaAggregatedResources: (call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        const send = (typeUrl: string, items: { name: string; any: Any }[]) => {
          const nonce = `n${++this.nonce}`;
          call.write(DeltaDiscoveryResponse.fromPartial({ typeUrl, systemVersionInfo: 'v1', nonce, resources: items.map((i) => ({ name: i.name, version: 'v1', resource: i.any, aliases: [] })) }));
          return nonce;
        };
        this.serve(call, (req: DeltaDiscoveryRequest) => ({ typeUrl: req.typeUrl, nonce: req.responseNonce, nack: !!req.errorDetail, names: req.resourceNamesSubscribe }), send);
      },
    });
    this.port = await new Promise<number>((resolve, reject) => this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  }

  /** One stream's logic, the same for both protocols: requests read as type, nonce, NACK and names asked. */
  private serve<R>(
    call: ServerDuplexStream<R, unknown>,
    read: (r: R) => { typeUrl: string; nonce: string; nack: boolean; names: string[] },
    send: (typeUrl: string, items: { name: string; any: Any }[]) => string,
  ): void {
    let cdsNonce = '';
    let cdsDone = false;
    let edsSent = false;
    let rdsAsked = false;
    let rdsSent = false;
    const sendRds = () => {
      if (!cdsDone || !rdsAsked || rdsSent) return;
      rdsSent = true;
      send(TYPE_URL.route, [pack(TYPE_URL.route, routeConfig('outbound-routes', [{ match: { prefix: '/' }, route: { cluster: 'ratings' } }], ['ratings']))]);
      this.events.push('rds sent');
    };
    call.on('data', (raw: R) => {
      const r = read(raw);
      if (r.typeUrl === TYPE_URL.cluster && !r.nonce && !cdsNonce) {
        cdsNonce = send(TYPE_URL.cluster, [pack(TYPE_URL.cluster, edsCluster('ratings'))]);
        this.events.push('cds sent');
      } else if (r.typeUrl === TYPE_URL.cluster && r.nonce === cdsNonce && !r.nack && !cdsDone) {
        this.events.push('cds acked');
        cdsDone = true;
        send(TYPE_URL.listener, [pack(TYPE_URL.listener, httpListener('outbound', { rds: 'outbound-routes' }))]);
        this.events.push('lds sent');
        sendRds();
      } else if (r.typeUrl === TYPE_URL.endpoint && r.names.includes('ratings') && !edsSent) {
        this.events.push('eds asked');
        if (!this.sendEndpoints) return;
        edsSent = true;
        send(TYPE_URL.endpoint, [pack(TYPE_URL.endpoint, cla('ratings', [this.upstreamPort]))]);
        this.events.push('eds sent');
      } else if (r.typeUrl === TYPE_URL.route && r.names.includes('outbound-routes')) {
        rdsAsked = true;
        sendRds();
      }
    });
    call.on('error', () => undefined);
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const events = (cp: StrictControlPlane, ...want: string[]) => waitFor(`events ${want.join(', ')}`, async () => cp.events, (e) => want.every((w) => e.includes(w)), { timeoutMs: 10_000, intervalMs: 20 });

describe.each(['sotw', 'delta'] as const)('initial fetch order (%s)', (mode: Mode) => {
  it('asks EDS for a new cluster and ACKs CDS only after the endpoints came, so a control plane waiting for that ACK serves listeners and routes', async () => {
    const ratings: Upstream = await httpUpstream('ratings');
    cleanup.push(() => ratings.close());
    const cp = new StrictControlPlane(ratings.port);
    await cp.start();
    cleanup.push(() => cp.stop());
    const proxy = await startProxy({}, { xds: { address: `127.0.0.1:${cp.port}`, mode }, admin: { host: '127.0.0.1', port: 0 }, learning: { timeoutMs: 0, ttlMs: 60_000 } });
    cleanup.push(() => proxy.stop(100));
    await events(cp, 'rds sent');
    expect(cp.events).toEqual(['cds sent', 'eds asked', 'eds sent', 'cds acked', 'lds sent', 'rds sent']);
    const r = await waitFor('a request routed to ratings', () => request(proxy.port, { host: 'ratings' }), (x) => x.status === 200, { timeoutMs: 10_000, intervalMs: 20 });
    expect(r.headers['x-upstream']).toBe('ratings');
  });
});

describe.each(['sotw', 'delta'] as const)('a cluster whose endpoints never come (%s)', (mode: Mode) => {
  it('keeps it warming, and ACKs CDS after the warming timeout rather than never', async () => {
    const cp = new StrictControlPlane(0, false);
    await cp.start();
    cleanup.push(() => cp.stop());
    const store = new ConfigStore();
    const logged: string[] = [];
    const logger = createLogger('ads-test', 'warn', new Writable({ write: (c: Buffer, _e, cb) => (logged.push(c.toString()), cb()) }));
    const ads = new AdsClient({ address: `127.0.0.1:${cp.port}`, node: { id: 'n1', cluster: 'c', metadata: {} } as never, mode, store, onUpdate: () => undefined, logger, warmingTimeoutMs: 400 });
    ads.start();
    cleanup.push(() => ads.stop());
    await events(cp, 'eds asked');
    const asked = Date.now();
    await events(cp, 'cds acked');
    // Held for the warming timeout (at least; a busy machine may add to it), never before.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(300);
    expect(cp.events.slice(0, 3)).toEqual(['cds sent', 'eds asked', 'cds acked']);
    expect(store.warmingClusters()).toEqual(['ratings']);
    expect(logged.join('')).toContain('clusters still warming: ACKing CDS without their endpoints');
    expect(logged.join('')).toContain('"ratings"');
  });
});
