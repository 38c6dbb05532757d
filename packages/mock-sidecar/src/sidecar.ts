/**
 * One simulated sidecar: a real ADS stream (SotW or delta) on its own gRPC connection, behaving
 * like a well-mannered proxy — it asks the meta server which pilot serves it, subscribes to CDS
 * and LDS (wildcard), then EDS for the clusters and RDS for the listener's route configuration,
 * ACKs every response (or NACKs one when told to), and when its stream ends it locates again
 * (naming the pilot it lost) with jittered backoff and starts over on the new pilot. It records
 * when each response arrived, so a runner can ask "did it get a push of these types since T".
 * Its gRPC is grpc-js or lean.ts's hand-made HTTP/2 ({@link SidecarOptions}); the behaviour is the same.
 * Grown from bench/pilot/sim.mjs (the well-mannered subscription sequence) and
 * pilot/src/sim/ads-client.ts (a client that can play any behaviour).
 */
import * as grpc from '@grpc/grpc-js';
import { locatePilot } from '@octo-mesh/clients';
import { DeltaDiscoveryRequest, DiscoveryRequest, Node, TYPE_URL } from '@octo-mesh/proto';
import { Backoff } from '@octo-mesh/runtime';
import type { XdsType } from './scenario.js';
import { leanLocate, openLeanCall, type LeanCallHandlers } from './lean.js';
import { encodeDeltaAck, encodeSotwAck, parseDeltaResponse, parseSotwResponse, type WireResponse } from './xds-wire.js';

const SOTW = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const DELTA = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
const CHANNEL_OPTIONS = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 << 20, 'grpc.enable_retries': 0 };

/**
 * `ipv4:host:port` for an IPv4 literal (grpc-js's IP resolver), else the address as given.
 * grpc-js's default (DNS) resolver creates a c-ares channel for every gRPC channel even when the
 * target is an IP literal; a re-homing sidecar makes two channels (locate, ADS), and at 10,000
 * sidecars (bench/scale, 1,300 per simulator process re-homing at once) creating them was ~9 % of
 * a simulator process's CPU in the storm, on the cores the control plane is measured on.
 */
export function directTarget(address: string): string {
  return /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(address) ? `ipv4:${address}` : address;
}

/**
 * How long one locate keeps trying (its attempts allowed 2, 4, 8 s, with backoff between) before
 * the sidecar records the error and starts over. 5 s before: under the re-home storm at 10,000
 * sidecars (bench/scale) 3,700 locates gave up at 5 s, each starting over on a new channel while
 * the meta server was still answering the queue of earlier ones.
 */
const LOCATE_TIMEOUT_MS = 30_000;

export const TYPE_OF: Record<XdsType, string> = {
  cds: TYPE_URL.cluster,
  eds: TYPE_URL.endpoint,
  lds: TYPE_URL.listener,
  rds: TYPE_URL.route,
  governance: TYPE_URL.serviceGovernance,
  upgrade: TYPE_URL.upgradeTarget,
};
const SHORT: Record<string, XdsType> = Object.fromEntries(Object.entries(TYPE_OF).map(([k, v]) => [v, k as XdsType]));

export interface SidecarSpec {
  /** Node id (unique in the mesh). */
  id: string;
  template: string;
  namespace: string;
  workload: string;
  version: string;
  dependencies: string[];
  protocol: 'sotw' | 'delta';
  zone?: string | undefined;
  region?: string | undefined;
}

/** Where a sidecar finds its pilot: the meta server (as proxies do), or one fixed pilot. */
export type Discovery = { metaAddress: string } | { xdsAddress: string; pilotId?: string };

/** One response a sidecar received. */
export interface Received {
  at: number;
  type: XdsType;
  stream: number;
}

/** What is written: a message for the generated codec, or a request encoded already (xds-wire.ts's ACKs). */
type Outgoing = DiscoveryRequest | DeltaDiscoveryRequest | Buffer;

/**
 * How a sidecar talks gRPC: `grpc-js` (a channel per call, the library the mesh's own components
 * use) or `lean` (lean.ts: `node:http2` by hand, a connection per call all the same — the cheap
 * simulator for bench/scale). The protocol behaviour above it is the same.
 */
export type SidecarClient = 'grpc-js' | 'lean';

export interface SidecarOptions {
  /** Default grpc-js. */
  client?: SidecarClient;
  /**
   * The Locate call's client, default `client`'s. grpc-js's `locatePilot` dials through the global
   * subchannel pool, so the Locates of all sidecars in one process share a connection to the meta
   * server while any is open — lighter on the meta server than real sidecars (a connection each);
   * lean's is a connection per call.
   */
  locate?: SidecarClient;
}

/** An ADS stream as the sidecar uses it, whichever the client. */
interface AdsCall {
  write(message: Uint8Array): void;
  cancel(): void;
}

