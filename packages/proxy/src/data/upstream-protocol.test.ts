import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { h2Upstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

// Upstream HTTP/2 asked for the way current Envoy and Istio-style control planes ask for it
// (typed_extension_protocol_options), through real sockets: an HTTP/1.1 client, an HTTP/2-only
// upstream, several requests on one multiplexed session.
describe('typed_extension_protocol_options: HTTP/2 upstream', () => {
  let h2: Upstream;
  let proxy: Proxy & { port: number };

  beforeAll(async () => {
    h2 = await h2Upstream('h2', (s, h) => {
      s.respond({ ':status': 200, 'x-upstream': 'h2', 'x-path': String(h[':path']) });
      s.end('over h2');
    });
    const cluster = staticCluster('h2', [h2.port], {
      typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicit_http_config: { http2_protocol_options: {} } } },
    });
    proxy = await startProxy({ listeners: [httpListener('outbound', { route_config: routeConfig('outbound', [{ match: { prefix: '/' }, route: { cluster: 'h2' } }]) })], clusters: [cluster] });
  });
  afterAll(async () => {
    await proxy.stop(100);
    await h2.close();
  });

  it('speaks HTTP/2 to the cluster (an HTTP/1.1 pool would get no answer from this upstream)', async () => {
    const answers = await Promise.all([1, 2, 3].map((i) => request(proxy.port, { path: `/r${i}` })));
    expect(answers.map((a) => `${a.status} ${a.body} ${String(a.headers['x-path'])}`)).toEqual(['200 over h2 /r1', '200 over h2 /r2', '200 over h2 /r3']);
    expect(h2.hits).toBe(3);
    expect(h2.connections).toBe(1);
  });
});
