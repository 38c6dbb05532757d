import { type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { MESH_CHANNEL_OPTIONS, meshChannelCredentials, type MeshTls } from '@octo-mesh/clients/mtls.js';
import { AggregatedDiscoveryServiceClient } from '@octo-mesh/proto/gen/proxy/envoy/service/discovery/v3/ads.js';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import { DeltaDiscoveryRequest, type DeltaDiscoveryResponse, DiscoveryRequest, type DiscoveryResponse } from '@octo-mesh/proto/gen/proxy/envoy/service/discovery/v3/discovery.js';
import type { Node } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { Backoff, type BackoffOptions, type Logger } from '@octo-mesh/runtime';
import type { ProxySnapshot } from '../model.js';
import type { ApplyResult, ConfigStore } from './config-store.js';
import { isUnreachable, type PilotLocation } from './locate.js';

/** Reconnect backoff of the xDS stream: 250 ms doubling to at most 5 s, half of it jitter. */
export const DEFAULT_XDS_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 5000, jitter: 0.5 };

/**
 * How long a CDS ACK waits for the endpoints of the clusters it brought: Envoy's default
 * `ConfigSource.initial_fetch_timeout` (15 s), after which Envoy ends a cluster's warming
 * without them. The clusters stay out of force until their endpoints come; only the ACK stops waiting.
 */
export const DEFAULT_WARMING_TIMEOUT_MS = 15_000;

/** gRPC INVALID_ARGUMENT: the code a NACK's error_detail carries. */
const INVALID_ARGUMENT = 3;

export interface AdsClientOptions {
  /** `host:port` of the pilot; or leave it out and give `locate`. */
  address?: string;
  /** mTLS to the pilot with the sidecar's certificate, the pilot checked by its identity (plaintext without). */
  tls?: MeshTls;
  /**
   * Asks the meta server which pilot serves this sidecar, before every (re)connection; gets the
   * pilot just lost when it was unreachable, so it is not handed back.
   */
  locate?: (unreachablePilotId?: string) => Promise<PilotLocation>;
  node: Node;
  mode: 'sotw' | 'delta';
  store: ConfigStore;
  /**
   * Called with the new snapshot of every update the store accepts, before it is ACKed; responses
   * are handled one at a time, waiting for it. When it throws (or rejects) the update is rolled
   * back in the store and NACKed with the error's message.
   */
  onUpdate: (s: ProxySnapshot, typeUrl: string) => void | Promise<void>;
  /**
   * Called with every response's result (for stats). `unchanged`: accepted without `onUpdate`,
   * every resource being byte for byte one in force already (a pilot sending what the proxy has,
   * e.g. after a restart, to a version the proxy did not know).
   */
  onResult?: (typeUrl: string, accepted: boolean, error?: string, unchanged?: boolean) => void;
  /**
   * Called once per stream with the pilot's address, right after the stream opened (a pilot may
   * answer a reconnecting proxy that holds current versions with nothing at all, so this cannot
   * wait for a response). The pilot knows the node once it has read the first request; a caller
   * that talks to the pilot about the node retries until then.
   */
  onStream?: (address: string) => void;
  logger: Logger;
  backoff?: BackoffOptions;
  /**
   * Dependency learning (DependencyLearner): the EDS names to subscribe to, given those of the
   * clusters in force — the services asked for added, released ones withheld — and whether any
   * is asked for. Then a new stream subscribes to EDS before CDS, so the pilot learns those
   * services again before it answers CDS (a CDS answer first would drop their clusters for a moment).
   */
  learning?: { endpointNames(fromClusters: readonly string[]): string[]; readonly asking: boolean };
  /** Longest wait of a CDS ACK for its clusters' endpoints (see {@link DEFAULT_WARMING_TIMEOUT_MS}). */
  warmingTimeoutMs?: number;
}

/** A CDS ACK (or delta ACK) held until the clusters of its response have their endpoints. */
interface HeldAck {
  call: object;
  /** The EDS clusters of the response that were warming when it was put in force. */
  clusters: Set<string>;
  send: () => void;
  timer: NodeJS.Timeout;
}

/** Subscription order: clusters before listeners (so routes find warm clusters), as Envoy does. */
const WILDCARD_TYPES = [TYPE_URL.cluster, TYPE_URL.listener, TYPE_URL.upgradeTarget, TYPE_URL.serviceGovernance] as const;