/** The ADS stream on grpc-js: its own channel (closed with the stream), bytes in and out. */
function openGrpcJsCall(address: string, path: string, h: LeanCallHandlers): AdsCall {
  const client = new grpc.Client(directTarget(address), grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  const call = client.makeBidiStreamRequest(
    path,
    (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
    (b: Buffer) => b,
  );
  let over = false;
  const end = (code: number, details: string) => {
    if (over) return;
    over = true;
    client.close();
    h.end(code, details);
  };
  call.on('data', (m: Buffer) => !over && h.message(m));
  call.on('metadata', () => !over && h.headers());
  call.on('status', (st: grpc.StatusObject) => end(st.code, st.details));
  call.on('error', (e: grpc.ServiceError) => end(e.code ?? grpc.status.UNKNOWN, e.details ?? e.message));
  return {
    write: (m) => void call.write(m),
    cancel() {
      if (over) return;
      over = true;
      call.cancel();
      client.close();
    },
  };
}

export class MockSidecar {
  readonly node: Node;
  /** The pilot of the current (or last) stream. */
  pilotId = '';
  /** Stream generation: 1 for the first stream, +1 per reconnect. */
  stream = 0;
  connected = false;
  /** When the current stream had every subscribed type (performance.now()); undefined until then. */
  syncedAt: number | undefined;
  /** When the last stream was lost (performance.now()). */
  lostAt: number | undefined;
  /** Names held per type (the last good configuration: a NACKed response does not change it). */
  readonly held = new Map<XdsType, Set<string>>();
  readonly received: Received[] = [];
  bytes = 0;
  nacks = 0;
  lastError = '';
  /** Where the sidecar is on its way to a synced stream, and when each step ended (performance.now()), for a re-home timeline. */
  state: 'idle' | 'locating' | 'backoff' | 'streaming' = 'idle';
  /** When the last locate call started (after the backoff that preceded it) and when it answered. */
  locateStartedAt: number | undefined;
  locatedAt: number | undefined;
  /**
   * When the current stream's response headers arrived: the pilot sends them as soon as its stream
   * handler runs (before admission and the node's snapshot), so locatedAt → headersAt is the
   * connection and HTTP/2 stream set-up, headersAt → firstResponseAt the pilot's handling.
   */
  headersAt: number | undefined;
  /** When the current stream's first request was written. */
  requestedAt: number | undefined;
  /** Locate calls that failed (each after its own retries inside locatePilot). */
  locateFailures = 0;
  /** Streams that ended (any reason) before or after syncing. */
  streamsLost = 0;
  /** When the current stream's first response arrived. */
  firstResponseAt: number | undefined;
  private readonly nackPending = new Map<string, string>();
  private readonly last = new Map<string, { version: string; nonce: string }>();
  private call: AdsCall | undefined;
  private readonly client: SidecarClient;
  private readonly locateClient: SidecarClient;
  private seen = new Set<string>();
  private eds: string[] = [];
  private rdsAsked = false;
  private closed = false;
  private probeAt: number | undefined;
  private probeType = '';
  private readonly backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 });
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly spec: SidecarSpec,
    private readonly discovery: Discovery,
    options: SidecarOptions = {},
  ) {
    this.client = options.client ?? 'grpc-js';
    this.locateClient = options.locate ?? this.client;
    const locality = spec.zone || spec.region ? { region: spec.region ?? '', zone: spec.zone ?? '' } : undefined;
    this.node = Node.fromPartial({
      id: spec.id,
      cluster: spec.namespace,
      locality,
      metadata: {
        namespace: spec.namespace,
        workload: spec.workload,
        dependencies: spec.dependencies,
        instance_id: spec.id,
        proxy_version: 'mock',
        labels: { app: spec.workload, version: spec.version },
      } as never,
    });
  }

  get synced(): boolean {
    return this.connected && this.syncedAt !== undefined;
  }

  /** Connects (locating the pilot first); returns at once, the stream runs on its own. */
  start(): void {
    void this.connect();
  }

  /** Drops the stream and its connection and reconnects at once (a reconnect storm). */
  reconnectNow(): void {
    this.teardown();
    this.connected = false;
    this.lostAt = performance.now();
    void this.connect();
  }

  /**
   * Asks for a type again as a proxy that holds nothing of it would (SotW: the names it subscribes
   * to, no version, no nonce), which the server must answer with the type's current resources;
   * the time to that response is recorded in `probes`. A per-request latency for a sidecar whose
   * stream is up (bench/scale asks sidecars that were not moved, during a re-home storm). False
   * when it cannot (no stream, delta, a probe or the type's response pending).
   */
  probe(type: XdsType): boolean {
    const typeUrl = TYPE_OF[type];
    if (!this.call || this.spec.protocol !== 'sotw' || this.probeAt !== undefined || !this.last.has(typeUrl)) return false;
    this.probeAt = performance.now();
    this.probeType = typeUrl;
    this.write(encodeSotwAck({ typeUrl, resourceNames: this.namesOf(typeUrl), versionInfo: '', responseNonce: '' }));
    return true;
  }

  /** Latencies of answered probes (ms). */
  readonly probes: number[] = [];

  /** NACK the next response of a type (the server's last one was answered already). */
  nackNext(type: XdsType, message: string): void {
    this.nackPending.set(TYPE_OF[type], message);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.teardown();
    this.connected = false;
  }

  /** First response of each type since `t` on any stream: type → arrival time. */
  firstSince(t: number): Map<XdsType, number> {
    const out = new Map<XdsType, number>();
    for (let i = this.received.length - 1; i >= 0 && this.received[i]!.at >= t; i--) out.set(this.received[i]!.type, this.received[i]!.at);
    return out;
  }

  /** Responses since `t`. */
  countSince(t: number): number {
    let n = 0;
    for (let i = this.received.length - 1; i >= 0 && this.received[i]!.at >= t; i--) n++;
    return n;
  }

  private teardown(): void {
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  private async connect(unreachablePilotId?: string): Promise<void> {
    if (this.closed) return;
    let target: { pilotId: string; xdsAddress: string };
    this.state = 'locating';
    this.locateStartedAt = performance.now();
    try {
      target =
        'metaAddress' in this.discovery
          ? await (this.locateClient === 'lean' ? leanLocate({ ...this.locateArgs(unreachablePilotId), metaAddress: this.discovery.metaAddress }) : locatePilot({ ...this.locateArgs(unreachablePilotId), metaAddress: directTarget(this.discovery.metaAddress) }))
          : { pilotId: this.discovery.pilotId ?? this.discovery.xdsAddress, xdsAddress: this.discovery.xdsAddress };
    } catch (err) {
      this.locateFailures++;
      this.lastError = `locate: ${(err as Error).message}`;
      this.retry(unreachablePilotId);
      return;
    }
    this.locatedAt = performance.now();
    this.state = 'streaming';
    this.firstResponseAt = undefined;
    this.headersAt = undefined;
    if (this.closed) return;
    this.teardown();
    this.pilotId = target.pilotId;
    this.stream++;
    const stream = this.stream;
    this.seen = new Set();
    this.eds = [];
    this.rdsAsked = false;
    this.syncedAt = undefined;
    this.probeAt = undefined;
    this.last.clear();
    const delta = this.spec.protocol === 'delta';
    if (delta) for (const s of this.held.values()) s.clear();
    const parse = delta ? parseDeltaResponse : parseSotwResponse;
    const handlers: LeanCallHandlers = {
      message: (m) => {
        if (this.call !== call) return;
        this.backoff.reset();
        this.onResponse(parse(m), stream);
      },
      headers: () => {
        if (this.call === call) this.headersAt ??= performance.now();
      },
      end: (code, details) => {
        if (this.call !== call || this.closed) return;
        this.call = undefined;
        this.connected = false;
        this.streamsLost++;
        this.lostAt = performance.now();
        this.lastError = `stream ended: ${grpc.status[code] ?? code} ${details}`;
        // OK: the pilot moved us (shed) — locate again at once; otherwise it is gone: say so.
        if (code === grpc.status.OK) void this.connect();
        else this.retry(this.pilotId);
      },
    };
    const call: AdsCall = (this.client === 'lean' ? openLeanCall : openGrpcJsCall)(target.xdsAddress, delta ? DELTA : SOTW, handlers);
    this.call = call;
    this.connected = true;
    this.requestedAt = performance.now();
    for (const typeUrl of [TYPE_URL.cluster, TYPE_URL.listener]) this.request(typeUrl, []);
  }

  private locateArgs(unreachablePilotId: string | undefined) {
    return { nodeId: this.spec.id, namespace: this.spec.namespace, workload: this.spec.workload, unreachablePilotId, timeoutMs: LOCATE_TIMEOUT_MS };
  }

  private retry(unreachablePilotId: string | undefined): void {
    if (this.closed) return;
    this.state = 'backoff';
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(unreachablePilotId), this.backoff.next());
  }

  /** A subscription (first request of a type on the stream carries the node). */
  private request(typeUrl: string, names: string[]): void {
    const first = !this.seen.has(`asked:${typeUrl}`);
    this.seen.add(`asked:${typeUrl}`);
    if (this.spec.protocol === 'delta') {
      if (first) this.write(DeltaDiscoveryRequest.fromPartial({ node: this.node, typeUrl, resourceNamesSubscribe: names }));
      else this.write(encodeDeltaAck({ typeUrl, responseNonce: '', resourceNamesSubscribe: names, resourceNamesUnsubscribe: [] }));
    } else {
      const last = this.last.get(typeUrl);
      const versionInfo = last?.version ?? '';
      const responseNonce = last?.nonce ?? '';
      if (first) this.write(DiscoveryRequest.fromPartial({ node: this.node, typeUrl, resourceNames: names, versionInfo, responseNonce }));
      else this.write(encodeSotwAck({ typeUrl, resourceNames: names, versionInfo, responseNonce }));
    }
  }

  private write(r: Outgoing): void {
    if (!this.call) return;
    if (Buffer.isBuffer(r)) this.call.write(r);
    else if (this.spec.protocol === 'delta') this.call.write(DeltaDiscoveryRequest.encode(r as DeltaDiscoveryRequest).finish());
    else this.call.write(DiscoveryRequest.encode(r as DiscoveryRequest).finish());
  }

  private sendNack(typeUrl: string, nonce: string, message: string): void {
    this.nacks++;
    const errorDetail = { code: 3, message, details: [] };
    if (this.spec.protocol === 'delta') this.write(DeltaDiscoveryRequest.fromPartial({ typeUrl, responseNonce: nonce, errorDetail }));
    else {
      const good = this.last.get(typeUrl);
      this.write(DiscoveryRequest.fromPartial({ typeUrl, versionInfo: good?.version ?? '', responseNonce: nonce, resourceNames: this.namesOf(typeUrl), errorDetail }));
    }
  }

  private namesOf(typeUrl: string): string[] {
    return typeUrl === TYPE_URL.endpoint ? this.eds : typeUrl === TYPE_URL.route ? ['outbound'] : [];
  }

  private onResponse(res: WireResponse, stream: number): void {
    const type = SHORT[res.typeUrl];
    const now = performance.now();
    this.bytes += res.bytes;
    this.firstResponseAt ??= now;
    if (this.probeAt !== undefined && res.typeUrl === this.probeType) {
      this.probes.push(now - this.probeAt);
      this.probeAt = undefined;
    }
    if (type) this.received.push({ at: now, type, stream });
    const nack = this.nackPending.get(res.typeUrl);
    if (nack !== undefined) {
      this.nackPending.delete(res.typeUrl);
      this.sendNack(res.typeUrl, res.nonce, nack);
      return;
    }
    const delta = this.spec.protocol === 'delta';
    if (type) {
      const held = this.held.get(type) ?? new Set<string>();
      if (!delta) held.clear();
      for (const n of res.names) held.add(n);
      for (const n of res.removed) held.delete(n);
      this.held.set(type, held);
    }
    if (delta) this.write(encodeDeltaAck({ typeUrl: res.typeUrl, responseNonce: res.nonce, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [] }));
    this.last.set(res.typeUrl, { version: res.versionInfo, nonce: res.nonce });
    this.seen.add(res.typeUrl);
    if (res.typeUrl === TYPE_URL.cluster) {
      // EDS for every cluster of type EDS: all but the static inbound one.
      const names = [...(this.held.get('cds') ?? [])].filter((n) => !n.startsWith('inbound|')).sort();
      if (!delta) this.write(encodeSotwAck({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: [] }));
      if (names.join() !== this.eds.join()) {
        if (delta) {
          const had = new Set(this.eds);
          const now = new Set(names);
          const change = { typeUrl: TYPE_URL.endpoint, responseNonce: '', resourceNamesSubscribe: names.filter((n) => !had.has(n)), resourceNamesUnsubscribe: this.eds.filter((n) => !now.has(n)) };
          this.write(this.seen.has(`asked:${TYPE_URL.endpoint}`) ? encodeDeltaAck(change) : DeltaDiscoveryRequest.fromPartial({ ...change, node: this.node }));
          this.seen.add(`asked:${TYPE_URL.endpoint}`);
          this.eds = names;
        } else {
          this.eds = names;
          this.request(TYPE_URL.endpoint, names);
        }
      }
    } else if (res.typeUrl === TYPE_URL.listener) {
      if (!delta) this.write(encodeSotwAck({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: [] }));
      if (!this.rdsAsked) {
        this.rdsAsked = true;
        this.request(TYPE_URL.route, ['outbound']);
      }
    } else if (!delta) {
      this.write(encodeSotwAck({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: this.namesOf(res.typeUrl) }));
    }
    if (this.syncedAt === undefined && stream === this.stream) {
      const edsDone = this.seen.has(TYPE_URL.endpoint) || (this.seen.has(TYPE_URL.cluster) && this.eds.length === 0);
      if (this.seen.has(TYPE_URL.cluster) && this.seen.has(TYPE_URL.listener) && this.seen.has(TYPE_URL.route) && edsDone) this.syncedAt = now;
    }
  }
}
