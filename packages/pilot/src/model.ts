/**
 * The mesh's resource model as Pilot sees it: services, their endpoints and the RoutePolicies that
 * govern them. Plain immutable data; the dispatcher normalises every registry (Kubernetes,
 * YAML directory, in-memory) to these shapes, and translation reads nothing else.
 */
export type { Endpoint, Locality, Service, ServicePort } from '@octo-mesh/api';
/** Keys and the unit of data Pilot fetches: shared with the dispatcher's client (@octo-mesh/contracts). */
export { keyOf, nameOf, parseDependency, policyKey, serviceHost, serviceKey, splitServiceKey, type ServiceData, type ServiceKey } from '@octo-mesh/contracts';
