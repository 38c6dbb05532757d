import type net from 'node:net';
import type { MeshTls } from '@octo-mesh/contracts/access.js';
import type { Node } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import { UnavailableError, ValidationError, createLogger, recordError, createMetricsRegistry, startAdminServer, type AdminServer, type Logger, type Registry } from '@octo-mesh/runtime';
import type { SocketAddr, ProxySnapshot, ListenerModel, ClusterModel, RouteTable, EndpointSet } from './model.js';
import { addrKey } from './model.js';
import { ClusterManager } from './data/cluster-manager.js';
import { DEFAULT_PEER_CHECKS, PeerChecker, type PeerCheckSettings } from './data/p2p-check.js';
import type { AccessLogEntry, HttpContext } from './data/http-proxy.js';
import { ListenerManager, type DrainMode, type HandOff, type ListenerLimits, type SocketSpec } from './data/listeners.js';
import { RateLimiter } from './data/rate-limit.js';
import { selfTestH1, warmUp, type SelfTestOptions } from './data/self-test.js';
import { ProxyStats } from './stats.js';
import { SecretStore, TlsContexts, isWarming } from './data/tls.js';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from './translate/index.js';
import type { AdsClient } from './xds/ads-client.js';
import { ConfigStore } from './xds/config-store.js';
import type { DependencyLearner } from './xds/dependency-learner.js';
import type { SidecarStatusReporter } from './xds/status-reporter.js';

/** Replaced by the proxy package builder (esbuild `define`), so two versions build from one source. */
declare const __OCTO_PROXY_VERSION__: string | undefined;

/** The proxy's version: stamped at package time (`npm run package:proxy -- --version X`), else the workspace's. */
export const PROXY_VERSION: string = typeof __OCTO_PROXY_VERSION__ === 'string' ? __OCTO_PROXY_VERSION__ : '0.1.0';

/**
 * Whether the config in force is what the control plane sent (the LEGO agent's "synced" check
 * before it drains the previous proxy): every type that answered was ACKed on its latest
 * response, the first clusters and listeners arrived, and the routes and endpoints the proxy
 * subscribes to have answered. Without a control plane the static config is synced by definition.
 */
export interface SyncState {
  synced: boolean;
  /** Latest result per type URL. */
  types: Record<string, 'ACK' | 'NACK'>;
  /** The latest NACK in force, if any: its type and the error sent to the pilot. */
  nacked: { typeUrl: string; error: string } | null;
}

/** Envoy-style resources (as Envoy's YAML writes them) for running without a control plane. */
export interface StaticResources {
  listeners?: unknown[];
  clusters?: unknown[];
  routes?: unknown[];
  endpoints?: unknown[];
}

export interface ProxyOptions {
  node: Node;
  /** Sockets the proxy listens on by listener name (e.g. `outbound` twice: TCP and a Unix socket). */
  sockets: { name: string; spec: SocketSpec }[];
  /**
   * The control plane: a fixed pilot `address`, or a `metaAddress` whose meta server names the
   * pilot for this sidecar (asked again after every lost stream).
   */
  xds?: { address?: string; metaAddress?: string; mode: 'sotw' | 'delta'; tls?: MeshTls };
  staticResources?: StaticResources;
  /** Admin endpoint; port 0 picks one; omit to run without. */
  admin?: { host: string; port: number };
  accessLog?: (e: AccessLogEntry) => void;
  logger?: Logger;
  registry?: Registry;
  /** For tests: deterministic randomness in the data path. */
  random?: () => number;
  xdsBackoff?: { initialMs: number; maxMs: number; jitter?: number };
  /** Per-listener connection limit and overload thresholds (settings `listenerConnectionLimit`, `overload*`). */
  limits?: ListenerLimits;
  /**
   * Dependency learning with a control plane (see xds/dependency-learner.ts): how long a request
   * for an unknown host waits for its route (0: off), and after how long unused a learned
   * service is unsubscribed. Default 1 s and 10 min.
   */
  learning?: { timeoutMs: number; ttlMs: number };
  /** Tests only: the HTTP/1.1 self-test's fault hook (see data/self-test.ts). */
  selfTestFault?: SelfTestOptions['fault'];
  /**
   * Under the LEGO agent: round trips through the private self-test path before accepting on the
   * agent's sockets, at most `requests` or `budgetMs` (settings `warmUpRequests`, `warmUpBudgetMs`).
   */
  warmUp?: { requests: number; budgetMs: number; dutyCycle?: number };
  /** Selective peer-to-peer health checks (data/p2p-check.ts); on by default with these settings. */
  peerChecks?: Partial<PeerCheckSettings>;
  /**
   * Called once, after the initial config is applied and the warm-up (if any) ended, just before
   * the first socket accepts (its own listeners, or the agent's handed-over ones), with whether a
   * warm-up ran: the main module runs its memory-reducing GC there (idle-gc.ts, setting `gcBeforeAccept`).
   */
  beforeAccept?: (warmedUp: boolean) => void;
}

