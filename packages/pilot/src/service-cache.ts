/**
 * The services Pilot holds — only those its connected sidecars depend on — each with its
 * translation and the xDS resources made from it, serialised once and shared by every scope that
 * includes the service. Loads are batched: nodes arriving together cost one fetch.
 */
import { Cluster, ClusterLoadAssignment, RouteConfiguration, TYPE_URL, VirtualHost } from '@octo-mesh/proto';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import type { Logger } from '@octo-mesh/runtime';
import type { PilotMetrics } from './metrics.js';
import { splitServiceKey, type Locality, type ServiceData, type ServiceKey } from './model.js';
import type { MeshSource } from './source.js';
import { virtualHostsFor } from './translate/routes.js';
import { translateEndpoints, translateService, type ServiceTranslation } from './translate/service.js';
import { translateAuthorization, type AuthorizationTranslation } from './translate/authz.js';
import { makeResource, type Provenance, type XdsResource } from './xds/resource.js';

const GOVERNANCE = TYPE_URL.serviceGovernance;

/** Key of a caller locality, for load assignments cached per locality. */
export const localityKey = (l: Locality | undefined): string => (l ? `${l.region ?? ''}/${l.zone ?? ''}` : '');

export interface ServiceEntry {
  key: ServiceKey;
  /** Fetched at least once (data may still be absent: the service does not exist). */
  loaded: boolean;
  data?: ServiceData;
  translation?: ServiceTranslation;
  /** Why the service could not be translated (bad service data). */
  error?: string;
  /**
   * Its AuthorizationPolicies as RBAC filters for the inbound listeners of its instances; absent
   * when it has none (or is not loaded). Independent of the routing translation: a service whose
   * routing cannot be translated still has its access rules enforced.
   */
  authz?: AuthorizationTranslation;
  clusters: XdsResource[];
  governance?: XdsResource;
  /** Encoded VirtualHosts, spliced into each scope's route configuration: for callers in the service's namespace, and for the others (no bare-name domains). */
  vhosts: Buffer[];
  remoteVhosts: Buffer[];
  /** Route configurations for proxyless gRPC clients, one per HTTP port (translate/proxyless.ts), in port order. */
  proxylessRoutes: XdsResource[];
  /** Load assignments per caller locality key. */
  eds: Map<string, XdsResource[]>;
  /** Scopes that include the service. */
  scopes: Set<string>;
}

export class ServiceCache {
  readonly entries = new Map<ServiceKey, ServiceEntry>();
  private readonly loading = new Map<ServiceKey, Promise<void>>();
  private loadBatch: { keys: Set<ServiceKey>; done: Promise<void> } | undefined;

  constructor(
    private readonly source: MeshSource,
    private readonly logger?: Logger,
    private readonly metrics?: PilotMetrics,
  ) {}

  /** The entry of a service, created (not loaded) when absent. */
  entry(key: ServiceKey): ServiceEntry {
    let s = this.entries.get(key);
    if (!s) this.entries.set(key, (s = { key, loaded: false, clusters: [], vhosts: [], remoteVhosts: [], proxylessRoutes: [], eds: new Map(), scopes: new Set() }));
    return s;
  }

  /** Fetches the services not loaded yet; concurrent callers share one fetch per tick. */
  async ensureLoaded(keys: readonly ServiceKey[]): Promise<void> {
    await this.loadOnce(keys);
    // A load that finished after its entry was dropped (every node needing it left) and
    // re-created (another node arrived) loaded nothing into the new entry: load again.
    const again = keys.filter((k) => this.entries.has(k) && !this.entries.get(k)!.loaded);
    if (again.length) await this.ensureLoaded(again);
  }

  private loadOnce(keys: readonly ServiceKey[]): Promise<unknown> {
    const waits: Promise<void>[] = [];
    for (const k of keys) {
      const s = this.entries.get(k);
      if (s?.loaded) continue;
      let p = this.loading.get(k);
      if (!p) {
        if (!this.loadBatch) {
          const batch = { keys: new Set<ServiceKey>(), done: undefined as unknown as Promise<void> };
          batch.done = new Promise<void>((r) => setImmediate(r)).then(() => this.loadNow(batch.keys));
          this.loadBatch = batch;
        }
        this.loadBatch.keys.add(k);
        p = this.loadBatch.done;
        this.loading.set(k, p);
      }
      waits.push(p);
    }
    return Promise.all(waits);
  }

  private async loadNow(keys: Set<ServiceKey>): Promise<void> {
    if (this.loadBatch?.keys === keys) this.loadBatch = undefined;
    const list = [...keys];
    try {
      const data = await this.fetch(list);
      for (const k of list) {
        const s = this.entries.get(k);
        // Already loaded by a change applied meanwhile, from a fetch that started later: keep that.
        if (s && !s.loaded) this.retranslate(s, data.get(k));
      }
    } finally {
      for (const k of list) this.loading.delete(k);
    }
  }

