import { z } from 'zod';
import { GROUP, VERSION, type KindInfo } from './kinds.js';

type Json = Record<string, unknown>;

const OPENAPI_FORMATS = new Set(['int32', 'int64', 'float', 'double', 'byte', 'binary', 'date', 'date-time', 'password', 'uuid', 'email', 'hostname', 'ipv4', 'ipv6', 'uri']);

/**
 * Rewrites zod's OpenAPI 3.0 output into a Kubernetes structural schema: no
 * `additionalProperties: false` (unknown fields are pruned by the API server instead), no
 * `$schema`, and integer bounds only where they were set on purpose.
 */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === '$schema' || k === 'id') continue;
    if (k === 'additionalProperties' && v === false) continue;
    if ((k === 'minimum' && v === Number.MIN_SAFE_INTEGER) || (k === 'maximum' && v === Number.MAX_SAFE_INTEGER)) continue;
    // zod names formats of its own (e.g. starts_with); the API server knows only OpenAPI's.
    if (k === 'format' && typeof v === 'string' && !OPENAPI_FORMATS.has(v)) continue;
    out[k] = k === 'x-kubernetes-validations' || k === 'enum' || k === 'required' || k === 'default' ? v : toStructural(v);
  }
  return out;
}

/** The OpenAPI v3 schema of a zod schema, as a CRD embeds it. */
export function openApiSchema(schema: z.ZodType): Json {
  return toStructural(z.toJSONSchema(schema, { io: 'input', target: 'openapi-3.0', unrepresentable: 'throw' })) as Json;
}

/** Builds the CustomResourceDefinition of one kind. */
export function crdFor(info: KindInfo): Json {
  const spec = openApiSchema(info.spec);
  const status = openApiSchema(info.status);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${info.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'octo-mesh' },
      annotations: { 'octo.io/generated-by': 'packages/api/src/cli/gen-crds.ts' },
    },
    spec: {
      group: GROUP,
      names: { kind: info.kind, listKind: `${info.kind}List`, plural: info.plural, singular: info.singular, shortNames: info.shortNames, categories: ['octo-mesh'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: info.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: (info.schema.meta()?.description as string | undefined) ?? info.kind,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
}
