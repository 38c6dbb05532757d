/**
 * One xDS resource as Pilot holds it: serialised once, when it is made, into an `Any` whose
 * bytes every stream that sends it shares. Immutable.
 */
import { createHash } from 'node:crypto';
import type { Any } from '@octo-mesh/proto';

/** The policy (and generation) that shaped a resource, so ACKs can be counted per RoutePolicy. */
export interface Provenance {
  policy: string;
  generation: number;
}

export interface XdsResource {
  readonly typeUrl: string;
  readonly name: string;
  /** Content hash of the bytes: equal bytes, equal version, across restarts too. */
  readonly version: string;
  readonly any: Any;
  /** Which generator made it (listeners, routes, clusters, endpoints, governance, upgrade). */
  readonly generator: string;
  /** Names of resources of other types this one needs: a cluster's EDS name, a listener's RDS name. */
  readonly references: readonly { typeUrl: string; name: string }[];
  readonly provenance: readonly Provenance[];
}

export const hashOf = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('base64url').slice(0, 16);

export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** Serialises a message into a resource. */
export function makeResource<T>(
  typeUrl: string,
  name: string,
  codec: Codec<T>,
  message: T,
  generator: string,
  extra: { references?: XdsResource['references']; provenance?: readonly Provenance[] } = {},
): XdsResource {
  const value = Buffer.from(codec.encode(message).finish());
  return Object.freeze({
    typeUrl,
    name,
    version: hashOf(value),
    any: { typeUrl, value },
    generator,
    references: extra.references ?? [],
    provenance: extra.provenance ?? [],
  });
}

/** A resource from bytes already encoded (e.g. assembled from cached parts). */
export function resourceFromBytes(
  typeUrl: string,
  name: string,
  value: Buffer,
  generator: string,
  extra: { references?: XdsResource['references']; provenance?: readonly Provenance[] } = {},
): XdsResource {
  return Object.freeze({
    typeUrl,
    name,
    version: hashOf(value),
    any: { typeUrl, value },
    generator,
    references: extra.references ?? [],
    provenance: extra.provenance ?? [],
  });
}