/** Reads the bootstrap's static resources; a bad one throws ValidationError naming its path. */
export function loadStaticResources(sr: StaticResources | undefined): ConfigStore {
  const issues: { path: string; message: string }[] = [];
  const read = <T extends ResourceTypeUrl>(key: keyof StaticResources, typeUrl: T) => {
    const out = new Map<string, never>();
    for (const [i, obj] of (sr?.[key] ?? []).entries()) {
      const path = `static_resources.${key}[${i}]`;
      const msg = fromEnvoyJson(typeUrl, obj, path);
      if (!msg.ok) {
        issues.push({ path, message: msg.error });
        continue;
      }
      const r = translateResource(typeUrl, msg.value);
      if (!r.ok) issues.push({ path, message: r.error });
      else out.set((r.value as { name?: string; cluster?: string }).name ?? (r.value as { cluster: string }).cluster, r.value as never);
    }
    return out;
  };
  const store = new ConfigStore(
    read('listeners', TYPE_URL.listener) as Map<string, ListenerModel>,
    read('clusters', TYPE_URL.cluster) as Map<string, ClusterModel>,
    read('routes', TYPE_URL.route) as Map<string, RouteTable>,
    read('endpoints', TYPE_URL.endpoint) as Map<string, EndpointSet>,
  );
  if (issues.length) throw new ValidationError('invalid static resources', issues);
  return store;
}

/**
 * OCTO Proxy: listeners, the data path, the xDS client and the admin endpoint, wired together.
 * The snapshot in force is swapped atomically: each request reads it once.
 */
export class Proxy {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly stats: ProxyStats;
  readonly store: ConfigStore;
  readonly clusters = new ClusterManager();
  /** Selective P2P health checks of the hosts this sidecar calls (data/p2p-check.ts). */
  readonly peerChecks: PeerChecker;
  private readonly listeners: ListenerManager;
  /** SDS secrets from files and the TLS contexts built from them (data/tls.ts). */
  readonly secrets: SecretStore;
  private readonly tls: TlsContexts;
  private ads: AdsClient | undefined;
  private learner: DependencyLearner | undefined;
  private statusReporter: SidecarStatusReporter | undefined;
  /** An agent status that arrived before the xDS client was up. */
  private pendingAgentStatus: string | undefined;
  private admin: AdminServer | undefined;
  private current: ProxySnapshot;
  /** Set while a listener update is being bound and put in force. */
  private settling: Promise<void> | undefined;
  private readonly fixed: Set<string>;
  /** Addresses of the fixed sockets by listener name (the first one for each name). */
  readonly addresses = new Map<string, SocketAddr>();
  /** The latest xDS result per type URL (see `sync()`). */
  private readonly results = new Map<string, { accepted: boolean; error?: string }>();

