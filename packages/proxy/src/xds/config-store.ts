import { createHash } from 'node:crypto';
import { TYPE_URL, unpackAny } from '@octo-mesh/proto/proxy-codecs.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';

/** OCTO's per-service governance that Envoy's types lack (policy identity, central health check). */
const SERVICE_GOVERNANCE = TYPE_URL.serviceGovernance;
import type { ClusterModel, EndpointSet, ListenerModel, ProxySnapshot, Result, RouteTable } from '../model.js';
import { RESOURCE_TYPES, resourceName, translateResource, type ResourceTypeUrl, type Translated } from '../translate/index.js';

type Store<T extends ResourceTypeUrl> = Map<string, Translated[T]>;

/** One resource as received: its name, its translated model, the version it came with and a digest of its bytes. */
interface Entry<T> {
  value: T;
  version: string;
  digest: string;
}

/**
 * What applying a response gave: the snapshot, or why it was refused. `unchanged`: every resource
 * of the response is byte for byte one in force (and, for a listener or cluster response, the set
 * is the same), so nothing was decoded or rebuilt — only the version moved; the update needs no
 * putting in force and is ACKed at once.
 */
export type ApplyResult = { ok: true; value: ProxySnapshot; unchanged?: true } | { ok: false; error: string };

/** The digest a resource's bytes are compared by (a SHA-1 of its type URL and value: a fingerprint, not a security check). */
const digestOf = (any: Any): string => createHash('sha1').update(any.typeUrl).update('\n').update(any.value).digest('base64');

/**
 * The configuration the proxy holds: static resources from the bootstrap plus what xDS sent,
 * translated. Every update is validated as a whole before anything changes, so a rejected one
 * leaves the last good config in force; a successful one yields a new immutable snapshot.
 *
 * State-of-the-world semantics: a Listener or Cluster response is the complete set; a
 * RouteConfiguration or ClusterLoadAssignment response updates the names it carries (Envoy's
 * rule), and entries no longer referenced are dropped when the snapshot is built.
 */
export class ConfigStore {
  private readonly dynamic: { [T in ResourceTypeUrl]: Map<string, Entry<Translated[T]>> } = {
    [TYPE_URL.listener]: new Map(),
    [TYPE_URL.route]: new Map(),
    [TYPE_URL.cluster]: new Map(),
    [TYPE_URL.endpoint]: new Map(),
  };
  private readonly versions: Record<string, string> = {};
  private current: ProxySnapshot;
  /** The OCTO UpgradeTarget last received, as JSON. */
  upgradeTarget: unknown;
  /** OCTO ServiceGovernance by service host, as JSON (shown in /config_dump; its health check drives the P2P checks). */
  private governance = new Map<string, unknown>();

  constructor(
    private readonly staticListeners: Store<typeof TYPE_URL.listener> = new Map(),
    private readonly staticClusters: Store<typeof TYPE_URL.cluster> = new Map(),
    private readonly staticRoutes: Store<typeof TYPE_URL.route> = new Map(),
    private readonly staticEndpoints: Store<typeof TYPE_URL.endpoint> = new Map(),
  ) {
    this.current = this.build();
  }

  get snapshot(): ProxySnapshot {
    return this.current;
  }

  /**
   * Remembers the state now; calling the returned function puts it back (an update that was
   * accepted here but could not be put in force — e.g. a listener address that cannot be bound).
   */
  checkpoint(): () => void {
    const dynamic = Object.entries(this.dynamic).map(([k, m]) => [k, new Map(m as Map<string, unknown>)] as const);
    const versions = { ...this.versions };
    const { current, upgradeTarget, governance } = this;
    return () => {
      for (const [k, m] of dynamic) {
        const store = this.dynamic[k as ResourceTypeUrl] as Map<string, unknown>;
        store.clear();
        for (const [name, e] of m) store.set(name, e);
      }
      for (const k of Object.keys(this.versions)) delete this.versions[k];
      Object.assign(this.versions, versions);
      this.current = current;
      this.upgradeTarget = upgradeTarget;
      this.governance = governance;
    };
  }

  /** The OCTO ServiceGovernance in force, as JSON by service host (the P2P checks read its health check). */
  get serviceGovernance(): ReadonlyMap<string, unknown> {
    return this.governance;
  }

  version(typeUrl: string): string {
    return this.versions[typeUrl] ?? '';
  }

