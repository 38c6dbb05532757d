/**
 * An immutable, versioned set of resources for one node scope: per type URL, the resources by
 * name and a version. A type's version is a hash of its resources' names and versions, so the
 * same content always has the same version — a proxy reconnecting with a version it already has
 * is not sent the same configuration again, and a change that does not alter a type's content
 * does not push that type.
 */
import { TYPE_URL } from '@octo-mesh/proto';
import { hashOf, type XdsResource } from './resource.js';

export interface TypeSnapshot {
  readonly typeUrl: string;
  readonly version: string;
  readonly resources: ReadonlyMap<string, XdsResource>;
}

/** Push order on a change: clusters before the endpoints and routes that name them (make-before-break). */
export const PUSH_ORDER: readonly string[] = [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route];

export class InconsistentSnapshotError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`inconsistent snapshot: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
    this.name = 'InconsistentSnapshotError';
  }
}

function typeSnapshot(typeUrl: string, resources: Iterable<XdsResource>): TypeSnapshot {
  const byName = new Map<string, XdsResource>();
  for (const r of resources) {
    if (r.typeUrl !== typeUrl) throw new Error(`resource ${r.name} is a ${r.typeUrl}, not a ${typeUrl}`);
    if (byName.has(r.name)) throw new Error(`duplicate ${typeUrl} resource ${r.name}`);
    byName.set(r.name, r);
  }
  const names = [...byName.keys()].sort();
  const version = hashOf(names.map((n) => `${n}@${byName.get(n)!.version}`).join('\n'));
  return Object.freeze({ typeUrl, version, resources: byName });
}

export class Snapshot {
  private versionList: readonly (readonly [string, string])[] | undefined;

  private constructor(private readonly types: ReadonlyMap<string, TypeSnapshot>) {}

  /** Builds a snapshot; types with no resources are present with an empty set (so removal is pushed). */
  static of(byType: Readonly<Record<string, Iterable<XdsResource>>>): Snapshot {
    return new Snapshot(new Map(Object.entries(byType).map(([t, rs]) => [t, typeSnapshot(t, rs)])));
  }

  /**
   * A new snapshot with some types replaced; unchanged types keep their TypeSnapshot object (and
   * so any encoding cached on it).
   */
  with(byType: Readonly<Record<string, Iterable<XdsResource>>>): Snapshot {
    const next = new Map(this.types);
    for (const [t, rs] of Object.entries(byType)) {
      const ts = typeSnapshot(t, rs);
      next.set(t, ts.version === this.types.get(t)?.version ? this.types.get(t)! : ts);
    }
    return new Snapshot(next);
  }

  get(typeUrl: string): TypeSnapshot | undefined {
    return this.types.get(typeUrl);
  }

  /** The type's version, or '' when the snapshot does not serve the type. */
  version(typeUrl: string): string {
    return this.types.get(typeUrl)?.version ?? '';
  }

  /** Type URL → version of every type, computed once per snapshot (the sync-state gauge reads it per node at each scrape). */
  versions(): readonly (readonly [typeUrl: string, version: string])[] {
    return (this.versionList ??= [...this.types.values()].map((t) => [t.typeUrl, t.version] as const));
  }

  typeUrls(): string[] {
    return [...this.types.keys()];
  }

  /**
   * Problems that would make a proxy wait forever or warm a cluster with nothing: every RDS name a
   * listener references and every EDS name a cluster references must be present, and every route
   * configuration and load assignment must be referenced.
   */
  consistencyProblems(): string[] {
    const problems: string[] = [];
    const referenced = new Map<string, Set<string>>();
    for (const ts of this.types.values())
      for (const r of ts.resources.values())
        for (const ref of r.references) {
          const target = this.types.get(ref.typeUrl);
          if (!target?.resources.has(ref.name)) problems.push(`${shortType(r.typeUrl)} ${r.name} references missing ${shortType(ref.typeUrl)} ${ref.name}`);
          let s = referenced.get(ref.typeUrl);
          if (!s) referenced.set(ref.typeUrl, (s = new Set()));
          s.add(ref.name);
        }
    for (const t of [TYPE_URL.route, TYPE_URL.endpoint]) {
      for (const name of this.types.get(t)?.resources.keys() ?? [])
        if (!referenced.get(t)?.has(name)) problems.push(`${shortType(t)} ${name} is not referenced by any ${t === TYPE_URL.route ? 'listener' : 'cluster'}`);
    }
    return problems;
  }

  /** @throws InconsistentSnapshotError */
  assertConsistent(): this {
    const problems = this.consistencyProblems();
    if (problems.length) throw new InconsistentSnapshotError(problems);
    return this;
  }
}

export const shortType = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
