/**
 * Pilot: keeps the translation of every service its connected sidecars depend on, builds one
 * snapshot per *scope* (a set of dependencies, a locality and a listener port — sidecars of one
 * workload share it, and its bytes), and publishes it to the cache for each node of the scope.
 *
 * A change does only the work it requires: notifications are debounced and coalesced; an
 * endpoint change re-generates that service's load assignments only, and only the scopes that
 * include the service get a new snapshot, in which only the EDS type changed — so only EDS is
 * pushed, and only to those nodes. A RoutePolicy change re-translates that service only.
 */
import type { ProxyVersion } from '@octo-mesh/api';
import type { AgentStatus, RolloutAggregate } from '@octo-mesh/contracts';
import { Cluster, Listener, TYPE_URL, UpgradeTarget, type Node } from '@octo-mesh/proto';
import type { Logger } from '@octo-mesh/runtime';
import { Debouncer, type DebounceOptions } from './debounce.js';
import type { PilotMetrics } from './metrics.js';
import { splitServiceKey, type Locality, type ServiceKey } from './model.js';
import { nodeIdentity, type NodeIdentity } from './node-meta.js';
import { lengthDelimited } from './server/encode.js';
import type { ServerCallbacks, StreamInfo } from './server/stream.js';
import type { MeshChange, MeshSource, MeshWatch } from './source.js';
import { localityKey, ServiceCache, type ServiceEntry } from './service-cache.js';
import { routePolicyStatus, type SidecarPolicyView } from './status.js';
import { SyncTracker } from './sync.js';
import { rolloutAggregates } from './rollouts.js';
import { targetFor } from './upgrade.js';
import { OUTBOUND, parseClusterName } from './translate/common.js';
import { generateInboundClusters, generateListeners, INBOUND } from './translate/listeners.js';
import { clusterTlsFields, inboundTcpClusters, inboundTcpPortsOf, inboundWithTls, type InboundTcpPort, type MtlsMode, type NodeTls } from './translate/mtls.js';
import { inboundAuthorization, type AuthorizationTranslation } from './translate/authz.js';
import { authorizationPolicyStatus, authorizationProvenance, backs, BackingIndex } from './authz-status.js';
import { backingOf, changeNamespace, type ServiceBacking } from '@octo-mesh/contracts';
import type { AuthorizationPolicyStatus } from '@octo-mesh/api';
import { generateApiListener, parseListenerName, resolveApiListener } from './translate/proxyless.js';
import type { PolicyVerdict } from './translate/policy.js';
import { describeConflict, selectTcpListeners, tcpProxyCluster } from './translate/tcp.js';
import { SnapshotCache } from './xds/cache.js';
import { makeResource, resourceFromBytes, type XdsResource } from './xds/resource.js';
import { Snapshot } from './xds/snapshot.js';

export interface PilotOptions {
  source: MeshSource;
  cache?: SnapshotCache;
  logger?: Logger;
  metrics?: PilotMetrics;
  /** Default: 100 ms quiet period, 1 s maximum delay. */
  debounce?: DebounceOptions;
  now?: () => number;
  /** Called for each node and type when a change's configuration is ACKed (bench and tests). */
  onPropagated?: (nodeId: string, typeUrl: string, ms: number) => void;
  /**
   * The data plane's mTLS (translate/mtls.ts): for nodes with certificates (`octo.io/sds-dir`),
   * TLS on their inbound listener and on their clusters to mesh services. Default off.
   */
  mtls?: { mode: MtlsMode; trustDomain: string; h2Upgrade?: boolean };
}

interface Scope {
  key: string;
  deps: ServiceKey[];
  locality?: Locality;
  /** The nodes' namespace: bare service names in it resolve to its services. */
  namespace: string;
  /** Listener names proxyless clients of the scope asked for (translate/proxyless.ts), sorted. */
  apiListeners: string[];
  /** Outbound listener port (0: no address) and application port (0: no inbound listener). */
  port: number;
  appPort: number;
  /** The application's Unix socket (`app_socket`), instead of a port: the inbound cluster's endpoint is a pipe. */
  appSocket?: string;
  /**
   * The services the nodes' workload backs (authz-status.ts backedServices), when they have an
   * inbound listener: the AuthorizationPolicies of all of them guard it (inboundAuthorization).
   */
  inbound?: ServiceKey[];
  nodes: Set<string>;
  snapshot?: Snapshot;
  /** The TCP ports of its dependencies that got no listener (logged when this changes). */
  tcpConflicts: string[];
  /** The nodes' TLS (same SDS directory): inbound listener and mesh clusters with mTLS. */
  tls?: NodeTls;
}

interface NodeEntry {
  identity: NodeIdentity;
  streamId: number;
  learned: Set<ServiceKey>;
  /** Listener names it asked for that name a service (a proxyless gRPC client's targets). */
  apiListeners: Set<string>;
  scope: string;
  /** policy → generation ACKed / NACKed (from resource provenance). */
  acked: Map<string, number>;
  /** The LEGO agent's last report, forwarded by the proxy (SidecarStatusService); kept across reconnects. */
  agent?: AgentStatus;
  nacked: Map<string, number>;
}

