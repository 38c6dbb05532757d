import { describe, expect, it } from '@jest/globals';
import { formatIssue, parseManifests } from './manifest.js';

const rp = (name: string, extra = '') => `apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: { name: ${name}, namespace: shop }
spec:
  targetRef: { service: catalog }
${extra}`;

describe('parseManifests', () => {
  it('validates every document of a multi-document file and keeps the valid ones', () => {
    const text = [rp('a'), rp('b', '  loadBalancer: { policy: Sticky }'), '', rp('c')].join('\n---\n');
    const { objects, issues } = parseManifests(text, 'policies.yaml');
    expect(objects.map((o) => o.metadata.name)).toEqual(['a', 'c']);
    expect(issues).toHaveLength(1);
    expect(formatIssue(issues[0]!)).toMatch(/^policies\.yaml#1 RoutePolicy\/shop\/b: spec\.loadBalancer\.policy: Invalid option/);
  });

  it('applies schema defaults', () => {
    const { objects } = parseManifests(rp('d', '  loadBalancer: {}\n  outlierDetection: { consecutive5xx: 3 }'));
    const spec = objects[0]!.spec as { loadBalancer: unknown; outlierDetection: unknown };
    expect(spec.loadBalancer).toEqual({ policy: 'RoundRobin', localityPreference: true, panicThreshold: 50 });
    expect(spec.outlierDetection).toMatchObject({ interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 10 });
  });

  // input, expected path, expected message fragment
  it.each([
    ['apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}', 'apiVersion', 'must be mesh.octo.io/v1alpha1'],
    ['apiVersion: mesh.octo.io/v1alpha1\nkind: VirtualService\nmetadata: {name: x}', 'kind', 'must be one of RoutePolicy, ProxyVersion'],
    ['- just\n- a list', '', 'expected a Kubernetes object'],
    ['apiVersion: mesh.octo.io/v1alpha1\nkind: RoutePolicy\nmetadata: {name: Bad_Name}\nspec: {targetRef: {service: a}}', 'metadata.name', 'DNS-1123 subdomain'],
    ['key: [unclosed', '', 'YAML:'],
  ])('rejects %j at %j', (text, path, message) => {
    const { objects, issues } = parseManifests(text);
    expect(objects).toEqual([]);
    expect(issues[0]).toMatchObject({ path });
    expect(issues[0]!.message).toContain(message);
  });
  // healthCheck shape, expected issue (path: message fragment) or undefined when valid
  it.each([
    ['{ http: { path: /healthz } }', undefined],
    ['{ tcp: {} }', undefined],
    ['{ grpc: {} }', undefined],
    ['{ grpc: { service: shop.v1.Catalog } }', undefined],
    ['{ grpc: { service: shop.Catalog, authority: "catalog.shop.svc:8080" } }', undefined],
    ['{}', 'spec.healthCheck: exactly one of http, tcp, grpc must be set for a health check'],
    ['{ grpc: {}, http: { path: /healthz } }', 'spec.healthCheck: exactly one of http, tcp, grpc must be set for a health check'],
    ['{ grpc: { service: "shop/Catalog" } }', 'spec.healthCheck.grpc.service: must be a fully-qualified gRPC service name'],
    ['{ grpc: { service: "1shop.Catalog" } }', 'spec.healthCheck.grpc.service: must be a fully-qualified gRPC service name'],
    ['{ grpc: { authority: "http://catalog" } }', 'spec.healthCheck.grpc.authority: must be host or host:port'],
    ['{ grpc: { port: 9090 } }', 'spec.healthCheck.grpc: Unrecognized key'],
  ])('healthCheck %s → %s', (shape, issue) => {
    const { objects, issues } = parseManifests(rp('hc', `  healthCheck: ${shape}`));
    if (issue === undefined) {
      expect(issues).toEqual([]);
      expect(objects).toHaveLength(1);
      return;
    }
    expect(objects).toEqual([]);
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toContainEqual(expect.stringContaining(issue));
  });
});