  /** Decodes and translates every resource; the first failure rejects the whole response. */
  private decodeAll<T extends ResourceTypeUrl>(typeUrl: T, resources: readonly { any: Any; version: string; digest: string }[]): Result<Map<string, Entry<Translated[T]>>> {
    const out = new Map<string, Entry<Translated[T]>>();
    for (const { any, version, digest } of resources) {
      const msg = unpackAny(any, typeUrl);
      if (!msg.ok) return { ok: false, error: msg.error };
      const name = resourceName(typeUrl, msg.value);
      if (out.has(name)) return { ok: false, error: `duplicate resource ${JSON.stringify(name)}` };
      const r = translateResource(typeUrl, msg.value);
      if (!r.ok) return r;
      out.set(name, { value: r.value, version, digest });
    }
    return { ok: true, value: out };
  }

  /** Applies a state-of-the-world response. On error nothing changes. */
  applySotw(typeUrl: string, version: string, resources: readonly Any[]): ApplyResult {
    if (typeUrl === TYPE_URL.upgradeTarget) return this.applyUpgradeTarget(version, resources);
    if (typeUrl === SERVICE_GOVERNANCE) return this.applyGovernance(version, resources, [], true);
    if (!isResourceType(typeUrl)) return { ok: false, error: `unsupported type ${typeUrl}` };
    const received = resources.map((any) => ({ any, version, digest: digestOf(any) }));
    const store = this.dynamic[typeUrl] as Map<string, Entry<unknown>>;
    // A listener or cluster response is the whole set: unchanged only when it is the same set.
    const whole = typeUrl === TYPE_URL.listener || typeUrl === TYPE_URL.cluster;
    const held = new Map([...store].map(([name, e]) => [e.digest, name]));
    const digests = new Set(received.map((r) => r.digest));
    if (digests.size === received.length && (!whole || store.size === received.length) && received.every((r) => r.any.typeUrl === typeUrl && held.has(r.digest)))
      return this.keep(typeUrl, version, received.map((r) => [held.get(r.digest)!, version]));
    const decoded = this.decodeAll(typeUrl, received);
    if (!decoded.ok) return decoded;
    if (typeUrl === TYPE_URL.listener || typeUrl === TYPE_URL.cluster) store.clear();
    for (const [k, v] of decoded.value) store.set(k, v);
    this.versions[typeUrl] = version;
    this.current = this.build();
    return { ok: true, value: this.current };
  }

  /** Applies an incremental (delta xDS) response. On error nothing changes. */
  applyDelta(typeUrl: string, version: string, resources: readonly { name: string; version: string; any: Any }[], removed: readonly string[]): ApplyResult {
    if (typeUrl === TYPE_URL.upgradeTarget) return this.applyUpgradeTarget(version, resources.map((r) => r.any));
    if (typeUrl === SERVICE_GOVERNANCE) return this.applyGovernance(version, resources.map((r) => r.any), removed, false);
    if (!isResourceType(typeUrl)) return { ok: false, error: `unsupported type ${typeUrl}` };
    const received = resources.map((r) => ({ ...r, digest: digestOf(r.any) }));
    const held = this.dynamic[typeUrl] as Map<string, Entry<unknown>>;
    if (
      removed.every((n) => !held.has(n)) &&
      new Set(received.map((r) => r.name)).size === received.length &&
      received.every((r) => r.any.typeUrl === typeUrl && held.get(r.name)?.digest === r.digest)
    )
      return this.keep(typeUrl, version, received.map((r) => [r.name, r.version]));
    const decoded = this.decodeAll(typeUrl, received);
    if (!decoded.ok) return decoded;
    for (const r of resources) {
      const got = [...decoded.value.keys()];
      if (!got.includes(r.name)) return { ok: false, error: `resource named ${JSON.stringify(r.name)} does not carry that name (got ${got.join(', ')})` };
    }
    const store = this.dynamic[typeUrl] as Map<string, Entry<unknown>>;
    for (const name of removed) store.delete(name);
    for (const [k, v] of decoded.value) store.set(k, v);
    this.versions[typeUrl] = version;
    this.current = this.build();
    return { ok: true, value: this.current };
  }

  /**
   * An update whose resources are all in force already: only the versions move (the type's, and
   * each resource's as `/config_dump` and a delta stream's `initial_resource_versions` report it).
   * The snapshot keeps every model and map; nothing is translated or rebuilt.
   */
  private keep(typeUrl: ResourceTypeUrl, version: string, resourceVersions: readonly (readonly [string, string])[]): ApplyResult {
    const store = this.dynamic[typeUrl] as Map<string, Entry<unknown>>;
    for (const [name, v] of resourceVersions) {
      const e = store.get(name)!;
      if (e.version !== v) store.set(name, { ...e, version: v }); // a new entry: a checkpoint taken before still holds the old one
    }
    this.versions[typeUrl] = version;
    this.current = { ...this.current, versions: { ...this.versions } };
    return { ok: true, value: this.current, unchanged: true };
  }