  private constructor(private readonly opts: ProxyOptions) {
    this.logger = opts.logger ?? createLogger('proxy');
    this.registry = opts.registry ?? createMetricsRegistry('proxy', PROXY_VERSION);
    this.stats = new ProxyStats(this.registry);
    this.store = loadStaticResources(opts.staticResources);
    this.current = this.store.snapshot;
    this.fixed = new Set(opts.sockets.map((s) => s.name));
    this.secrets = new SecretStore(this.logger, this.stats);
    this.tls = new TlsContexts(this.secrets, this.logger);
    this.clusters.tls = this.tls;
    this.clusters.stats = this.stats;
    this.peerChecks = new PeerChecker(this.clusters, () => this.store.serviceGovernance, this.registry, this.logger, { ...DEFAULT_PEER_CHECKS, ...opts.peerChecks });
    const ctx: HttpContext = {
      tls: this.tls,
      snapshot: () => this.current,
      settling: () => this.settling,
      clusters: this.clusters,
      rateLimiter: new RateLimiter(opts.random),
      stats: this.stats,
      ...(opts.accessLog ? { accessLog: opts.accessLog } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      learn: (listener, authority) => this.learner?.learn(listener, authority),
    };
    this.listeners = new ListenerManager(ctx, this.logger, opts.limits);
  }

  static async start(opts: ProxyOptions): Promise<Proxy> {
    const p = new Proxy(opts);
    await p.init();
    return p;
  }

  private async init(): Promise<void> {
    // Before any socket accepts (a handle from the parent may be listening already), the lean
    // HTTP/1.1 path proves itself, or node:http serves (data/self-test.ts).
    const st = await selfTestH1({ logger: this.logger, registry: this.registry, ...(this.opts.selfTestFault ? { fault: this.opts.selfTestFault } : {}) });
    this.logger.debug('HTTP/1.1 self-test', { ...st.codec, ms: Math.round(st.ms) });
    this.apply(this.current);
    this.peerChecks.start();
    // Sockets of its own accept as soon as they are attached; the agent's wait (acceptParentSockets).
    if (!this.opts.sockets.some((s) => s.spec.kind === 'ipc')) this.opts.beforeAccept?.(false);
    for (const s of this.opts.sockets) {
      const addr = await this.listeners.attach(s.name, s.spec);
      if (addr && !this.addresses.has(s.name)) this.addresses.set(s.name, addr);
    }
    // Static listeners: each one that cannot be bound is logged, the others serve.
    await this.listeners.sync(this.current, this.fixed, true);
    if (this.opts.xds) {
      // Loaded only with a control plane: the xDS client brings @grpc/grpc-js and the gRPC
      // service definitions (~17 MB RSS, ~90 ms), which a static-config proxy never uses.
      const [{ AdsClient }, { DependencyLearner }, { pilotLocator }, { SidecarStatusReporter }] = await Promise.all([
        import('./xds/ads-client.js'),
        import('./xds/dependency-learner.js'),
        import('./xds/locate.js'),
        import('./xds/status-reporter.js'),
      ]);
      const { address, metaAddress, tls } = this.opts.xds;
      const md = (this.opts.node.metadata ?? {}) as Record<string, unknown>;
      const reporter = (this.statusReporter = new SidecarStatusReporter({
        nodeId: this.opts.node.id,
        ...(tls ? { tls } : {}),
        logger: this.logger,
        onResult: (result) => this.stats.agentStatusReports.inc({ result }),
      }));
      if (this.pendingAgentStatus !== undefined) reporter.set(this.pendingAgentStatus);
      const learning = this.opts.learning ?? { timeoutMs: 1000, ttlMs: 600_000 };
      if (learning.timeoutMs > 0)
        this.learner = new DependencyLearner({
          namespace: String(md['namespace'] || 'default'),
          declared: Array.isArray(md['dependencies']) ? md['dependencies'].map(String) : [],
          timeoutMs: learning.timeoutMs,
          ttlMs: learning.ttlMs,
          snapshot: () => this.current,
          refresh: () => this.ads?.refresh(),
          requestsByCluster: () => this.stats.requestsByCluster(),
          registry: this.registry,
          logger: this.logger,
        });
      this.ads = new AdsClient({
        ...(this.learner ? { learning: this.learner } : {}),
        ...(address ? { address } : {}),
        ...(tls ? { tls } : {}),
        ...(metaAddress
          ? {
              locate: pilotLocator({ metaAddress, ...(tls ? { tls } : {}), nodeId: this.opts.node.id, namespace: String(md['namespace'] ?? 'default'), workload: String(md['workload'] ?? '') }),
            }
          : {}),
        mode: this.opts.xds.mode,
        node: this.opts.node,
        store: this.store,
        logger: this.logger,
        ...(this.opts.xdsBackoff ? { backoff: this.opts.xdsBackoff } : {}),
        onUpdate: async (s, typeUrl) => {
          // Listeners with an address are bound before the update is ACKed; a bind failure throws (NACK).
          // A new listener may accept before the snapshot naming it is in force: its requests
          // wait for `settling` (handleHttp) rather than finding no listener config.
          if (typeUrl === TYPE_URL.listener) {
            let settled!: () => void;
            this.settling = new Promise<void>((r) => (settled = r));
            try {
              await this.listeners.sync(s, this.fixed);
              this.apply(s);
            } finally {
              this.settling = undefined;
              settled();
            }
          } else this.apply(s);
          this.logger.info('xDS update applied', { typeUrl, version: s.versions[typeUrl] });
          if (typeUrl === TYPE_URL.upgradeTarget && process.send) process.send({ type: 'octo.upgrade-target', target: this.store.upgradeTarget });
        },
        onStream: (address) => reporter.pilot(address),
        onResult: (typeUrl, accepted, error, unchanged) => {
          this.results.set(typeUrl, { accepted, ...(error ? { error } : {}) });
          if (this.listeners.holdingParentSockets && this.sync().synced) void this.acceptParentSockets('the xDS config is in force');
          this.stats.xdsUpdates.inc({ type: typeUrl.split('.').pop() ?? typeUrl, result: !accepted ? 'rejected' : unchanged ? 'unchanged' : 'accepted' });
        },
      });
      this.ads.start();
    } else if (this.listeners.holdingParentSockets) await this.acceptParentSockets('static config only');
    if (this.opts.admin) await this.startAdmin(this.opts.admin);
  }

  /**
   * Accepts on the sockets the LEGO agent handed over. Held until the config is in force, so that a
   * proxy started beside a serving one (a hot swap) never answers a connection before it knows
   * its listeners and routes: meanwhile the serving proxy takes them all.
   */
  private acceptParentSockets(why: string): Promise<void> {
    // Called again by every xDS result until it accepts: the first call does it.
    return (this.accepting ??= this.acceptParentSocketsNow(why));
  }

  private accepting: Promise<void> | undefined;
  /** Set while the warm-up runs: not ready meanwhile, so the agent does not promote a cold proxy. */
  private warming = false;

  private async acceptParentSocketsNow(why: string): Promise<void> {
    const w = this.opts.warmUp;
    const warm = !!w && w.requests > 0 && w.budgetMs > 0;
    if (warm) {
      this.warming = true;
      const r = await warmUp({ ...w, logger: this.logger, registry: this.registry });
      this.warming = false;
      this.logger.info('warmed up before accepting', { requests: r.requests, ...r.byProtocol, ms: Math.round(r.ms) });
    }
    this.opts.beforeAccept?.(warm);
    try {
      for (const { name, addr } of await this.listeners.acceptParentSockets()) if (!this.addresses.has(name)) this.addresses.set(name, addr);
      this.logger.info('accepting on the agent\'s sockets', { why });
    } catch (err) {
      recordError(this.logger, 'accepting on the agent\'s sockets', err, {}, 'error');
    }
  }

  /** Swaps in a snapshot: cluster runtimes first, so routes never see a missing cluster. */
  private apply(s: ProxySnapshot): void {
    // Resolving each TLS context now starts reading and watching its SDS files.
    this.tlsWarming(s);
    this.clusters.apply(s);
    this.current = s;
    this.learner?.onSnapshot(s);
  }

  get snapshot(): ProxySnapshot {
    return this.current;
  }

  /**
   * TLS contexts that cannot serve yet, by listener or cluster (Envoy: warming), with the secrets
   * they wait for. A warming listener closes its TLS connections; a warming cluster answers 503.
   */
  tlsWarming(s: ProxySnapshot = this.current): string[] {
    const out: string[] = [];
    for (const l of s.listeners.values()) {
      const t = l.transport?.tls;
      const r = t && this.tls.resolve(t);
      if (r && isWarming(r)) out.push(`listener ${l.name}: ${r.warming}`);
    }
    for (const c of s.clusters.values()) {
      const r = c.tls && this.tls.resolve(c.tls);
      if (r && isWarming(r)) out.push(`cluster ${c.name}: ${r.warming}`);
    }
    return out;
  }

  /** Ready when the sockets listen, every TLS context has its secrets and, with a control plane, the first listeners and clusters arrived. */
  ready(): true | string {
    if (this.warming) return 'warming up';
    const tls = this.tlsWarming();
    if (tls.length) return `TLS warming: ${tls.join('; ')}`;
    if (!this.ads) return true;
    const missing = [TYPE_URL.cluster, TYPE_URL.listener].filter((t) => !this.ads!.received.has(t));
    return missing.length ? `waiting for ${missing.map((t) => t.split('.').pop()).join(', ')}` : true;
  }

  /** See {@link SyncState}. */
  sync(): SyncState {
    const types: Record<string, 'ACK' | 'NACK'> = {};
    let nacked: SyncState['nacked'] = null;
    for (const [t, r] of this.results) {
      types[t] = r.accepted ? 'ACK' : 'NACK';
      if (!r.accepted) nacked = { typeUrl: t, error: r.error ?? 'rejected' };
    }
    if (!this.ads) return { synced: true, types, nacked };
    const answered = (t: string, names: string[]) => names.length === 0 || this.results.has(t);
    const synced =
      this.ready() === true &&
      nacked === null &&
      answered(TYPE_URL.route, this.store.routeNames()) &&
      answered(TYPE_URL.endpoint, this.store.endpointNames());
    return { synced, types, nacked };
  }

  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  private async startAdmin(a: { host: string; port: number }): Promise<void> {
    const stats = this.stats;
    this.admin = await startAdminServer({
      host: a.host,
      port: a.port,
      registry: this.registry,
      readiness: { config: () => this.ready() },
      routes: {
        '/ready': () => {
          const r = this.ready();
          if (r !== true) throw new UnavailableError(r);
          return 'LIVE\n';
        },
        '/sync': () => this.sync(),
        '/config_dump': () => ({
          sync: this.sync(),
          node: { id: this.opts.node.id, cluster: this.opts.node.cluster, metadata: this.opts.node.metadata, locality: this.opts.node.locality },
          xds: this.opts.xds ? { ...this.opts.xds, pilot: this.ads?.pilotId ?? null, connected: this.ads?.connected ?? false } : null,
          learned_dependencies: this.learner?.dump() ?? null,
          tls: { warming: this.tlsWarming(), sds_files: this.secrets.status() },
          ...(this.store.dump() as object),
        }),
        '/clusters': () => ({ clusters: this.clusters.all().map((c) => c.summary()), warming: this.store.warmingClusters() }),
        '/listeners': () => ({ listeners: this.listeners.addresses() }),
        '/stats': () => stats.text(),
        '/stats/prometheus': () => this.registry.metrics(),
      },
    });
  }

  /**
   * The LEGO agent's newest status (JSON of AgentStatus in @octo-mesh/contracts), forwarded to the
   * pilot this proxy is connected to, and again after every reconnect.
   */
  reportAgentStatus(statusJson: string): void {
    if (this.statusReporter) this.statusReporter.set(statusJson);
    else this.pendingAgentStatus = statusJson;
  }

  /**
   * Graceful stop: stop the xDS stream, drain listeners for up to `drainMs`, close pools and admin.
   * `handover` (the LEGO agent swapping versions; see ListenerManager.drain) keeps idle
   * kept-alive connections open until their next request, answered with `connection: close` —
   * or, given `handOff`, moves them to the proxy taking over.
   */
  async stop(drainMs = 5000, mode: DrainMode = 'shutdown', spreadMs = 0, handOff?: HandOff): Promise<void> {
    this.ads?.stop();
    this.learner?.stop();
    this.statusReporter?.stop();
    this.peerChecks.stop();
    await this.listeners.drain(drainMs, mode, spreadMs, handOff);
    this.clusters.close();
    this.secrets.close();
    await this.admin?.close();
  }

  /** A kept-alive connection the previous proxy handed over (see ListenerManager.adopt). */
  adoptConnection(listener: string, socket: net.Socket): boolean {
    const ok = this.listeners.adopt(listener, socket);
    this.stats.connectionHandovers.inc({ direction: 'in', result: ok ? 'adopted' : 'refused' });
    if (!ok) this.logger.warn('handed-over connection refused: no such listener, or draining', { listener });
    return ok;
  }

  /** Every listening socket by listener name, including those bound for xDS listeners. */
  listening(): { name: string; address: string }[] {
    return this.listeners.addresses();
  }

  addressOf(name: string): string | undefined {
    const a = this.addresses.get(name);
    return a ? addrKey(a) : undefined;
  }
}