const UPGRADE = TYPE_URL.upgradeTarget;
const GOVERNANCE = TYPE_URL.serviceGovernance;
/** Nodes published per event-loop turn when a change reaches many. */
const PUBLISH_SLICE = 250;

export class Pilot {
  readonly cache: SnapshotCache;
  readonly sync: SyncTracker;
  private readonly catalog: ServiceCache;
  private readonly services: Map<ServiceKey, ServiceEntry>;
  private readonly scopes = new Map<string, Scope>();
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly listenersByPorts = new Map<string, { listeners: XdsResource[]; clusters: XdsResource[]; authz: (AuthorizationTranslation | undefined)[] }>();
  /**
   * Per namespace of a node with an inbound listener, who backs each of its services
   * (MeshSource.backing, then kept current from the namespace's service and endpoints changes).
   */
  private readonly backings = new Map<string, BackingIndex>();
  private readonly backingLoads = new Map<string, Promise<void>>();
  /** Namespace → connected nodes with an inbound listener in it (their backings are kept). */
  private readonly inboundNodes = new Map<string, number>();
  /** A service cluster with a node's TLS appended, by SDS directory (see clustersWithTls). */
  private readonly tlsClusters = new WeakMap<XdsResource, Map<string, XdsResource>>();
  /** Encoded TCP listeners, per listener message of a translation (shared by the scopes that keep it). */
  private readonly tcpResources = new WeakMap<Listener, XdsResource>();
  private readonly debouncer: Debouncer<MeshChange>;
  private readonly watch: MeshWatch;
  private watchDirty = false;
  private proxyVersions: readonly ProxyVersion[] = [];
  private readonly now: () => number;

  constructor(private readonly opts: PilotOptions) {
    this.cache = opts.cache ?? new SnapshotCache();
    this.now = opts.now ?? (() => performance.now());
    this.sync = new SyncTracker(this.now);
    this.catalog = new ServiceCache(opts.source, opts.logger, opts.metrics);
    this.services = this.catalog.entries;
    this.debouncer = new Debouncer(opts.debounce ?? { quietMs: 100, maxDelayMs: 1000 }, (batch, at) => this.applyChanges(batch, at), this.now);
    this.watch = opts.source.watch([], (changes) => this.debouncer.add(...changes));
  }

  /** The hooks to build the ADS server with. */
  readonly callbacks: ServerCallbacks = {
    onStreamOpen: (s) => this.opts.metrics?.connected.inc({ kind: s.kind }),
    onNode: (s, node) => this.connect(s, node),
    onStreamResponse: (s, typeUrl, version, nonce) => {
      this.sync.sent(s.node!.id, typeUrl, version, nonce);
      this.opts.metrics?.pushes.inc({ type: shortName(typeUrl) });
    },
    onResume: (s, typeUrl, version) => this.sync.holds(s.node!.id, typeUrl, version),
    onAck: (s, typeUrl, version) => this.onAck(s, typeUrl, version),
    onUnchanged: (s, typeUrl, version) => this.sync.upToDate(s.node!.id, typeUrl, version),
    onNack: (s, typeUrl, version, _nonce, error) => this.onNack(s, typeUrl, version, error),
    onMissingResources: (s, typeUrl, names) => this.learn(s, typeUrl, names),
    onUnsubscribe: (s, typeUrl, names) => void this.forget(s, typeUrl, names),
    onStreamClosed: (s) => {
      this.opts.metrics?.connected.dec({ kind: s.kind });
      if (s.node) this.disconnect(s.node.id, s.id);
    },
  };

  // ---------------------------------------------------------------------------------------
  // Nodes

  private async connect(stream: StreamInfo, node: Node): Promise<void> {
    const identity = nodeIdentity(node);
    const previous = this.nodes.get(identity.id);
    const learned = previous?.learned ?? new Set<ServiceKey>();
    const apiListeners = previous?.apiListeners ?? new Set<string>();
    if (previous) this.leaveScope(identity.id, previous.scope);
    const entry: NodeEntry = { identity, streamId: stream.id, learned, apiListeners, scope: '', acked: new Map(), nacked: new Map(), ...(previous?.agent ? { agent: previous.agent } : {}) };
    if (previous) this.countInbound(previous.identity, -1);
    this.countInbound(identity, 1);
    this.nodes.set(identity.id, entry);
    this.sync.connected(identity.id, stream.id, stream.kind);
    await this.placeNode(entry);
  }