interface TypeState {
  names: string[];
  nonce: string;
}

/**
 * One ADS stream to the pilot carrying every type: state of the world or delta. Each response is
 * validated by the ConfigStore; a good one is ACKed (its version and nonce), a bad one NACKed
 * (the previous version, the nonce, and an `error_detail`) and the last good config stays. When
 * the stream breaks, the proxy keeps serving and reconnects with jittered exponential backoff.
 * RDS and EDS names follow the listeners and clusters in force.
 *
 * Envoy's initial fetch order: a CDS response is put in force, the EDS request for its new
 * clusters goes out, and the CDS ACK only once those clusters have their endpoints (they warm, as
 * Envoy's do: a cluster is not used before its ClusterLoadAssignment) or the warming timeout
 * passed — so a control plane that waits for EDS before it counts CDS as done sees the same
 * sequence as with Envoy (xDS protocol, "Resource warming").
 */
export class AdsClient {
  private client: AggregatedDiscoveryServiceClient | undefined;
  private clientAddress = '';
  private readonly backoff: Backoff;
  private locateFailing = false;
  /** The pilot serving this sidecar now (from the meta server), and the one it could not reach. */
  pilotId: string | undefined;
  private lostPilot: string | undefined;
  private call: ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> | undefined;
  private state = new Map<string, TypeState>();
  private pending: Promise<void> = Promise.resolve();
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private sentNode = false;
  private held: HeldAck | undefined;
  /**
   * The current stream is up: the pilot sent its response headers (Pilot does at once) or a
   * response; false from the moment the stream breaks.
   */
  connected = false;
  readonly received = new Set<string>();

  constructor(private readonly opts: AdsClientOptions) {
    if (!opts.address && !opts.locate) throw new Error('AdsClient needs an address or a locate function');
    // Capped at a few seconds: a proxy on a stale config must find a pilot that returns within
    // seconds (with a 30 s cap one sidecar sat in a 28 s wait after both pilots restarted).
    // Jitter still spreads a fleet's reconnects over the window.
    this.backoff = new Backoff(opts.backoff ?? DEFAULT_XDS_BACKOFF);
  }

