import { describe, expect, it } from '@jest/globals';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { appOf, endpointsFromSlices, serviceFromKube, workloadsFromPods } from './kube-translate.js';

const pod = (name: string, labels: Record<string, string>, ip = '10.0.0.1', phase = 'Running'): V1Pod => ({
  metadata: { name, namespace: 'demo', labels },
  spec: { containers: [], nodeName: 'node-1' },
  status: { phase, podIP: ip },
});

describe('serviceFromKube', () => {
  // columns: case, service, expected ports (name:port:protocol) or undefined
  it.each<[string, V1Service, string[] | undefined]>([
    ['http by default', { metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ port: 80 }] } }, ['http:80:http']],
    ['grpc by appProtocol', { metadata: { name: 'c', namespace: 'demo' }, spec: { ports: [{ name: 'api', port: 9090, appProtocol: 'grpc' }] } }, ['api:9090:grpc']],
    ['h2c by appProtocol', { metadata: { name: 'c', namespace: 'demo' }, spec: { ports: [{ name: 'web', port: 81, appProtocol: 'kubernetes.io/h2c' }] } }, ['web:81:http2']],
    ['UDP is tcp (passthrough)', { metadata: { name: 'dns', namespace: 'demo' }, spec: { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } }, ['dns:53:tcp']],
    ['ExternalName is skipped', { metadata: { name: 'x', namespace: 'demo' }, spec: { type: 'ExternalName', externalName: 'example.com' } }, undefined],
    ['no ports is skipped', { metadata: { name: 'x', namespace: 'demo' }, spec: {} }, undefined],
  ])('%s', (_case, svc, want) => {
    const out = serviceFromKube(svc);
    expect(out?.spec.ports.map((p) => `${p.name}:${p.port}:${p.protocol}`)).toEqual(want);
  });
});

describe('endpointsFromSlices', () => {
  it('merges slices, takes labels from pods, readiness as health, zone as locality', () => {
    const slices: V1EndpointSlice[] = [
      {
        addressType: 'IPv4',
        metadata: { name: 'catalog-a', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'catalog' } },
        ports: [{ port: 8080 }],
        endpoints: [
          { addresses: ['10.0.0.2'], conditions: { ready: true }, zone: 'z1', targetRef: { kind: 'Pod', name: 'catalog-v2-x' } },
          { addresses: ['10.0.0.1'], conditions: { ready: false }, targetRef: { kind: 'Pod', name: 'catalog-v1-x' } },
        ],
      },
      {
        addressType: 'IPv4',
        metadata: { name: 'catalog-b', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'catalog' } },
        ports: [{ port: 8080 }],
        endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'catalog-v1-x' } }],
      },
    ];
    const pods = new Map([
      ['demo/catalog-v1-x', pod('catalog-v1-x', { app: 'catalog', version: 'v1' })],
      ['demo/catalog-v2-x', pod('catalog-v2-x', { app: 'catalog', version: 'v2' })],
    ]);
    const out = endpointsFromSlices('demo', 'catalog', slices, pods);
    expect(out.metadata).toEqual({ name: 'catalog', namespace: 'demo' });
    expect(out.spec.endpoints).toEqual([
      { address: '10.0.0.1', port: 8080, labels: { app: 'catalog', version: 'v1' }, healthy: true, instance: 'catalog-v1-x', workload: 'demo/catalog' },
      { address: '10.0.0.2', port: 8080, labels: { app: 'catalog', version: 'v2' }, healthy: true, locality: { zone: 'z1' }, instance: 'catalog-v2-x', workload: 'demo/catalog' },
    ]);
  });
});

describe('workloadsFromPods', () => {
  it('groups running pods by namespace and app', () => {
    const out = workloadsFromPods([
      pod('b-1', { 'app.kubernetes.io/name': 'frontend', version: 'v1' }, '10.0.0.5'),
      pod('a-1', { app: 'frontend' }, '10.0.0.4'),
      pod('done', { app: 'frontend' }, '10.0.0.6', 'Succeeded'),
      pod('lonely', {}),
    ]);
    expect(out).toHaveLength(1);
    expect(out[0]!.spec.instances.map((i) => i.id)).toEqual(['a-1', 'b-1']);
    expect(out[0]!.metadata).toEqual({ name: 'frontend', namespace: 'demo' });
  });

  it.each([
    [{ 'app.kubernetes.io/name': 'a', app: 'b' }, 'a'],
    [{ app: 'b' }, 'b'],
    [{}, undefined],
  ])('appOf(%j) = %s', (labels, want) => expect(appOf(labels)).toBe(want));
});