  /** Puts a node into the scope its dependencies say, loading what is missing, and publishes. */
  private async placeNode(entry: NodeEntry): Promise<void> {
    const id = entry.identity;
    const deps = [...new Set([...id.dependencies, ...entry.learned])].sort();
    const port = id.outboundPort ?? 0;
    const appPort = id.appPort ?? 0;
    const apiListeners = [...entry.apiListeners].sort();
    if (id.appPort || id.appSocket) {
      await this.loadBacking(id.namespace);
      if (this.nodes.get(id.id) !== entry) return; // gone or replaced meanwhile
    }
    const backed = this.backings.get(id.namespace)?.guarded(id) ?? [];
    const inbound = backed.length ? backed : undefined;
    const mtls = this.opts.mtls;
    const tls: NodeTls | undefined = mtls && mtls.mode !== 'off' && id.sdsDir ? { mode: mtls.mode, sdsDir: id.sdsDir, trustDomain: mtls.trustDomain, ...(mtls.h2Upgrade ? { h2Upgrade: true } : {}) } : undefined;
    const appSocket = id.appSocket;
    const key = JSON.stringify([deps, id.namespace, localityKey(id.locality), port, appPort, ...(appSocket ? [{ appSocket }] : []), ...(apiListeners.length ? [apiListeners] : []), ...(inbound ? [{ inbound }] : []), ...(tls ? [{ sds: tls.sdsDir }] : [])]);
    let scope = this.scopes.get(key);
    if (!scope) {
      scope = { key, deps, namespace: id.namespace, apiListeners, ...(id.locality ? { locality: id.locality } : {}), port, appPort, ...(appSocket ? { appSocket } : {}), ...(inbound ? { inbound } : {}), ...(tls ? { tls } : {}), nodes: new Set(), tcpConflicts: [] };
      this.scopes.set(key, scope);
      for (const d of scopeServices(scope)) this.catalog.entry(d).scopes.add(key);
      this.watchChanged();
    }
    scope.nodes.add(id.id);
    entry.scope = key;
    await this.catalog.ensureLoaded(scopeServices(scope));
    if (this.nodes.get(id.id) !== entry || entry.scope !== key) return; // gone or moved meanwhile
    scope.snapshot ??= this.buildScopeSnapshot(scope);
    this.publishNode(entry, scope.snapshot);
  }

  private disconnect(nodeId: string, streamId: number): void {
    const entry = this.nodes.get(nodeId);
    if (!entry || entry.streamId !== streamId) return;
    this.nodes.delete(nodeId);
    this.countInbound(entry.identity, -1);
    this.leaveScope(nodeId, entry.scope);
    this.cache.clearSnapshot(nodeId);
    this.sync.disconnected(nodeId, streamId);
  }

  /** Removes a node from a scope; an empty scope goes, and so do services no scope needs (Pilot holds only what its sidecars use). */
  private leaveScope(nodeId: string, key: string): void {
    const scope = this.scopes.get(key);
    if (!scope) return;
    scope.nodes.delete(nodeId);
    if (scope.nodes.size) return;
    this.scopes.delete(key);
    for (const d of scopeServices(scope)) {
      const s = this.services.get(d);
      if (!s) continue;
      s.scopes.delete(key);
      if (s.scopes.size === 0) this.services.delete(d);
    }
    this.watchChanged();
  }

  /**
   * On-demand: a client asked for clusters of services it did not declare, or (a proxyless gRPC
   * client) for listeners named after services; add them to its scope. Resolves once the node's
   * new snapshot is published, so the stream answers with it (an absent name is then a real
   * "does not exist", not a not-yet-loaded one).
   */
  private async learn(stream: StreamInfo, typeUrl: string, names: readonly string[]): Promise<void> {
    const entry = stream.node && this.nodes.get(stream.node.id);
    if (!entry || entry.streamId !== stream.id) return;
    const keys = new Set<ServiceKey>();
    const listeners: string[] = [];
    for (const n of names) {
      const key = serviceNamed(typeUrl, n, entry.identity.namespace);
      if (!key) continue;
      keys.add(key);
      if (typeUrl === TYPE_URL.listener && !entry.apiListeners.has(n)) listeners.push(n);
    }
    const fresh = [...keys].filter((k) => !entry.learned.has(k) && !entry.identity.dependencies.includes(k));
    if (!fresh.length && !listeners.length) return;
    for (const k of fresh) entry.learned.add(k);
    for (const n of listeners) entry.apiListeners.add(n);
    this.opts.logger?.info('learned dependencies on demand', { node: entry.identity.id, services: fresh, ...(listeners.length ? { listeners } : {}) });
    this.leaveScope(entry.identity.id, entry.scope);
    await this.placeNode(entry);
  }

  /**
   * The reverse of {@link learn}: a service learned on demand stays while some name the stream
   * subscribes to names it (the names that taught it, or the clusters it brought); once the
   * client has unsubscribed every one (a proxy dropping a dependency unused for its TTL, a gRPC
   * client closing its channel), it leaves the node's scope and the pilot stops pushing it.
   */
  private async forget(stream: StreamInfo, typeUrl: string, names: readonly string[]): Promise<void> {
    const entry = stream.node && this.nodes.get(stream.node.id);
    if (!entry || entry.streamId !== stream.id) return;
    const ns = entry.identity.namespace;
    const candidates = new Set<ServiceKey>();
    const listeners: string[] = [];
    for (const n of names) {
      const key = serviceNamed(typeUrl, n, ns);
      if (key && entry.learned.has(key)) candidates.add(key);
      if (typeUrl === TYPE_URL.listener && entry.apiListeners.has(n)) listeners.push(n);
    }
    if (!candidates.size && !listeners.length) return;
    for (const [t, subscribed] of stream.namedSubscriptions?.() ?? []) {
      for (const n of subscribed) {
        const key = serviceNamed(t, n, ns);
        if (key) candidates.delete(key);
      }
    }
    if (!candidates.size && !listeners.length) return;
    for (const k of candidates) entry.learned.delete(k);
    for (const n of listeners) entry.apiListeners.delete(n);
    this.opts.logger?.info('forgot dependencies learned on demand', { node: entry.identity.id, services: [...candidates], ...(listeners.length ? { listeners } : {}) });
    this.leaveScope(entry.identity.id, entry.scope);
    await this.placeNode(entry);
  }