  private applyUpgradeTarget(version: string, resources: readonly Any[]): Result<ProxySnapshot> {
    const last = resources[resources.length - 1];
    if (last) {
      const r = unpackAny(last, TYPE_URL.upgradeTarget);
      if (!r.ok) return r;
      this.upgradeTarget = r.value;
    }
    this.versions[TYPE_URL.upgradeTarget] = version;
    return { ok: true, value: this.current };
  }

  private applyGovernance(version: string, resources: readonly Any[], removed: readonly string[], replace: boolean): Result<ProxySnapshot> {
    const next = replace ? new Map<string, unknown>() : new Map(this.governance);
    for (const name of removed) next.delete(name);
    for (const any of resources) {
      if (any.typeUrl !== SERVICE_GOVERNANCE) return { ok: false, error: `expected ${SERVICE_GOVERNANCE}, got ${any.typeUrl}` };
      let g: ServiceGovernance;
      try {
        g = ServiceGovernance.decode(any.value);
      } catch (err) {
        return { ok: false, error: `${SERVICE_GOVERNANCE}: ${(err as Error).message}` };
      }
      if (!g.service) return { ok: false, error: 'service governance: service must not be empty' };
      next.set(g.service, ServiceGovernance.toJSON(g));
    }
    this.governance = next;
    this.versions[SERVICE_GOVERNANCE] = version;
    return { ok: true, value: this.current };
  }

  /** The RDS names listeners refer to. */
  routeNames(): string[] {
    const names = new Set<string>();
    for (const l of this.allListeners().values()) if (l.filter.kind === 'http' && l.filter.rdsName) names.add(l.filter.rdsName);
    return [...names].sort();
  }

  /** The EDS names clusters refer to. */
  endpointNames(): string[] {
    const names = new Set<string>();
    for (const c of this.allClusters().values()) if (c.discovery === 'eds') names.add(c.edsName);
    return [...names].sort();
  }

  /** Resource versions per name, for a delta stream's `initial_resource_versions`. */
  resourceVersions(typeUrl: ResourceTypeUrl): Record<string, string> {
    return Object.fromEntries([...this.dynamic[typeUrl]].map(([k, v]) => [k, v.version]));
  }

  private allListeners(): Map<string, ListenerModel> {
    const m = new Map(this.staticListeners);
    for (const [k, v] of this.dynamic[TYPE_URL.listener]) m.set(k, v.value);
    return m;
  }

  private allClusters(): Map<string, ClusterModel> {
    const m = new Map(this.staticClusters);
    for (const [k, v] of this.dynamic[TYPE_URL.cluster]) m.set(k, v.value);
    return m;
  }

  /** Clusters whose endpoints have not arrived yet; they are not used until they do. */
  warmingClusters(): string[] {
    const s = this.current;
    return [...this.allClusters().values()].filter((c) => !s.clusters.has(c.name)).map((c) => c.name);
  }

  private build(): ProxySnapshot {
    const endpoints = new Map<string, EndpointSet>(this.staticEndpoints);
    for (const [k, v] of this.dynamic[TYPE_URL.endpoint]) endpoints.set(k, v.value);
    const clusters = new Map<string, ClusterModel>();
    for (const c of this.allClusters().values()) {
      if (c.discovery === 'eds' && !endpoints.has(c.edsName)) continue; // warming
      clusters.set(c.name, c);
    }
    const routeTables = new Map<string, RouteTable>(this.staticRoutes);
    for (const [k, v] of this.dynamic[TYPE_URL.route]) routeTables.set(k, v.value);
    return { listeners: this.allListeners(), routeTables, clusters, endpoints, versions: { ...this.versions } };
  }

  /** What `/config_dump` shows: every resource in force with the version it came with. */
  dump(): unknown {
    const dyn = (t: ResourceTypeUrl) =>
      [...this.dynamic[t]].map(([name, e]) => ({ name, version: e.version, value: e.value }));
    return {
      versions: { ...this.versions },
      static: {
        listeners: [...this.staticListeners.values()],
        clusters: [...this.staticClusters.values()],
        routes: [...this.staticRoutes.values()],
        endpoints: [...this.staticEndpoints.values()],
      },
      dynamic: {
        listeners: dyn(TYPE_URL.listener),
        routes: dyn(TYPE_URL.route),
        clusters: dyn(TYPE_URL.cluster),
        endpoints: dyn(TYPE_URL.endpoint),
      },
      warming_clusters: this.warmingClusters(),
      upgrade_target: this.upgradeTarget ?? null,
      service_governance: Object.fromEntries(this.governance),
    };
  }
}

export function isResourceType(t: string): t is ResourceTypeUrl {
  return (RESOURCE_TYPES as readonly string[]).includes(t);
}