  start(): void {
    this.stopped = false;
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.held) clearTimeout(this.held.timer);
    this.held = undefined;
    this.call?.cancel();
    this.client?.close();
  }

  /** The pilot address for the next stream: fixed, or from the meta server. */
  private async target(): Promise<string | undefined> {
    if (!this.opts.locate) return this.opts.address;
    try {
      const loc = await this.opts.locate(this.lostPilot);
      // The meta server names a live pilot: one has returned (or was there all along). Whatever
      // the waits so far, the next failure starts the backoff over.
      if (this.locateFailing) this.backoff.reset();
      this.locateFailing = false;
      this.pilotId = loc.pilotId;
      this.lostPilot = undefined;
      return loc.xdsAddress;
    } catch (err) {
      this.locateFailing = true;
      const delay = this.backoff.next();
      this.opts.logger.warn('cannot locate a pilot; serving the last good config and retrying', { error: (err as Error).message, delayMs: delay });
      this.timer = setTimeout(() => void this.open(), delay);
      return undefined;
    }
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    const address = await this.target();
    if (!address || this.stopped) return;
    if (!this.client || this.clientAddress !== address) {
      this.client?.close();
      this.client = new AggregatedDiscoveryServiceClient(address, meshChannelCredentials(this.opts.tls, 'pilot'), {
        ...MESH_CHANNEL_OPTIONS,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.initial_reconnect_backoff_ms': 200,
      });
      this.clientAddress = address;
      this.opts.logger.info('connecting to pilot', { address, pilot: this.pilotId });
    }
    const client = this.client;
    this.sentNode = false;
    this.state = new Map();
    const log = this.opts.logger;
    const onEnd = (why: string, err?: Partial<ServiceError>) => {
      if (this.call !== call) return;
      this.call = undefined;
      this.connected = false;
      if (this.stopped) return;
      if (err && isUnreachable(err)) this.lostPilot = this.pilotId;
      const delay = this.backoff.next();
      log.warn('xDS stream closed; serving the last good config and reconnecting', { reason: why, delayMs: delay, pilot: this.pilotId });
      this.timer = setTimeout(() => void this.open(), delay);
    };
    let call: NonNullable<typeof this.call>;
    // Responses are handled in order, one at a time: putting one in force may wait (binding listeners).
    const handle = (f: () => Promise<void>) => {
      this.pending = this.pending.then(f).catch((err: Error) => {
        log.error('xDS response handling failed', { error: err.stack });
      });
    };
    if (this.opts.mode === 'delta') {
      const c = client.deltaAggregatedResources();
      call = c;
      c.on('data', (r: DeltaDiscoveryResponse) => handle(() => this.onDelta(r, c)));
    } else {
      const c = client.streamAggregatedResources();
      call = c;
      c.on('data', (r: DiscoveryResponse) => handle(() => this.onSotw(r, c)));
    }
    this.call = call;
    // The pilot's response headers: the stream is up, whether or not a response follows soon.
    call.on('metadata', () => {
      if (this.call === call) this.connected = true;
    });
    call.on('error', (e: ServiceError) => onEnd(e.message, e));
    call.on('end', () => onEnd('stream ended'));
    call.on('status', () => undefined);
    if (this.held) clearTimeout(this.held.timer);
    this.held = undefined; // an ACK held for the last stream has no one to go to
    if (this.opts.learning?.asking) this.resubscribeDependent();
    for (const t of WILDCARD_TYPES) this.subscribe(t, []);
    this.resubscribeDependent();
    this.opts.onStream?.(address);
  }

  private node(): { node?: Node } {
    if (this.sentNode) return {};
    this.sentNode = true;
    return { node: this.opts.node };
  }

  private subscribe(typeUrl: string, names: string[]): void {
    const prev = this.state.get(typeUrl);
    this.state.set(typeUrl, { names, nonce: prev?.nonce ?? '' });
    if (this.opts.mode === 'delta') {
      const old = new Set(prev?.names ?? []);
      const next = new Set(names);
      const req = DeltaDiscoveryRequest.fromPartial({
        ...this.node(),
        typeUrl,
        resourceNamesSubscribe: prev ? names.filter((n) => !old.has(n)) : names,
        resourceNamesUnsubscribe: prev ? [...old].filter((n) => !next.has(n)) : [],
        initialResourceVersions: prev ? {} : this.initialVersions(typeUrl, names),
      });
      (this.call as ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>).write(req);
    } else {
      this.sendSotw(typeUrl, this.opts.store.version(typeUrl), prev?.nonce ?? '');
    }
  }

  private initialVersions(typeUrl: string, names: string[]): Record<string, string> {
    if (typeUrl === TYPE_URL.upgradeTarget || typeUrl === TYPE_URL.serviceGovernance) return {};
    const all = this.opts.store.resourceVersions(typeUrl as Parameters<ConfigStore['resourceVersions']>[0]);
    if (names.length === 0) return all;
    return Object.fromEntries(Object.entries(all).filter(([k]) => names.includes(k)));
  }

  private sendSotw(typeUrl: string, version: string, nonce: string, error?: string): void {
    const st = this.state.get(typeUrl);
    const req = DiscoveryRequest.fromPartial({
      ...this.node(),
      typeUrl,
      versionInfo: version,
      responseNonce: nonce,
      resourceNames: st?.names ?? [],
      ...(error ? { errorDetail: { code: INVALID_ARGUMENT, message: error, details: [] } } : {}),
    });
    (this.call as ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>)?.write(req);
  }

  /** Sends the subscriptions by name again when they changed (the dependency learner's asks did). */
  refresh(): void {
    if (this.call) this.resubscribeDependent();
  }

  /** RDS and EDS subscriptions follow the listeners and clusters in force (and the learner's asks). */
  private resubscribeDependent(): void {
    const eds = this.opts.store.endpointNames();
    const want: [string, string[]][] = [
      [TYPE_URL.endpoint, this.opts.learning ? this.opts.learning.endpointNames(eds) : eds],
      [TYPE_URL.route, this.opts.store.routeNames()],
    ];
    for (const [t, names] of want) {
      const cur = this.state.get(t);
      if (names.length === 0 && !cur) continue;
      if (cur && cur.names.join('\n') === names.join('\n')) continue;
      this.subscribe(t, names);
    }
  }

  /**
   * Puts an update the store accepted in force (`onUpdate`); when that fails the store goes back
   * to its state before the update and the result is the failure (a NACK). An unchanged update
   * (nothing new in it) has nothing to put in force.
   */
  private async commit(typeUrl: string, r: ApplyResult, undo: () => void): Promise<ApplyResult> {
    if (!r.ok || r.unchanged) return r;
    try {
      await this.opts.onUpdate(r.value, typeUrl);
      return r;
    } catch (err) {
      undo();
      return { ok: false, error: (err as Error).message };
    }
  }

  private accepted(typeUrl: string, r: ApplyResult): void {
    this.backoff.reset();
    this.received.add(typeUrl);
    this.connected = true;
    if (r.ok) {
      this.opts.onResult?.(typeUrl, true, undefined, r.unchanged);
    } else {
      this.opts.onResult?.(typeUrl, false, r.error);
      this.opts.logger.warn('xDS update rejected', { typeUrl, error: r.error });
    }
  }

  private async onSotw(res: DiscoveryResponse, call: ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>): Promise<void> {
    const t = res.typeUrl;
    const warmingBefore = new Set(this.opts.store.warmingClusters());
    const undo = this.opts.store.checkpoint();
    const r = await this.commit(t, this.opts.store.applySotw(t, res.versionInfo, res.resources), undo);
    if (this.call !== call) return; // the stream is gone: the next one gets the state anew
    const st = this.state.get(t) ?? { names: [], nonce: '' };
    st.nonce = res.nonce;
    this.state.set(t, st);
    // ACK carries the new version, NACK the previous one; both carry the response's nonce.
    const version = this.opts.store.version(t);
    this.answer(t, r.ok, call, () => this.sendSotw(t, version, res.nonce, r.ok ? undefined : r.error), warmingBefore);
    this.accepted(t, r);
  }

  /**
   * Answers a response: at once, except the ACK of a CDS response that left clusters warming,
   * which waits for their endpoints (after the EDS request for them, sent here first). Every
   * accepted EDS response may release a held CDS ACK. An ACK still held when another CDS
   * response comes is sent first, so each response is answered once, in order.
   */
  private answer(typeUrl: string, ok: boolean, call: object, send: () => void, warmingBefore: ReadonlySet<string>): void {
    if (typeUrl === TYPE_URL.cluster) this.release();
    if (!ok) return send();
    this.resubscribeDependent();
    // The clusters this response brought that wait for endpoints (not those already waiting before it).
    const warming = typeUrl === TYPE_URL.cluster ? this.opts.store.warmingClusters().filter((c) => !warmingBefore.has(c)) : [];
    if (warming.length === 0) {
      send();
      if (typeUrl === TYPE_URL.endpoint) this.settle();
      return;
    }
    const timeoutMs = this.opts.warmingTimeoutMs ?? DEFAULT_WARMING_TIMEOUT_MS;
    const timer = setTimeout(() => {
      const still = this.held ? [...this.held.clusters].filter((c) => this.opts.store.warmingClusters().includes(c)) : [];
      this.opts.logger.warn('clusters still warming: ACKing CDS without their endpoints', { clusters: still, timeoutMs });
      this.release();
    }, timeoutMs);
    this.held = { call, clusters: new Set(warming), send, timer };
  }

  /** Sends the held CDS ACK once none of its clusters is warming any more. */
  private settle(): void {
    const h = this.held;
    if (!h) return;
    const warming = new Set(this.opts.store.warmingClusters());
    if (![...h.clusters].some((c) => warming.has(c))) this.release();
  }

  private release(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    clearTimeout(h.timer);
    if (this.call === h.call) h.send();
  }

  private async onDelta(res: DeltaDiscoveryResponse, call: ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>): Promise<void> {
    const t = res.typeUrl;
    const warmingBefore = new Set(this.opts.store.warmingClusters());
    const undo = this.opts.store.checkpoint();
    const r = await this.commit(
      t,
      this.opts.store.applyDelta(
        t,
        res.systemVersionInfo,
        res.resources.filter((x) => x.resource).map((x) => ({ name: x.name, version: x.version, any: x.resource! })),
        res.removedResources,
      ),
      undo,
    );
    if (this.call !== call) return;
    this.answer(t, r.ok, call, () =>
      call.write(
        DeltaDiscoveryRequest.fromPartial({
          typeUrl: t,
          responseNonce: res.nonce,
          ...(r.ok ? {} : { errorDetail: { code: INVALID_ARGUMENT, message: r.error, details: [] } }),
        }),
      ),
      warmingBefore,
    );
    this.accepted(t, r);
  }
}
