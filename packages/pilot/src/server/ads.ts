/**
 * The ADS gRPC server: SotW and delta streams over one snapshot cache, with hooks.
 */
import * as grpc from '@grpc/grpc-js';
import { MeshGrpcServer, meshServerCredentials, uriSan, type MeshServerSecurity } from '@octo-mesh/clients';
import { spiffeIdOrError } from '@octo-mesh/contracts';
import { AggregatedDiscoveryServiceService, DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '@octo-mesh/proto';
import type { SnapshotCache } from '../xds/cache.js';
import { StreamAdmission, type AdmissionOptions } from './admission.js';
import { DeltaStream } from './delta.js';
import { Encoded, withoutField } from './encode.js';
import { SotwStream } from './sotw.js';
import { DEFAULT_STREAM_LIMITS, type AdsStream, type ServerCallbacks, type StreamLimits } from './stream.js';

type Response<T> = T | Encoded;

/**
 * AggregatedDiscoveryService with response serialisers that pass pre-encoded responses through
 * untouched (see encode.ts) and encode anything else with the generated codec. Requests are handed
 * over as bytes: each stream decodes them ({@link requestDecoder}), skipping the node once it has one.
 */
export const ADS_SERVICE = {
  streamAggregatedResources: {
    ...AggregatedDiscoveryServiceService.streamAggregatedResources,
    responseSerialize: (r: Response<DiscoveryResponse>): Buffer => (r instanceof Encoded ? r.bytes : Buffer.from(DiscoveryResponse.encode(r).finish())),
    requestDeserialize: (b: Buffer): Buffer => b,
  },
  deltaAggregatedResources: {
    ...AggregatedDiscoveryServiceService.deltaAggregatedResources,
    responseSerialize: (r: Response<DeltaDiscoveryResponse>): Buffer =>
      r instanceof Encoded ? r.bytes : Buffer.from(DeltaDiscoveryResponse.encode(r).finish()),
    requestDeserialize: (b: Buffer): Buffer => b,
  },
} as const;

/** `node`: field 2 of DiscoveryRequest, field 1 of DeltaDiscoveryRequest (envoy/service/discovery/v3/discovery.proto). */
export const NODE_FIELD = { sotw: 2, delta: 1 } as const;

/**
 * One stream's request decoder: the full request until one carried a node id, then the request
 * without its node (withoutField) — a stream's node is the one its first request named; later
 * ones are not read (stream.ts), so they are not decoded either.
 */
export function requestDecoder<T extends { node?: { id: string } | undefined }>(decode: (b: Uint8Array) => T, nodeField: number): (b: Buffer) => T {
  let named = false;
  return (b) => {
    const req = decode(named ? withoutField(b, nodeField) : b);
    named ||= !!req.node?.id;
    return req;
  };
}

export interface AdsServerOptions {
  cache: SnapshotCache;
  callbacks?: ServerCallbacks;
  /** Limits how fast new streams are taken on; default {@link DEFAULT_ADMISSION}. */
  admission?: AdmissionOptions;
  /** Extra grpc-js server options. */
  grpcOptions?: grpc.ServerOptions;
  /** Per-stream bounds on subscribed and unknown names (default {@link DEFAULT_STREAM_LIMITS}). */
  limits?: Partial<StreamLimits>;
  /**
   * mTLS (packages/identity/README.md): every stream needs a client certificate from the mesh
   * CA, and a node may only speak for its certificate's namespace — one workload cannot ask for
   * (or learn) another namespace's configuration by naming it in its node metadata.
   */
  security?: MeshServerSecurity;
}

/** Why a node may not open this stream, or undefined: the namespace it claims must be its certificate's. */
export function nodeNamespaceDenied(uri: string | undefined, metadata: Record<string, unknown> | undefined): string | undefined {
  const id = uri ? spiffeIdOrError(uri) : undefined;
  if (!id || 'error' in id) return `the client certificate carries no workload identity${id ? ` (${id.error})` : ''}`;
  const claimed = typeof metadata?.['namespace'] === 'string' && metadata['namespace'] ? metadata['namespace'] : 'default';
  return claimed === id.namespace ? undefined : `node.metadata.namespace ${JSON.stringify(claimed)} is not the namespace of the caller's identity ${uri}`;
}

/**
 * New streams: at most 64 setting up at once, at most 2,000/s (a burst of 1,000) — the pilot's
 * defaults (config.ts). A stream's set-up cost a pilot ~0.35 ms of CPU at 10,000 sidecars
 * (bench/scale CPU profile): 64 at once keep an event-loop turn of set-ups to ~20 ms, so the
 * ACKs and pushes of streams already served interleave with a storm's; 2,000/s is ~70 % of a core.
 */
export const DEFAULT_ADMISSION: AdmissionOptions = { ratePerSecond: 2000, burst: 1000, maxSettingUp: 64 };

export class AdsServer {
  /** Listens with a deep accept queue (MeshGrpcServer): a re-home storm connects thousands of sidecars at once. */
  readonly server: MeshGrpcServer;
  readonly admission: StreamAdmission;
  /** Open streams and how to end each one's call. */
  private readonly streams = new Map<AdsStream, () => void>();
  private nextId = 0;
  private boundPort = 0;

  constructor(private readonly opts: AdsServerOptions) {
    this.admission = new StreamAdmission(opts.admission ?? DEFAULT_ADMISSION);
    this.server = new MeshGrpcServer({
      'grpc.max_concurrent_streams': 1_000_000,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      ...opts.grpcOptions,
    });
    this.server.addService(ADS_SERVICE as unknown as grpc.ServiceDefinition, {
      streamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, Response<DiscoveryResponse>>) => this.sotw(call),
      deltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Response<DeltaDiscoveryResponse>>) => this.delta(call),
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** Streams currently open. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Binds and serves (plaintext, or mTLS with `security`). Resolves with the port. */
  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.boundPort = await this.server.listen(host, port, meshServerCredentials(this.opts.security));
    return this.boundPort;
  }

  /**
   * Ends every open stream of one node (normally one) with status OK, so its proxy asks the meta
   * server where to go and reconnects there. Returns how many streams were ended.
   */
  closeNode(nodeId: string): number {
    let n = 0;
    for (const [s, end] of [...this.streams]) {
      if (s.nodeId !== nodeId) continue;
      this.streams.delete(s);
      s.close();
      end();
      n++;
    }
    return n;
  }

  /** Stops taking streams, ends the open ones (proxies reconnect elsewhere) and shuts down. */
  async close(graceMs = 2000): Promise<void> {
    this.admission.close();
    for (const [s, end] of [...this.streams]) {
      s.close();
      end();
    }
    await this.server.shutdownWithin(graceMs);
  }

  private open<S extends AdsStream>(make: (id: number, fail: (code: number, message: string) => void) => S, call: grpc.ServerDuplexStream<unknown, unknown>): S {
    const fail = (code: number, details: string) => {
      if (!call.cancelled) call.emit('error', { code, details });
    };
    const stream = make(++this.nextId, fail);
    stream.limits = { ...DEFAULT_STREAM_LIMITS, ...this.opts.limits };
    this.streams.set(stream, () => {
      if (!call.cancelled && !call.writableEnded) call.end();
    });
    this.opts.callbacks?.onStreamOpen?.(stream);
    // Response headers at once: the client knows the stream is up even when nothing is sent for
    // a while (a reconnecting proxy that already holds every current version gets no response).
    call.sendMetadata(new grpc.Metadata());
    const done = () => {
      if (!this.streams.delete(stream)) return;
      stream.close();
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
    return stream;
  }

  private sotw(call: grpc.ServerDuplexStream<DiscoveryRequest, Response<DiscoveryResponse>>): void {
    const s = this.open(
      (id, fail) => new SotwStream(id, 'sotw', call.getPeer(), this.opts.cache, this.opts.callbacks ?? {}, this.admission.admit(), fail),
      call as grpc.ServerDuplexStream<unknown, unknown>,
    );
    s.write = (r) => void call.write(r);
    const check = this.nodeCheck(call);
    const decode = requestDecoder((b) => DiscoveryRequest.decode(b), NODE_FIELD.sotw);
    call.on('data', (b: Buffer) => {
      const req = this.decoded(call, decode, b);
      if (req && check(req.node?.metadata)) s.handleRequest(req);
    });
  }

  /** The request, or undefined when its bytes are not one: the stream then ends with INVALID_ARGUMENT (as grpc-js's own deserialiser failing did, with INTERNAL). */
  private decoded<T>(call: grpc.ServerDuplexStream<unknown, unknown>, decode: (b: Buffer) => T, b: Buffer): T | undefined {
    try {
      return decode(b);
    } catch (err) {
      if (!call.cancelled) call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `malformed request: ${(err as Error).message}` });
      return undefined;
    }
  }

  /** With mTLS, the first request's node is checked against the caller's identity; a refusal ends the stream. */
  private nodeCheck(call: grpc.ServerDuplexStream<unknown, unknown>): (metadata: Record<string, unknown> | undefined) => boolean {
    const security = this.opts.security;
    if (!security) return () => true;
    let verdict: boolean | undefined;
    return (metadata) => {
      if (verdict !== undefined) return verdict;
      const uri = uriSan(call.getAuthContext().sslPeerCertificate);
      const why = nodeNamespaceDenied(uri, metadata);
      verdict = why === undefined;
      if (why) {
        security.logger.warn('ADS stream refused', { peer: call.getPeer(), reason: why });
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: why });
      }
      return verdict;
    };
  }

  private delta(call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Response<DeltaDiscoveryResponse>>): void {
    const s = this.open(
      (id, fail) => new DeltaStream(id, 'delta', call.getPeer(), this.opts.cache, this.opts.callbacks ?? {}, this.admission.admit(), fail),
      call as grpc.ServerDuplexStream<unknown, unknown>,
    );
    s.write = (r) => void call.write(r);
    const check = this.nodeCheck(call as grpc.ServerDuplexStream<unknown, unknown>);
    const decode = requestDecoder((b) => DeltaDiscoveryRequest.decode(b), NODE_FIELD.delta);
    call.on('data', (b: Buffer) => {
      const req = this.decoded(call as grpc.ServerDuplexStream<unknown, unknown>, decode, b);
      if (req && check(req.node?.metadata)) s.handleRequest(req);
    });
  }
}
