import { describe, expect, it } from '@jest/globals';
import { crdFor, openApiSchema } from './crd.js';
import { KINDS } from './kinds.js';

type Json = Record<string, any>;

/** Every place in a schema tree, with its path. */
function* walk(node: unknown, path = ''): Generator<[string, Json]> {
  if (!node || typeof node !== 'object') return;
  yield [path, node as Json];
  for (const [k, v] of Object.entries(node as Json)) if (k !== 'x-kubernetes-validations' && k !== 'default') yield* walk(v, `${path}/${k}`);
}

describe('generated CRDs', () => {
  it.each(KINDS.map((k) => [k.kind, k] as const))('%s is a structural schema (no refs, combinators or closed objects)', (_kind, info) => {
    const schema = (crdFor(info) as Json).spec.versions[0].schema.openAPIV3Schema;
    for (const [path, node] of walk(schema)) {
      for (const banned of ['$ref', 'anyOf', 'oneOf', 'allOf', 'not', '$schema']) expect([path, banned in node]).toEqual([path, false]);
      if (node.additionalProperties !== undefined) expect([path, node.additionalProperties]).not.toEqual([path, false]);
      if (path.endsWith('/properties') || path.endsWith('/items') || path === '') continue;
      if (path.match(/\/properties\/[^/]+$/) || path.endsWith('/items')) expect([path, typeof node.type]).toEqual([path, 'string']);
    }
  });

  it('carries cross-field rules as CEL with the same messages the zod side uses', () => {
    const rp = crdFor(KINDS[0]!) as Json;
    const rule = rp.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.rules.items;
    const cel = rule['x-kubernetes-validations'] as Json[];
    expect(cel.map((c) => c.rule)).toContain('!self.route.all(d, has(d.weight)) || self.route.map(d, d.weight).sum() == 100');
    expect(cel.find((c) => c.messageExpression)?.messageExpression).toContain('weights of a rule must sum to 100, got %d');
    expect(cel.every((c) => c.fieldPath === undefined || c.fieldPath.startsWith('.'))).toBe(true);
  });

  it('makes ProxyVersion version and package immutable with transition rules', () => {
    const spec = (crdFor(KINDS[1]!) as Json).spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec['x-kubernetes-validations'].map((c: Json) => c.rule)).toEqual(['self.version == oldSelf.version', 'self.__package__ == oldSelf.__package__']);
  });

  it('bounds every list so CEL cost estimates are finite', () => {
    for (const info of KINDS) for (const [path, node] of walk(openApiSchema(info.spec))) if (node.type === 'array') expect([path, typeof node.maxItems]).toEqual([path, 'number']);
  });

  it('has a status subresource, short names and printer columns', () => {
    const crd = crdFor(KINDS[1]!) as Json;
    expect(crd.metadata.name).toBe('proxyversions.mesh.octo.io');
    expect(crd.spec.names.shortNames).toEqual(['pxv']);
    expect(crd.spec.versions[0].subresources).toEqual({ status: {} });
    expect(crd.spec.versions[0].additionalPrinterColumns.map((c: Json) => c.name)).toContain('Phase');
  });
});