  async fetch(keys: ServiceKey[]): Promise<Map<ServiceKey, ServiceData>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.source.fetch(keys);
      } catch (err) {
        const wait = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.logger?.warn('fetch from mesh source failed; retrying', { error: (err as Error).message, services: keys.length, waitMs: Math.round(wait) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Full translation of one service; keeps the previous resource objects when their bytes did not change. */
  retranslate(s: ServiceEntry, data: ServiceData | undefined): void {
    this.metrics?.translations.inc({ kind: 'full' });
    s.loaded = true;
    delete s.error;
    s.eds.clear();
    this.retranslateAuthorization(s, data);
    if (!data) {
      delete s.data;
      delete s.translation;
      delete s.governance;
      s.clusters = [];
      s.vhosts = [];
      s.remoteVhosts = [];
      s.proxylessRoutes = [];
      return;
    }
    s.data = data;
    try {
      const t = translateService(data);
      const prov: Provenance[] = t.provenance ? [t.provenance] : [];
      s.translation = t;
      s.clusters = reuse(
        s.clusters,
        t.clusters.map((c) =>
          makeResource(TYPE_URL.cluster, c.name, Cluster, c, 'clusters', {
            references: [{ typeUrl: TYPE_URL.endpoint, name: c.edsClusterConfig?.serviceName || c.name }],
            provenance: prov,
          }),
        ),
      );
      s.vhosts = t.virtualHosts.map((v) => Buffer.from(VirtualHost.encode(v).finish()));
      s.remoteVhosts = virtualHostsFor(t.virtualHosts, splitServiceKey(s.key).namespace, '').map((v) => Buffer.from(VirtualHost.encode(v).finish()));
      s.proxylessRoutes = reuse(
        s.proxylessRoutes,
        t.proxylessRoutes.map((r) => makeResource(TYPE_URL.route, r.name, RouteConfiguration, r, 'proxyless', { provenance: prov })),
      );
      s.governance = reuse(s.governance ? [s.governance] : [], [makeResource(GOVERNANCE, t.governance.service, ServiceGovernance, t.governance, 'governance', { provenance: prov })])[0];
      for (const v of t.verdicts.filter((x) => !x.accepted)) this.logger?.warn('RoutePolicy rejected', { routePolicy: v.policy, generation: v.generation, reason: v.reason });
    } catch (err) {
      s.error = (err as Error).message;
      delete s.translation;
      delete s.governance;
      s.clusters = [];
      s.vhosts = [];
      s.remoteVhosts = [];
      s.proxylessRoutes = [];
      this.logger?.error('service left out: cannot translate it', { service: s.key, error: s.error });
    }
  }

  private retranslateAuthorization(s: ServiceEntry, data: ServiceData | undefined): void {
    const policies = data?.authorizationPolicies ?? [];
    if (!policies.length) {
      delete s.authz;
      return;
    }
    s.authz = translateAuthorization(policies);
    for (const v of s.authz.verdicts.filter((x) => !x.accepted))
      this.logger?.warn('AuthorizationPolicy rejected: enforced fail-closed', { authorizationPolicy: v.policy, generation: v.generation, action: v.action, reason: v.reason });
  }

  edsFor(s: ServiceEntry, locality: Locality | undefined): XdsResource[] {
    const lk = localityKey(locality);
    let eds = s.eds.get(lk);
    if (!eds) {
      if (!s.data || !s.translation) eds = [];
      else {
        try {
          const prov: Provenance[] = s.translation.provenance ? [s.translation.provenance] : [];
          eds = translateEndpoints(s.data, s.translation, locality).map((c) => makeResource(TYPE_URL.endpoint, c.clusterName, ClusterLoadAssignment, c, 'endpoints', { provenance: prov }));
        } catch (err) {
          // Bad endpoint data: keep the clusters, with no endpoints, rather than none at all.
          this.logger?.error('endpoints left out', { service: s.key, error: (err as Error).message });
          eds = s.clusters.map((c) => makeResource(TYPE_URL.endpoint, c.name, ClusterLoadAssignment, ClusterLoadAssignment.fromPartial({ clusterName: c.name }), 'endpoints'));
        }
      }
      s.eds.set(lk, eds);
    }
    return eds;
  }

  /**
   * Applies an endpoints-only change when the service and its policies are unchanged; returns
   * false when a full re-translation is needed instead.
   */
  updateEndpoints(s: ServiceEntry, d: ServiceData | undefined): boolean {
    if (!s.translation || !d || !sameService(s.data, d)) return false;
    this.metrics?.translations.inc({ kind: 'endpoints' });
    s.data = { ...s.data!, endpoints: d.endpoints };
    s.eds.clear();
    return true;
  }
}

/** Keeps old resource objects whose bytes did not change, so caches keyed on them stay warm. */
function reuse(old: readonly XdsResource[], next: XdsResource[]): XdsResource[] {
  const key = (r: XdsResource) => `${r.name}@${r.version}@${JSON.stringify(r.provenance)}`;
  const byKey = new Map(old.map((r) => [key(r), r]));
  return next.map((r) => byKey.get(key(r)) ?? r);
}

/** Same service definition (ports, names): an endpoints-only change can skip re-translation. */
function sameService(a: ServiceData | undefined, b: ServiceData): boolean {
  if (!a) return false;
  const same = <T>(x: T, y: T) => x === y || JSON.stringify(x) === JSON.stringify(y);
  return same(a.service, b.service) && same(a.policies, b.policies) && same(a.authorizationPolicies ?? [], b.authorizationPolicies ?? []);
}
