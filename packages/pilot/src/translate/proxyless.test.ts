import { describe, expect, it } from '@jest/globals';
import { parseListenerName, routeConfigFor } from './proxyless.js';

describe('parseListenerName', () => {
  // columns: listener name, the asking node's namespace, expected target (undefined: not a service name)
  it.each([
    ['catalog.demo.svc:8080', 'web', { service: 'demo/catalog', port: 8080 }],
    ['catalog.demo.svc', 'web', { service: 'demo/catalog' }],
    ['catalog.demo.svc.cluster.local:8080', 'web', { service: 'demo/catalog', port: 8080 }],
    ['catalog.demo.svc.cluster.local', 'web', { service: 'demo/catalog' }],
    ['catalog.demo:8080', 'web', { service: 'demo/catalog', port: 8080 }],
    ['catalog:8080', 'web', { service: 'web/catalog', port: 8080 }],
    ['Catalog.Demo.svc:8080', 'web', { service: 'demo/catalog', port: 8080 }],
    ['catalog', 'web', undefined], // a bare word: the short forms need a port
    ['catalog.demo', 'web', undefined],
    ['outbound', 'web', undefined], // the sidecar's listeners are never services
    ['outbound|5432|tcp|db.demo.svc', 'web', undefined],
    ['catalog.demo.svc:0', 'web', undefined],
    ['catalog.demo.svc:65536', 'web', undefined],
    ['a.b.c.svc:80', 'web', undefined],
    ['xdstp://authority/envoy.config.listener.v3.Listener/catalog', 'web', undefined],
  ])('%s (from %s)', (name, ns, want) => {
    expect(parseListenerName(name, ns)).toEqual(want);
  });
});

describe('routeConfigFor', () => {
  const names = ['catalog.demo.svc:9090', 'catalog.demo.svc:8080'];
  // columns: target port, expected route configuration (undefined: the service has no such HTTP port)
  it.each([
    [undefined, 'catalog.demo.svc:9090'], // no port: the first HTTP port
    [8080, 'catalog.demo.svc:8080'],
    [5432, undefined],
  ])('port %s', (port, want) => {
    expect(routeConfigFor({ service: 'demo/catalog', ...(port !== undefined ? { port } : {}) }, names)).toBe(want);
  });
});