  // ---------------------------------------------------------------------------------------
  // Loading and translating services

  // ---------------------------------------------------------------------------------------
  // Snapshots

  /**
   * The node's listeners (and the inbound cluster), shared by every scope with the same ports and
   * own service; the inbound listener carries that service's RBAC filters (translate/authz.ts).
   */
  private listeners(port: number, appPort: number, appSocket: string | undefined, inbound?: readonly ServiceKey[], tls?: NodeTls): { listeners: XdsResource[]; clusters: XdsResource[] } {
    const guarded = (appPort || appSocket) && inbound ? inbound : [];
    const authz = guarded.map((k) => this.services.get(k)?.authz);
    // With mTLS, the TCP ports of the services the workload backs are served on its inbound listener by SNI.
    const { ports: tcpPorts, withheld } = tls ? this.inboundTcpPorts(guarded) : { ports: [], withheld: [] };
    const key = `${port}/${appSocket ? `unix:${appSocket}` : appPort}${authz.some(Boolean) ? `/${guarded.join(',')}` : ''}${tls ? `/${tls.mode}:${tls.sdsDir}` : ''}${tcpPorts.length ? `/tcp:${tcpPorts.map((p) => `${p.port}@${p.host}`).join(',')}` : ''}`;
    let l = this.listenersByPorts.get(key);
    if (!l || l.authz.length !== authz.length || l.authz.some((a, i) => a !== authz[i])) {
      // Accepted AuthorizationPolicies shape the inbound listener: its ACKs count for their status.
      const prov = authz.flatMap((a) => a?.verdicts ?? []).filter((v) => v.accepted).map((v) => ({ policy: authorizationProvenance(v.policy), generation: v.generation }));
      const filters = inboundAuthorization(guarded.map((k, i) => ({ key: k, authz: authz[i] })));
      if (withheld.length) this.opts.logger?.warn('TCP ports not served on the inbound listener: their service has AuthorizationPolicies, which raw TCP would bypass', { services: withheld });
      l = {
        listeners: generateListeners({ port, appPort, ...(appSocket ? { appSocket } : {}), ...(filters.length ? { inboundFilters: filters } : {}) }).map((m) => (tls && m.name === INBOUND ? inboundWithTls(m, tls, tcpPorts) : m)).map((m) =>
          makeResource(TYPE_URL.listener, m.name, Listener, m, 'listeners', m.name === OUTBOUND ? { references: [{ typeUrl: TYPE_URL.route, name: OUTBOUND }] } : m.name === INBOUND ? { provenance: prov } : {}),
        ),
        clusters: [...generateInboundClusters(appSocket || appPort), ...inboundTcpClusters(tcpPorts, appSocket ? undefined : appPort)].map((c) => makeResource(TYPE_URL.cluster, c.name, Cluster, c, 'listeners')),
        authz,
      };
      this.listenersByPorts.set(key, l);
    }
    return l;
  }

  /** TCP ports of the services a workload backs, in a stable order (translate/mtls.ts serves them on its inbound listener). */
  private inboundTcpPorts(services: readonly ServiceKey[]): { ports: InboundTcpPort[]; withheld: string[] } {
    return inboundTcpPortsOf(
      [...services].sort().flatMap((k) => {
        const s = this.services.get(k);
        return s?.data ? [{ service: s.data.service, guarded: s.authz !== undefined }] : [];
      }),
    );
  }

  /** The scope's TCP listeners (one per address, see translate/tcp.ts); conflicts are logged when they change. */
  private tcpListeners(scope: Scope, present: ServiceEntry[]): XdsResource[] {
    const sel = selectTcpListeners(
      present.map((s) => ({ key: s.key, tcpListeners: s.translation!.tcpListeners })),
      { ...(scope.appPort ? { appPort: scope.appPort } : {}), ...(scope.port ? { outboundPort: scope.port } : {}) },
    );
    const conflicts = sel.conflicts.map(describeConflict);
    if (conflicts.join('\n') !== scope.tcpConflicts.join('\n')) {
      scope.tcpConflicts = conflicts;
      if (conflicts.length) this.opts.logger?.warn('TCP ports without a listener', { scope: scope.deps, nodes: scope.nodes.size, conflicts });
    }
    return sel.listeners.map((l) => {
      let r = this.tcpResources.get(l);
      if (!r) {
        const cluster = tcpProxyCluster(l);
        r = makeResource(TYPE_URL.listener, l.name, Listener, l, 'listeners', cluster ? { references: [{ typeUrl: TYPE_URL.cluster, name: cluster }] } : {});
        this.tcpResources.set(l, r);
      }
      return r;
    });
  }

  /** RouteConfiguration `outbound` = name (field 1) + the deps' encoded virtual hosts (field 2), spliced without re-encoding. */
  private routeConfig(present: ServiceEntry[], callerNamespace: string): XdsResource {
    const parts = [lengthDelimited(1, Buffer.from(OUTBOUND))];
    for (const s of present) for (const v of splitServiceKey(s.key).namespace === callerNamespace ? s.vhosts : s.remoteVhosts) parts.push(lengthDelimited(2, v));
    const prov = present.flatMap((s) => (s.translation?.provenance ? [s.translation.provenance] : []));
    return resourceFromBytes(TYPE_URL.route, OUTBOUND, Buffer.concat(parts), 'routes', { provenance: prov });
  }

