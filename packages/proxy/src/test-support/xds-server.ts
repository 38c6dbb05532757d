import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceService,
  DeltaDiscoveryResponse,
  DiscoveryResponse,
  type Any,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
} from '@octo-mesh/proto';

/**
 * A small, real ADS server for tests (not Pilot): holds one version of each type's resources,
 * answers state-of-the-world and delta streams, pushes on `set`, and records every request so a
 * test can wait for an ACK or a NACK.
 */
export class XdsServerFixture {
  private server = new Server();
  private readonly resources = new Map<string, { version: string; items: { name: string; any: Any }[] }>();
  private readonly sotw = new Set<ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>>();
  private readonly delta = new Set<ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>>();
  readonly requests: (DiscoveryRequest | DeltaDiscoveryRequest)[] = [];
  private nonce = 0;
  private waiters: (() => void)[] = [];
  port = 0;

  async start(port = 0): Promise<number> {
    this.server = new Server();
    this.server.addService(AggregatedDiscoveryServiceService, {
      streamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        this.sotw.add(call);
        const acked = new Map<string, string>();
        call.on('data', (req: DiscoveryRequest) => {
          this.record(req);
          const cur = this.resources.get(req.typeUrl);
          // Answer a request that does not already hold the current version (first, or NACK of an older push).
          if (cur && !acked.has(req.typeUrl)) {
            acked.set(req.typeUrl, cur.version);
            if (req.versionInfo !== cur.version || !req.responseNonce) this.sendSotw(call, req.typeUrl);
          }
        });
        call.on('error', () => undefined);
        call.on('end', () => {
          this.sotw.delete(call);
          call.end();
        });
        call.on('cancelled', () => this.sotw.delete(call));
      },
      deltaAggregatedResources: (call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        this.delta.add(call);
        const subscribed = new Set<string>();
        call.on('data', (req: DeltaDiscoveryRequest) => {
          this.record(req);
          if (!req.responseNonce && !subscribed.has(req.typeUrl)) {
            subscribed.add(req.typeUrl);
            if (this.resources.has(req.typeUrl)) this.sendDelta(call, req.typeUrl, []);
          } else if (req.resourceNamesSubscribe.length && this.resources.has(req.typeUrl)) this.sendDelta(call, req.typeUrl, []);
        });
        call.on('error', () => undefined);
        call.on('end', () => {
          this.delta.delete(call);
          call.end();
        });
        call.on('cancelled', () => this.delta.delete(call));
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    return this.port;
  }

  private record(r: DiscoveryRequest | DeltaDiscoveryRequest): void {
    this.requests.push(r);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves with the first request (already received or future) that satisfies `pred`. */
  async waitFor<T extends DiscoveryRequest | DeltaDiscoveryRequest>(pred: (r: T) => boolean, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.requests.find((r) => pred(r as T));
      if (hit) return hit as T;
      if (Date.now() > deadline) throw new Error('timed out waiting for an xDS request');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  private sendSotw(call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, typeUrl: string): void {
    const cur = this.resources.get(typeUrl)!;
    call.write(DiscoveryResponse.fromPartial({ typeUrl, versionInfo: cur.version, nonce: String(++this.nonce), resources: cur.items.map((i) => i.any) }));
  }

  private sendDelta(call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>, typeUrl: string, removed: string[]): void {
    const cur = this.resources.get(typeUrl)!;
    call.write(
      DeltaDiscoveryResponse.fromPartial({
        typeUrl,
        systemVersionInfo: cur.version,
        nonce: String(++this.nonce),
        resources: cur.items.map((i) => ({ name: i.name, version: cur.version, resource: i.any, aliases: [] })),
        removedResources: removed,
      }),
    );
  }

  /** Sets a type's resources and pushes them to every open stream. */
  set(typeUrl: string, version: string, items: { name: string; any: Any }[]): void {
    const old = this.resources.get(typeUrl);
    this.resources.set(typeUrl, { version, items });
    for (const c of this.sotw) this.sendSotw(c, typeUrl);
    const removed = (old?.items ?? []).map((i) => i.name).filter((n) => !items.some((i) => i.name === n));
    for (const c of this.delta) this.sendDelta(c, typeUrl, removed);
  }

  get streams(): number {
    return this.sotw.size + this.delta.size;
  }

  async stop(): Promise<void> {
    for (const c of [...this.sotw, ...this.delta]) c.destroy();
    this.sotw.clear();
    this.delta.clear();
    this.server.forceShutdown();
  }
}
