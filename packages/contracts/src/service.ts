/**
 * Service keys: how every control-plane component names a service (`namespace/name`), and the
 * unit Pilot fetches from a mesh source. Plain functions over the shared model in @octo-mesh/api.
 */
import type { AuthorizationPolicy, Endpoint, RoutePolicy, Service } from '@octo-mesh/api';

/** `namespace/name`, the identity of a service across the control plane. */
export type ServiceKey = string;

/** Everything Pilot needs about one service, fetched as a unit. */
export interface ServiceData {
  /** The shared model's Service (apiVersion model.mesh.octo.io/v1). */
  service: Service;
  /** The endpoints of its ServiceEndpoints (empty when there is none). */
  endpoints: Endpoint[];
  /** RoutePolicies whose `spec.targetRef` names this service, in any order. */
  policies: RoutePolicy[];
  /**
   * AuthorizationPolicies whose `spec.service` is this service (in the policy's namespace), in any
   * order; enforced by the inbound proxies of the service's instances. Absent means none.
   */
  authorizationPolicies?: AuthorizationPolicy[];
}

/** Name and namespace of a model object (namespace defaulting to `default`, as in Kubernetes). */
export function nameOf(r: { metadata: { name: string; namespace?: string | undefined } }): { name: string; namespace: string } {
  return { name: r.metadata.name, namespace: r.metadata.namespace ?? 'default' };
}

export const serviceKey = (namespace: string, name: string): ServiceKey => `${namespace}/${name}`;

/** Splits a key; throws on anything that is not `namespace/name` (a programming error, never input). */
export function splitServiceKey(key: ServiceKey): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  if (slash <= 0 || slash === key.length - 1) throw new Error(`service key ${JSON.stringify(key)} is not namespace/name`);
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The DNS-style host of a service: `name.namespace.svc`. */
export const serviceHost = (s: Service): string => `${nameOf(s).name}.${nameOf(s).namespace}.svc`;

export const keyOf = (s: Service): ServiceKey => serviceKey(nameOf(s).namespace, nameOf(s).name);

/** `namespace/name` of a RoutePolicy. */
export const policyKey = (p: RoutePolicy): string => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;

/** The service a RoutePolicy governs (`spec.targetRef`, namespace defaulting to the policy's own). */
export function policyTarget(p: RoutePolicy): ServiceKey {
  return serviceKey(p.spec.targetRef.namespace ?? p.metadata.namespace ?? 'default', p.spec.targetRef.service);
}

/** The service an AuthorizationPolicy protects: `spec.service` in the policy's own namespace. */
export function authorizationTarget(p: AuthorizationPolicy): ServiceKey {
  return serviceKey(p.metadata.namespace ?? 'default', p.spec.service);
}

/**
 * Turns a dependency as a workload declares it into a service key. Accepted forms: `name`
 * (in `defaultNamespace`), `name.namespace`, `name.namespace.svc`, `name.namespace.svc.cluster.local`
 * and `namespace/name`. Returns undefined for anything else.
 */
export function parseDependency(dep: string, defaultNamespace: string): ServiceKey | undefined {
  const d = dep.trim().toLowerCase();
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (d.includes('/')) {
    const [ns, name, ...rest] = d.split('/');
    return rest.length === 0 && label.test(ns ?? '') && label.test(name ?? '') ? serviceKey(ns!, name!) : undefined;
  }
  const parts = d.replace(/\.svc(\.cluster\.local)?$/, '').split('.');
  if (parts.length === 1 && label.test(parts[0]!)) return serviceKey(defaultNamespace, parts[0]!);
  if (parts.length === 2 && label.test(parts[0]!) && label.test(parts[1]!)) return serviceKey(parts[1]!, parts[0]!);
  return undefined;
}
