/**
 * Shared pieces of the generators: resource naming, the generator wrapper, small proto builders.
 */
import { parseDuration } from '@octo-mesh/api';
import type { Any, Duration } from '@octo-mesh/proto';
import { FractionalPercent_DenominatorType } from '@octo-mesh/proto/gen/envoy/type/v3/percent.js';
import type { FractionalPercent } from '@octo-mesh/proto/gen/envoy/type/v3/percent.js';
import { serviceHost } from '../model.js';

/**
 * Cluster names, the contract between Pilot, the proxy and debugging humans:
 *
 *     outbound|<port>|<subset>|<name>.<namespace>.svc
 *
 * e.g. `outbound|8080||catalog.default.svc` (every endpoint of catalog's port 8080) and
 * `outbound|8080|v2|catalog.default.svc` (the endpoints in RoutePolicy subset `v2`). The
 * ClusterLoadAssignment of a cluster has the same name (`eds_cluster_config.service_name`).
 */
export function clusterName(port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

export interface ParsedClusterName {
  port: number;
  subset: string;
  host: string;
  /** `namespace/name` of the service. */
  service: string;
}

/** Parses a cluster name made by {@link clusterName}; undefined for any other name. */
export function parseClusterName(name: string): ParsedClusterName | undefined {
  const m = /^outbound\|(\d{1,5})\|([a-z0-9-]*)\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc$/.exec(name);
  if (!m) return undefined;
  return { port: Number(m[1]), subset: m[2]!, host: `${m[3]}.${m[4]}.svc`, service: `${m[4]}/${m[3]}` };
}

/** Name of the outbound listener and of the route configuration it reads over RDS. */
export const OUTBOUND = 'outbound';

export { serviceHost };

/** A generator failed; `generator` names it and the message names the field. */
export class TranslationError extends Error {
  constructor(
    readonly generator: string,
    readonly path: string,
    message: string,
  ) {
    super(`${generator}: ${path ? `${path}: ` : ''}${message}`);
    this.name = 'TranslationError';
  }
}

/** Thrown inside a generator for a bad field; {@link generate} adds the generator's name. */
export class FieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export function fieldError(path: string, message: string): never {
  throw new FieldError(path, message);
}

/** Runs one generator; any failure comes out as a TranslationError carrying its name. */
export function generate<T>(generator: string, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof TranslationError) throw err;
    if (err instanceof FieldError) throw new TranslationError(generator, err.path, err.message);
    throw new TranslationError(generator, '', (err as Error).message);
  }
}

/** A Go-style duration string as a protobuf Duration. */
export function protoDuration(text: string, path: string): Duration {
  const ms = parseDuration(text);
  if (ms === undefined) return fieldError(path, `invalid duration ${JSON.stringify(text)}`);
  return msDuration(ms);
}

export function msDuration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function percentOf(value: number): FractionalPercent {
  return { numerator: value, denominator: FractionalPercent_DenominatorType.HUNDRED };
}

/** Packs a message whose codec is given (for types the shared packAny does not know). */
export function pack<T>(typeUrl: string, codec: { encode(m: T): { finish(): Uint8Array } }, message: T): Any {
  return { typeUrl, value: Buffer.from(codec.encode(message).finish()) };
}

export const FILTER = {
  fault: 'envoy.filters.http.fault',
  localRateLimit: 'envoy.filters.http.local_ratelimit',
  router: 'envoy.filters.http.router',
  hcm: 'envoy.filters.network.http_connection_manager',
} as const;

export const TYPE = {
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  localRateLimit: 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
} as const;
