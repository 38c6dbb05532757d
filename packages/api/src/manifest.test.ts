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
});
