import type { z } from 'zod';
import { GROUP, VERSION } from './schema/common.js';
import { proxyVersion, proxyVersionSpec, proxyVersionStatus } from './schema/proxyversion.js';
import { routePolicy, routePolicySpec, routePolicyStatus } from './schema/routepolicy.js';
import { authorizationPolicy, authorizationPolicySpec, authorizationPolicyStatus } from './schema/authorizationpolicy.js';

/** What the CRD generator and the manifest validator need to know about a kind. */
export interface KindInfo {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  /** Whole-object schema (apiVersion, kind, metadata, spec, status). */
  schema: z.ZodType;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: { name: string; type: 'string' | 'integer' | 'boolean' | 'date'; jsonPath: string; description?: string; priority?: number }[];
}

/** Every kind of the mesh.octo.io API, in the order CRDs are generated. */
export const KINDS: readonly KindInfo[] = [
  {
    kind: 'RoutePolicy',
    plural: 'routepolicies',
    singular: 'routepolicy',
    shortNames: ['rp'],
    schema: routePolicy,
    spec: routePolicySpec,
    status: routePolicyStatus,
    printerColumns: [
      { name: 'Service', type: 'string', jsonPath: '.spec.targetRef.service' },
      { name: 'Accepted', type: 'boolean', jsonPath: '.status.accepted' },
      { name: 'Acked', type: 'integer', jsonPath: '.status.sidecars.acked', description: 'Sidecars that ACKed the current generation' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'ProxyVersion',
    plural: 'proxyversions',
    singular: 'proxyversion',
    // Not 'pv': kubectl already resolves that to PersistentVolumes.
    shortNames: ['pxv'],
    schema: proxyVersion,
    spec: proxyVersionSpec,
    status: proxyVersionStatus,
    printerColumns: [
      { name: 'Version', type: 'string', jsonPath: '.spec.version' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Updated', type: 'integer', jsonPath: '.status.updated' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.ready' },
      { name: 'Total', type: 'integer', jsonPath: '.status.total' },
      { name: 'Paused', type: 'boolean', jsonPath: '.spec.paused', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'AuthorizationPolicy',
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    // Not 'ap': short and generic enough to collide with another project's kind.
    shortNames: ['authz'],
    schema: authorizationPolicy,
    spec: authorizationPolicySpec,
    status: authorizationPolicyStatus,
    printerColumns: [
      { name: 'Service', type: 'string', jsonPath: '.spec.service' },
      { name: 'Action', type: 'string', jsonPath: '.spec.action' },
      { name: 'Accepted', type: 'boolean', jsonPath: '.status.accepted' },
      { name: 'Acked', type: 'integer', jsonPath: '.status.sidecars.acked', description: 'Sidecars that ACKed the current generation' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
];

export const kindInfo = (kind: string): KindInfo | undefined => KINDS.find((k) => k.kind === kind);
export { GROUP, VERSION };
