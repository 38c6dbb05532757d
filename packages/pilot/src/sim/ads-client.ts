/**
 * A minimal ADS client over real gRPC, for protocol tests and the benchmark's simulated
 * sidecars. It does nothing on its own: the caller sends requests and awaits responses, so a
 * test can play any client behaviour, good or bad.
 */
import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceClient,
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
  type Node,
} from '@octo-mesh/proto';

class Inbox<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (v: T) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private failure: Error | undefined;

  push(v: T): void {
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(v);
    } else this.items.push(v);
  }

  fail(e: Error): void {
    this.failure = e;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  next(timeoutMs: number): Promise<T> {
    if (this.items.length) return Promise.resolve(this.items.shift()!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.findIndex((w) => w.timer === timer), 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  get pending(): number {
    return this.items.length;
  }
}

export function adsClient(target: string, options: grpc.ChannelOptions = {}): AggregatedDiscoveryServiceClient {
  return new AggregatedDiscoveryServiceClient(target, grpc.credentials.createInsecure(), options);
}

/** One SotW stream. */
export class SotwClient {
  private readonly call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly inbox = new Inbox<DiscoveryResponse>();
  /** Set when the stream ended with a status. */
  status: grpc.StatusObject | undefined;

  constructor(client: AggregatedDiscoveryServiceClient, readonly node: Node) {
    this.call = client.streamAggregatedResources();
    this.call.on('data', (r: DiscoveryResponse) => this.inbox.push(r));
    this.call.on('status', (s: grpc.StatusObject) => (this.status = s));
    this.call.on('error', (e: Error) => this.inbox.fail(e));
  }

  send(req: Partial<DiscoveryRequest>): void {
    this.call.write(DiscoveryRequest.fromPartial(req));
  }

  /** Subscribes to a type (first request: carries the node). */
  subscribe(typeUrl: string, resourceNames: string[] = [], versionInfo = ''): void {
    this.send({ node: this.node, typeUrl, resourceNames, versionInfo });
  }

  ack(r: DiscoveryResponse, resourceNames: string[] = []): void {
    this.send({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames });
  }

  nack(r: DiscoveryResponse, message: string, lastGoodVersion = '', resourceNames: string[] = []): void {
    this.send({ typeUrl: r.typeUrl, versionInfo: lastGoodVersion, responseNonce: r.nonce, resourceNames, errorDetail: { code: 3, message, details: [] } });
  }

  next(timeoutMs = 2000): Promise<DiscoveryResponse> {
    return this.inbox.next(timeoutMs);
  }

  /** Resolves true when no response arrives within `ms`. */
  async quiet(ms = 300): Promise<boolean> {
    try {
      await this.inbox.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}

/** One delta stream. */
export class DeltaClient {
  private readonly call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  private readonly inbox = new Inbox<DeltaDiscoveryResponse>();

  constructor(client: AggregatedDiscoveryServiceClient, readonly node: Node) {
    this.call = client.deltaAggregatedResources();
    this.call.on('data', (r: DeltaDiscoveryResponse) => this.inbox.push(r));
    this.call.on('error', (e: Error) => this.inbox.fail(e));
  }

  send(req: Partial<DeltaDiscoveryRequest>): void {
    this.call.write(DeltaDiscoveryRequest.fromPartial(req));
  }

  subscribe(typeUrl: string, names: string[] = [], initialResourceVersions: Record<string, string> = {}): void {
    this.send({ node: this.node, typeUrl, resourceNamesSubscribe: names, initialResourceVersions });
  }

  ack(r: DeltaDiscoveryResponse): void {
    this.send({ typeUrl: r.typeUrl, responseNonce: r.nonce });
  }

  nack(r: DeltaDiscoveryResponse, message: string): void {
    this.send({ typeUrl: r.typeUrl, responseNonce: r.nonce, errorDetail: { code: 3, message, details: [] } });
  }

  next(timeoutMs = 2000): Promise<DeltaDiscoveryResponse> {
    return this.inbox.next(timeoutMs);
  }

  async quiet(ms = 300): Promise<boolean> {
    try {
      await this.inbox.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}
