import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import type { Cluster } from '@octo-mesh/proto/gen/proxy/envoy/config/cluster/v3/cluster.js';
import type { ClusterLoadAssignment } from '@octo-mesh/proto/gen/proxy/envoy/config/endpoint/v3/endpoint.js';
import type { Listener } from '@octo-mesh/proto/gen/proxy/envoy/config/listener/v3/listener.js';
import type { RouteConfiguration } from '@octo-mesh/proto/gen/proxy/envoy/config/route/v3/route.js';
import type { ClusterModel, EndpointSet, ListenerModel, Result, RouteTable } from '../model.js';
import { translateCluster, translateClusterLoadAssignment } from './cluster.js';
import { translateListener } from './listener.js';
import { translateRouteConfiguration } from './route.js';

export { translateCluster, translateClusterLoadAssignment } from './cluster.js';
export { translateListener } from './listener.js';
export { translateRouteConfiguration } from './route.js';
export { fromEnvoyJson } from './envoy-json.js';

/** The four Envoy resource types the proxy consumes, with what each translates into. */
export interface Translated {
  [TYPE_URL.listener]: ListenerModel;
  [TYPE_URL.route]: RouteTable;
  [TYPE_URL.cluster]: ClusterModel;
  [TYPE_URL.endpoint]: EndpointSet;
}
export type ResourceTypeUrl = keyof Translated;

export const RESOURCE_TYPES: readonly ResourceTypeUrl[] = [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route];

/** The resource's name as xDS addresses it (a CLA is named by its cluster_name). */
export function resourceName(typeUrl: ResourceTypeUrl, message: unknown): string {
  if (typeUrl === TYPE_URL.endpoint) return (message as ClusterLoadAssignment).clusterName;
  return (message as { name: string }).name;
}

/** Translates one decoded resource of a known type into the internal model. */
export function translateResource<T extends ResourceTypeUrl>(typeUrl: T, message: unknown): Result<Translated[T]> {
  switch (typeUrl) {
    case TYPE_URL.listener:
      return translateListener(message as Listener) as Result<Translated[T]>;
    case TYPE_URL.route:
      return translateRouteConfiguration(message as RouteConfiguration) as Result<Translated[T]>;
    case TYPE_URL.cluster:
      return translateCluster(message as Cluster) as Result<Translated[T]>;
    case TYPE_URL.endpoint:
      return translateClusterLoadAssignment(message as ClusterLoadAssignment) as Result<Translated[T]>;
    default:
      return { ok: false, error: `unsupported type ${String(typeUrl)}` };
  }
}