  /** The api_listeners of the names the scope's proxyless clients asked for that exist, and the route configurations they read. */
  private apiListeners(scope: Scope, present: ServiceEntry[]): { listeners: XdsResource[]; routes: XdsResource[] } {
    if (!scope.apiListeners.length) return { listeners: [], routes: [] };
    const byKey = new Map(present.map((s) => [s.key, s]));
    const listeners: XdsResource[] = [];
    const routes = new Map<string, XdsResource>();
    for (const name of scope.apiListeners) {
      const r = resolveApiListener(name, scope.namespace, (k) => byKey.get(k)?.proxylessRoutes);
      if (!r) continue;
      const refs = { references: [{ typeUrl: TYPE_URL.route, name: r.routeConfig }] };
      listeners.push(makeResource(TYPE_URL.listener, name, Listener, generateApiListener(name, r.routeConfig), 'proxyless', refs));
      routes.set(r.routeConfig, byKey.get(r.service)!.proxylessRoutes.find((c) => c.name === r.routeConfig)!);
    }
    return { listeners, routes: [...routes.values()] };
  }

  private scopeTypes(scope: Scope, only?: Set<string>): Record<string, XdsResource[]> {
    const present = scope.deps.flatMap((d) => {
      const s = this.services.get(d);
      return s?.translation ? [s] : [];
    });
    const out: Record<string, XdsResource[]> = {};
    const want = (t: string) => !only || only.has(t);
    const own = this.listeners(scope.port, scope.appPort, scope.appSocket, scope.inbound, scope.tls);
    const api = this.apiListeners(scope, present);
    if (want(TYPE_URL.listener)) out[TYPE_URL.listener] = [...own.listeners, ...this.tcpListeners(scope, present), ...api.listeners];
    if (want(TYPE_URL.route)) out[TYPE_URL.route] = [this.routeConfig(present, scope.namespace), ...api.routes];
    if (want(TYPE_URL.cluster)) out[TYPE_URL.cluster] = [...present.flatMap((s) => (scope.tls ? this.clustersWithTls(s, scope.tls) : s.clusters)), ...own.clusters];
    if (want(TYPE_URL.endpoint)) out[TYPE_URL.endpoint] = present.flatMap((s) => this.catalog.edsFor(s, scope.locality));
    if (want(GOVERNANCE)) out[GOVERNANCE] = present.flatMap((s) => (s.governance ? [s.governance] : []));
    if (want(UPGRADE)) out[UPGRADE] = [];
    return out;
  }

  /**
   * A service's clusters for nodes with TLS: each with its transport socket (and, for an HTTP
   * port, `auto_config`) appended, once per cluster version and SDS directory.
   */
  private clustersWithTls(s: ServiceEntry, tls: NodeTls): XdsResource[] {
    const key = `${tls.mode}:${tls.sdsDir}`;
    const namespace = splitServiceKey(s.key).namespace;
    const protocols = new Map((s.data?.service.spec.ports ?? []).map((p) => [p.port, p.protocol]));
    return s.clusters.map((c) => {
      let byDir = this.tlsClusters.get(c);
      if (!byDir) this.tlsClusters.set(c, (byDir = new Map()));
      let r = byDir.get(key);
      if (!r) {
        // A cluster name Pilot did not make has no port to look up: TLS only, no ALPN, no protocol choice.
        const parsed = parseClusterName(c.name);
        const protocol = protocols.get(parsed?.port ?? 0) ?? 'tcp';
        r = resourceFromBytes(TYPE_URL.cluster, c.name, Buffer.concat([c.any.value, clusterTlsFields(tls, namespace, protocol, parsed)]), c.generator, { references: c.references, provenance: c.provenance });
        byDir.set(key, r);
      }
      return r;
    });
  }

  private buildScopeSnapshot(scope: Scope): Snapshot {
    return Snapshot.of(this.scopeTypes(scope)).assertConsistent();
  }

  /** Publishes the node's snapshot: its scope's, plus its UpgradeTarget when a rollout covers it. */
  private publishNode(entry: NodeEntry, scopeSnapshot: Snapshot, changedAt?: number): void {
    const target = this.proxyVersions.length ? targetFor(entry.identity, this.proxyVersions) : undefined;
    const snap = target ? scopeSnapshot.with({ [UPGRADE]: [makeResource(UPGRADE, entry.identity.id, UpgradeTarget, target, 'upgrade')] }) : scopeSnapshot;
    const prev = this.cache.getSnapshot(entry.identity.id);
    if (changedAt !== undefined && prev)
      for (const t of snap.typeUrls()) if (snap.version(t) !== prev.version(t)) this.sync.changed(entry.identity.id, t, snap.version(t), changedAt);
    this.cache.publish(entry.identity.id, snap);
  }

  // ---------------------------------------------------------------------------------------
  // Changes

