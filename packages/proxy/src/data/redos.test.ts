import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

// Issue 17: a RoutePolicy path regex `/(a+)+b` and one request with a 28-character path froze a
// sidecar's event loop for seconds (backtracking). Through real sockets, with the regex on the
// path and on a header, the proxy now answers at once and its event loop never stalls.
describe('ReDoS through the proxy', () => {
  let ok: Upstream;
  let evil: Upstream;
  let proxy: Proxy & { port: number };

  beforeAll(async () => {
    ok = await httpUpstream('ok');
    evil = await httpUpstream('evil');
    const routes = routeConfig('outbound', [
      { name: 'evil-path', match: { safe_regex: { regex: '/(a+)+b' } }, route: { cluster: 'evil' } },
      { name: 'evil-header', match: { prefix: '/', headers: [{ name: 'x-id', string_match: { safe_regex: { regex: '(a+)+b' } } }] }, route: { cluster: 'evil' } },
      { name: 'default', match: { prefix: '/' }, route: { cluster: 'ok' } },
    ]);
    proxy = await startProxy({ listeners: [httpListener('outbound', { route_config: routes })], clusters: [staticCluster('ok', [ok.port]), staticCluster('evil', [evil.port])] });
  });
  afterAll(async () => {
    await proxy.stop(100);
    await ok.close();
    await evil.close();
  });

  it('routes a 40-character non-matching path at once and without stalling the event loop', async () => {
    const path = `/${'a'.repeat(39)}`;
    await request(proxy.port, { path }); // warm: connection pool, JIT
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 20 }, () => request(proxy.port, { path, headers: { 'x-id': 'a'.repeat(60) } })));
    const elapsed = performance.now() - started;
    delay.disable();
    expect(answers.map((a) => `${a.status} ${String(a.headers['x-upstream'])}`)).toEqual(Array(20).fill('200 ok'));
    // With backtracking, one such request took 2.3 s at 29 characters and doubled per character.
    expect(elapsed).toBeLessThan(2000);
    expect(delay.max / 1e6).toBeLessThan(500);
  });

  it('still routes what the pattern matches', async () => {
    const r = await request(proxy.port, { path: '/aaab' });
    expect(r.headers['x-upstream']).toBe('evil');
  });
});
