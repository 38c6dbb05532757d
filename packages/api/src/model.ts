/**
 * The mesh's resource model: what every source (Kubernetes, a directory of YAML, the in-memory
 * store, the meta server's service registry) is normalised to, and what the dispatcher serves to
 * pilots. RoutePolicy, ProxyVersion and AuthorizationPolicy are the user-facing CRDs; Service, ServiceEndpoints and
 * Workload are derived from the platform (Services, EndpointSlices, Pods) or from registrations of
 * workloads outside Kubernetes. All share one envelope: `{apiVersion, kind, metadata, spec}`.
 */
import { z } from 'zod';
import { API_VERSION, dnsLabel, labels, objectMeta } from './schema/common.js';
import { proxyVersion, type ProxyVersion } from './schema/proxyversion.js';
import { routePolicy, type RoutePolicy } from './schema/routepolicy.js';
import { authorizationPolicy, type AuthorizationPolicy } from './schema/authorizationpolicy.js';

/** apiVersion of the derived (non-CRD) kinds; never served by the Kubernetes API server. */
export const MODEL_API_VERSION = 'model.mesh.octo.io/v1';

export const servicePort = z
  .object({
    name: z.string().min(1).max(63).default('http'),
    port: z.number().int().min(1).max(65535),
    protocol: z.enum(['http', 'http2', 'grpc', 'tcp']).default('http'),
  })
  .strict();

export const serviceSpec = z
  .object({
    ports: z.array(servicePort).min(1).max(64),
    /** Pods or registered instances with all of these labels back the service. */
    selector: labels('Workload labels that select the service\'s instances.').optional(),
  })
  .strict();

export const locality = z.object({ region: z.string().max(63).optional(), zone: z.string().max(63).optional() }).strict();

export const endpoint = z
  .object({
    /** IPv4/IPv6 address, or a hostname for registered instances. */
    address: z.string().min(1).max(253),
    /** Where peers send traffic: the instance's inbound sidecar port in the mesh. */
    port: z.number().int().min(1).max(65535),
    labels: z.record(z.string(), z.string()).default({}),
    locality: locality.optional(),
    /** false: known but failing (readiness, health check, or a missed registry heartbeat). */
    healthy: z.boolean().default(true),
    /** The instance: pod name or registered instance id. */
    instance: z.string().max(253).optional(),
    /** `namespace/workload` the instance belongs to. */
    workload: z.string().max(317).optional(),
    weight: z.number().int().min(1).max(128).optional(),
  })
  .strict();

export const serviceEndpointsSpec = z.object({ endpoints: z.array(endpoint).max(100_000) }).strict();

export const workloadSpec = z
  .object({
    /** The application; sidecars of one app share a pilot (the meta server hashes on it). */
    app: dnsLabel('Application name.'),
    version: z.string().max(63).optional(),
    labels: z.record(z.string(), z.string()).default({}),
    /** Instances (pods or registered instances) currently running the workload. */
    instances: z
      .array(z.object({ id: z.string().min(1).max(253), address: z.string().max(253).optional(), node: z.string().max(253).optional() }).strict())
      .max(100_000)
      .default([]),
  })
  .strict();

/**
 * The central health checker's verdicts for one service's endpoints, kept apart from
 * ServiceEndpoints so that the source of the endpoints (Kubernetes, a directory, the registry)
 * and the checker never overwrite each other. Named like its service. An endpoint is published
 * unhealthy when its source says so or this says `healthy: false`; an endpoint absent here is
 * unaffected, so a service nobody checks — or whose checkers are all down — keeps its last verdicts.
 */
export const endpointHealthSpec = z
  .object({
    endpoints: z
      .array(
        z
          .object({
            address: z.string().min(1).max(253),
            port: z.number().int().min(1).max(65535),
            healthy: z.boolean(),
            /** When the verdict last changed (RFC 3339). */
            since: z.string().max(64).optional(),
            /** Why, in a few words (`HTTP 503`, `timeout after 1000 ms`, `connection refused`). */
            reason: z.string().max(256).optional(),
          })
          .strict(),
      )
      .max(100_000),
    /** The checker replica that wrote it. */
    checker: z.string().max(253).optional(),
    /**
     * The checker held back failures because they would have left too few healthy endpoints
     * (the panic rule; see packages/health). Endpoints it held keep their previous verdict.
     */
    suspect: z.boolean().optional(),
  })
  .strict();

const envelope = <K extends string, S extends z.ZodType>(kind: K, spec: S) =>
  z.object({ apiVersion: z.literal(MODEL_API_VERSION), kind: z.literal(kind), metadata: objectMeta, spec }).strict();

export const service = envelope('Service', serviceSpec);
export const serviceEndpoints = envelope('ServiceEndpoints', serviceEndpointsSpec);
export const workload = envelope('Workload', workloadSpec);
export const endpointHealth = envelope('EndpointHealth', endpointHealthSpec);

export type ServicePort = z.infer<typeof servicePort>;
export type Locality = z.infer<typeof locality>;
export type Endpoint = z.infer<typeof endpoint>;
export type Service = z.infer<typeof service>;
export type ServiceEndpoints = z.infer<typeof serviceEndpoints>;
export type Workload = z.infer<typeof workload>;
export type EndpointHealth = z.infer<typeof endpointHealth>;

/** Every kind a resource store holds. */
export const RESOURCE_KINDS = ['RoutePolicy', 'ProxyVersion', 'Service', 'ServiceEndpoints', 'Workload', 'EndpointHealth', 'AuthorizationPolicy'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** Any object of the model. */
export type MeshResource = RoutePolicy | ProxyVersion | Service | ServiceEndpoints | Workload | EndpointHealth | AuthorizationPolicy;

const SCHEMAS: Record<ResourceKind, z.ZodType> = {
  RoutePolicy: routePolicy,
  ProxyVersion: proxyVersion,
  AuthorizationPolicy: authorizationPolicy,
  Service: service,
  ServiceEndpoints: serviceEndpoints,
  Workload: workload,
  EndpointHealth: endpointHealth,
};

export const isResourceKind = (k: unknown): k is ResourceKind => typeof k === 'string' && (RESOURCE_KINDS as readonly string[]).includes(k);

/** The zod schema of a kind. */
export const resourceSchema = (kind: ResourceKind): z.ZodType => SCHEMAS[kind];

/** apiVersion a kind is written with. */
export const apiVersionOf = (kind: ResourceKind): string => (kind === 'RoutePolicy' || kind === 'ProxyVersion' || kind === 'AuthorizationPolicy' ? API_VERSION : MODEL_API_VERSION);

/** `namespace/name`; a missing namespace is `default`, as in Kubernetes. */
export function resourceKey(r: { metadata: { namespace?: string | undefined; name: string } }): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}

/**
 * The service a resource concerns, so a pilot can subscribe by service: a RoutePolicy's target,
 * an AuthorizationPolicy's service (in its own namespace), a Service's or ServiceEndpoints' own
 * name, a Workload's app. Undefined for mesh-wide kinds.
 */
export function serviceOf(r: MeshResource): string | undefined {
  switch (r.kind) {
    case 'RoutePolicy':
      return `${r.spec.targetRef.namespace ?? r.metadata.namespace ?? 'default'}/${r.spec.targetRef.service}`;
    case 'AuthorizationPolicy':
      return `${r.metadata.namespace ?? 'default'}/${r.spec.service}`;
    case 'Service':
    case 'ServiceEndpoints':
    case 'EndpointHealth':
      return resourceKey(r);
    case 'Workload':
      return `${r.metadata.namespace ?? 'default'}/${r.spec.app}`;
    default:
      return undefined;
  }
}