  private async applyChanges(batch: MeshChange[], firstAt: number): Promise<void> {
    const kinds = new Map<ServiceKey, 'endpoints' | 'full'>();
    /** Services of a backing namespace whose Service or endpoints changed: who backs them is fetched again. */
    const backingChanged = new Set<ServiceKey>();
    let resync = false;
    for (const c of batch) {
      if (c.kind === 'resync') {
        resync = true;
        for (const k of this.services.keys()) kinds.set(k, 'full');
        continue;
      }
      if ((c.kind === 'service' || c.kind === 'endpoints') && this.backings.has(changeNamespace(c)!)) backingChanged.add(c.service);
      if (this.services.has(c.service)) kinds.set(c.service, c.kind === 'endpoints' && kinds.get(c.service) !== 'full' ? 'endpoints' : 'full');
    }
    if (resync) await this.reloadBackings();
    if (!kinds.size && !backingChanged.size) return;
    const data = await this.catalog.fetch([...new Set([...kinds.keys(), ...backingChanged])]);
    if (!resync && backingChanged.size) {
      // Only the nodes a changed backing concerns, before or after, are looked at again: endpoint
      // churn that keeps the same workloads and instances costs nothing per node.
      const moved: ServiceBacking[] = [];
      for (const k of backingChanged) {
        const byService = this.backings.get(changeNamespace({ kind: 'service', service: k })!);
        if (!byService) continue;
        const d = data.get(k);
        const was = byService.get(k);
        const now = d ? backingOf(k, d) : undefined;
        if (now) byService.set(now);
        else byService.delete(k);
        if (JSON.stringify(was) !== JSON.stringify(now)) moved.push(...(was ? [was] : []), ...(now ? [now] : []));
      }
      if (moved.length) this.replaceMovedNodes(new Set(moved.map((b) => b.service.slice(0, b.service.indexOf('/')))), (id) => moved.some((b) => backs(id, b)));
    }
    const changedTypes = new Map<string, Set<string>>(); // scope → types to rebuild
    for (const [key, kind] of kinds) {
      const s = this.services.get(key);
      if (!s) continue;
      const d = data.get(key);
      let types: string[];
      if (kind === 'endpoints' && this.catalog.updateEndpoints(s, d)) {
        types = [TYPE_URL.endpoint];
      } else {
        this.catalog.retranslate(s, d);
        types = [TYPE_URL.listener, TYPE_URL.route, TYPE_URL.cluster, TYPE_URL.endpoint, GOVERNANCE];
      }
      for (const sk of s.scopes) {
        let set = changedTypes.get(sk);
        if (!set) changedTypes.set(sk, (set = new Set()));
        for (const t of types) set.add(t);
      }
    }
    const publish: { entry: NodeEntry; scope: Scope }[] = [];
    for (const [sk, types] of changedTypes) {
      const scope = this.scopes.get(sk);
      if (!scope?.snapshot) continue;
      try {
        scope.snapshot = scope.snapshot.with(this.scopeTypes(scope, types)).assertConsistent();
      } catch (err) {
        this.opts.logger?.error('snapshot not published: inconsistent', { scope: scope.deps, error: (err as Error).message });
        continue;
      }
      for (const n of scope.nodes) {
        const entry = this.nodes.get(n);
        if (entry) publish.push({ entry, scope });
      }
    }
    // Publish in slices, yielding between them: the first proxies' responses are flushed and
    // their ACKs handled while later ones are still being written, instead of every socket
    // waiting for the whole loop (it also keeps the event loop responsive for new streams).
    for (let i = 0; i < publish.length; i += PUBLISH_SLICE) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      for (const { entry, scope } of publish.slice(i, i + PUBLISH_SLICE))
        if (this.nodes.get(entry.identity.id) === entry && entry.scope === scope.key && scope.snapshot) this.publishNode(entry, scope.snapshot, firstAt);
    }
  }

  /** Replaces the ProxyVersion rollouts; every node's UpgradeTarget is recomputed and pushed if it changed. */
  setProxyVersions(pvs: readonly ProxyVersion[]): void {
    this.proxyVersions = pvs;
    const at = this.now();
    for (const entry of this.nodes.values()) {
      const scope = this.scopes.get(entry.scope);
      if (scope?.snapshot) this.publishNode(entry, scope.snapshot, at);
    }
  }

  /**
   * Keeps {@link inboundNodes}: a node with an inbound listener came (+1) or went (-1). The scan of
   * every node this replaced ran at each scope created or dropped — in a re-home storm at 10,000
   * sidecars (bench/scale) ~5 % of the surviving pilot's CPU, hundreds of scans of thousands of nodes.
   */
  private countInbound(identity: NodeIdentity, delta: 1 | -1): void {
    if (!identity.appPort && !identity.appSocket) return;
    const n = (this.inboundNodes.get(identity.namespace) ?? 0) + delta;
    if (n > 0) this.inboundNodes.set(identity.namespace, n);
    else this.inboundNodes.delete(identity.namespace);
  }

  private watchChanged(): void {
    if (this.watchDirty) return;
    this.watchDirty = true;
    queueMicrotask(() => {
      this.watchDirty = false;
      // Namespaces no node with an inbound listener is in any more are forgotten (read again when one comes).
      for (const ns of [...this.backings.keys()]) if (!this.inboundNodes.has(ns) && !this.backingLoads.has(ns)) this.backings.delete(ns);
      this.watch.update(this.services.keys(), this.backings.keys());
    });
  }

  // ---------------------------------------------------------------------------------------
  // Which services a node's workload backs (its inbound listener enforces their policies)

  /** Loads who backs the services of a namespace, once; later changes arrive as service/endpoints changes. */
  private loadBacking(namespace: string): Promise<void> {
    // While the first list is in flight the namespace's map exists but is incomplete: wait for it
    // (a node placed from it would guard too few services — fail open).
    let p = this.backingLoads.get(namespace);
    if (!p && this.backings.has(namespace)) return Promise.resolve();
    if (!p) {
      // Watch the namespace first: a change committed while the list is in flight is then
      // notified after it, and its fetch (applied after this load) is at least as new.
      this.backings.set(namespace, new BackingIndex());
      this.watchChanged();
      p = this.listBacking(namespace).finally(() => this.backingLoads.delete(namespace));
      this.backingLoads.set(namespace, p);
    }
    return p;
  }

  private async listBacking(namespace: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const list = await this.opts.source.backing(namespace);
        const byService = this.backings.get(namespace);
        if (!byService) return;
        // Changes applied meanwhile are newer than the list: keep them, add what they did not touch.
        for (const b of list) if (!byService.has(b.service)) byService.set(b);
        return;
      } catch (err) {
        const wait = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.opts.metrics?.backingFailures.inc({ where: 'list' });
        this.opts.logger?.warn('listing who backs the services of a namespace failed; retrying', { namespace, error: (err as Error).message, waitMs: Math.round(wait) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** After a resync: every backing namespace listed again, and the nodes whose services changed re-placed. */
  private async reloadBackings(): Promise<void> {
    const namespaces = [...this.backings.keys()];
    await Promise.all(
      namespaces.map(async (ns) => {
        try {
          const list = await this.opts.source.backing(ns);
          if (this.backings.has(ns)) this.backings.set(ns, new BackingIndex(list));
        } catch (err) {
          // Changes may have been missed: keep the last view and resync again shortly.
          this.opts.metrics?.backingFailures.inc({ where: 'resync' });
          this.opts.logger?.warn('listing who backs the services of a namespace after a resync failed; resyncing again in 1 s', { namespace: ns, error: (err as Error).message });
          setTimeout(() => this.debouncer.add({ kind: 'resync' }), 1000).unref();
        }
      }),
    );
    this.replaceMovedNodes(new Set(namespaces));
  }

  /**
   * Re-places each node of these namespaces whose backed services changed: its scope (and so its
   * inbound listener's RBAC) changes, and only it gets a new snapshot.
   */
  private replaceMovedNodes(namespaces: ReadonlySet<string>, concerned: (id: NodeIdentity) => boolean = () => true): void {
    for (const entry of [...this.nodes.values()]) {
      const id = entry.identity;
      if (!namespaces.has(id.namespace) || !(id.appPort || id.appSocket) || !concerned(id)) continue;
      const now = this.backings.get(id.namespace)?.guarded(id) ?? [];
      const was = this.scopes.get(entry.scope)?.inbound ?? [];
      if (now.join(',') === was.join(',')) continue;
      this.opts.logger?.info('services a sidecar guards changed', { node: id.id, workload: id.app ?? '', was, now });
      this.leaveScope(id.id, entry.scope);
      void this.placeNode(entry).catch((err: unknown) => {
        this.opts.metrics?.backingFailures.inc({ where: 'place' });
        this.opts.logger?.error('re-placing a node whose guarded services changed failed', { node: id.id, error: (err as Error).message });
      });
    }
  }

  // ---------------------------------------------------------------------------------------
  // ACKs and status

  private onAck(s: StreamInfo, typeUrl: string, version: string): void {
    const id = s.node!.id;
    const ms = this.sync.acked(id, typeUrl, version);
    if (ms !== undefined) {
      this.opts.metrics?.pushLatency.observe({ type: shortName(typeUrl) }, ms / 1000);
      this.opts.onPropagated?.(id, typeUrl, ms);
    }
    this.recordPolicies(id, typeUrl, version, 'acked');
  }

  private onNack(s: StreamInfo, typeUrl: string, version: string, error: string): void {
    const id = s.node!.id;
    this.sync.nacked(id, typeUrl, version, error);
    this.opts.metrics?.nacks.inc({ type: shortName(typeUrl) });
    this.opts.logger?.warn('proxy rejected configuration', { node: id, type: shortName(typeUrl), version, error });
    this.recordPolicies(id, typeUrl, version, 'nacked');
  }

  private recordPolicies(nodeId: string, typeUrl: string, version: string, how: 'acked' | 'nacked'): void {
    if (typeUrl !== TYPE_URL.route && typeUrl !== TYPE_URL.cluster && typeUrl !== TYPE_URL.listener) return;
    const entry = this.nodes.get(nodeId);
    const ts = this.cache.getSnapshot(nodeId)?.get(typeUrl);
    if (!entry || ts?.version !== version) return;
    for (const r of ts.resources.values()) for (const p of r.provenance) entry[how].set(p.policy, p.generation);
  }

  /**
   * Records what a sidecar's LEGO agent reports. False when the node has no stream to this pilot:
   * statuses are kept only for the sidecars a pilot serves (the proxy reports again after it
   * reconnects, wherever it lands).
   */
  reportAgentStatus(nodeId: string, status: AgentStatus): boolean {
    const entry = this.nodes.get(nodeId);
    if (!entry) return false;
    entry.agent = status;
    return true;
  }

  /** Per ProxyVersion, the sidecars of this pilot in scope, targeted, upgraded, ready and failed. */
  rollouts(): RolloutAggregate[] {
    return rolloutAggregates([...this.nodes.values()].map((n) => ({ identity: n.identity, ...(n.agent ? { agent: n.agent } : {}) })), this.proxyVersions);
  }

  /** Status of every RoutePolicy targeting a service Pilot holds (accepted or why not, sidecar counts). */
  routePolicyStatuses(): { policy: string; target: ServiceKey; status: ReturnType<typeof routePolicyStatus> }[] {
    const views: SidecarPolicyView[] = [...this.nodes.values()].map((n) => ({
      dependsOn: new Set(this.scopes.get(n.scope)?.deps ?? []),
      acked: n.acked,
      nacked: n.nacked,
    }));
    const out: { policy: string; target: ServiceKey; status: ReturnType<typeof routePolicyStatus> }[] = [];
    let rejected = 0;
    for (const s of this.services.values())
      for (const v of s.translation?.verdicts ?? []) {
        if (!v.accepted) rejected++;
        out.push({ policy: v.policy, target: s.key, status: routePolicyStatus({ ...v, target: s.key }, views) });
      }
    this.opts.metrics?.rejectedPolicies.set(rejected);
    return out;
  }

  /**
   * Status of every AuthorizationPolicy of a service whose instances this pilot serves (accepted
   * or why not; of those instances' sidecars, how many ACKed/NACKed its generation).
   */
  authorizationPolicyStatuses(): { policy: string; target: ServiceKey; status: AuthorizationPolicyStatus }[] {
    const views = [...this.nodes.values()].map((n) => ({ inbound: this.scopes.get(n.scope)?.inbound ?? [], acked: n.acked, nacked: n.nacked }));
    const out: { policy: string; target: ServiceKey; status: AuthorizationPolicyStatus }[] = [];
    let rejected = 0;
    for (const s of this.services.values())
      for (const v of s.authz?.verdicts ?? []) {
        if (!v.accepted) rejected++;
        out.push({ policy: v.policy, target: s.key, status: authorizationPolicyStatus({ ...v, target: s.key }, views) });
      }
    this.opts.metrics?.rejectedAuthorizationPolicies.set(rejected);
    return out;
  }

  /** For the debug API. */
  describe(): {
    nodes: { id: string; namespace: string; workload: string; scope: string[]; guards?: string[]; learned: string[]; apiListeners?: string[]; streamId: number; tcpConflicts?: string[] }[];
    services: { key: string; error?: string; clusters: number; verdicts: PolicyVerdict[] }[];
    scopes: number;
  } {
    return {
      nodes: [...this.nodes.values()].map((n) => {
        const scope = this.scopes.get(n.scope);
        return {
          id: n.identity.id,
          namespace: n.identity.namespace,
          workload: n.identity.app ?? '',
          scope: scope?.deps ?? [],
          // The services whose AuthorizationPolicies its inbound listener enforces.
          ...(scope?.inbound ? { guards: scope.inbound } : {}),
          learned: [...n.learned],
          ...(n.apiListeners.size ? { apiListeners: [...n.apiListeners] } : {}),
          streamId: n.streamId,
          ...(scope?.tcpConflicts.length ? { tcpConflicts: scope.tcpConflicts } : {}),
        };
      }),
      services: [...this.services.values()].map((s) => ({ key: s.key, ...(s.error ? { error: s.error } : {}), clusters: s.clusters.length, verdicts: s.translation?.verdicts ?? [] })),
      scopes: this.scopes.size,
    };
  }

  get connectedNodes(): number {
    return this.nodes.size;
  }

  /** Resolves once queued changes are applied (tests, benches, shutdown). */
  idle(): Promise<void> {
    return this.debouncer.idle();
  }

  close(): void {
    this.debouncer.close();
    this.watch.close();
  }
}

/** Every service a scope needs loaded: its dependencies and those its workload backs (for the inbound listener's RBAC). */
const scopeServices = (scope: Scope): ServiceKey[] => (scope.inbound ? [...new Set([...scope.deps, ...scope.inbound])] : scope.deps);

const shortName = (typeUrl: string) => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);

/**
 * The service a resource name a client asks for names, if any: a cluster or load assignment
 * name (`outbound|<port>|<subset>|<name>.<ns>.svc`, any port — the whole service is learned), a
 * proxyless listener name, or a ServiceGovernance name (`<name>.<ns>.svc`).
 */
function serviceNamed(typeUrl: string, name: string, namespace: string): ServiceKey | undefined {
  if (typeUrl === TYPE_URL.listener) return parseListenerName(name, namespace)?.service;
  if (typeUrl === TYPE_URL.cluster || typeUrl === TYPE_URL.endpoint) return parseClusterName(name)?.service;
  if (typeUrl === GOVERNANCE) {
    const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc$/.exec(name);
    return m ? `${m[2]}/${m[1]}` : undefined;
  }
  return undefined;
}
