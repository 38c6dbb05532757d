import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';

/**
 * Load balancing and fault delay through real sockets (issue 17): client → proxy → one of several
 * real upstreams, each answering with its name. The pure pickers have their table tests in
 * policies.test.ts; these check that the proxy feeds them what Envoy would (the hash key from the
 * request, the active request counts) and acts on their choice.
 */

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/** A GET through the proxy; `localAddress` picks the client's source address (any 127/8 address works on Linux loopback). */
function get(port: number, opts: { path?: string; headers?: http.OutgoingHttpHeaders; localAddress?: string } = {}): Promise<{ status: number; upstream: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', headers: { host: 'svc', ...opts.headers }, agent: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, upstream: String(res.headers['x-upstream'] ?? ''), ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('load balancing and fault delay through the proxy', () => {
  const ups: Upstream[] = [];
  let slow: Upstream;
  const proxies: Proxy[] = [];
  const start = async (route: Record<string, unknown>, cluster: Record<string, unknown>, ports = ups.map((u) => u.port), filters: unknown[] = []) => {
    const p = await startProxy({
      listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'c', ...route } }]) }, { filters })],
      clusters: [staticCluster('c', ports, cluster)],
    });
    proxies.push(p);
    return p;
  };

  beforeAll(async () => {
    for (const name of ['u0', 'u1', 'u2', 'u3']) ups.push(await httpUpstream(name));
    // Answers after 150 ms: a slow endpoint for least-request.
    slow = await httpUpstream('slow', (req, res, u) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.writeHead(200, { 'x-upstream': u.name }).end(u.name), 150));
    });
  });
  afterAll(async () => {
    for (const p of proxies) await p.stop(50);
    for (const u of [...ups, slow]) await u.close();
  });

  /** For each key, `n` requests: the upstreams each key reached. */
  async function spread(send: (key: number) => Promise<{ upstream: string }>, keys: number, n: number): Promise<Map<number, Set<string>>> {
    const out = new Map<number, Set<string>>();
    for (let k = 0; k < keys; k++) {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) seen.add((await send(k)).upstream);
      out.set(k, seen);
    }
    return out;
  }
  /** Every key stuck to one upstream, and the keys together reached at least `min` of them. */
  function expectSticky(byKey: Map<number, Set<string>>, min: number): void {
    for (const [k, seen] of byKey) expect([k, seen.size]).toEqual([k, 1]);
    const all = new Set([...byKey.values()].flatMap((s) => [...s]));
    expect(all.size).toBeGreaterThanOrEqual(min);
  }

  // columns: hash policy, how a request carries key k
  it.each<[string, unknown, (k: number) => { headers?: http.OutgoingHttpHeaders; localAddress?: string }]>([
    ['header', { header: { header_name: 'x-user' } }, (k) => ({ headers: { 'x-user': `user-${k}` } })],
    ['cookie', { cookie: { name: 'sid' } }, (k) => ({ headers: { cookie: `a=1; sid=s${k}; b=2` } })],
    ['source IP', { connection_properties: { source_ip: true } }, (k) => ({ localAddress: `127.0.0.${k + 2}` })],
  ])('ring hash with hash_policy by %s: one key always reaches the same endpoint, different keys spread', async (_what, policy, carry) => {
    const p = await start({ hash_policy: [policy] }, { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 1024 } });
    const byKey = await spread((k) => get(p.port, carry(k)), 24, 5);
    // 24 keys over 4 endpoints: each endpoint's share of the ring is ~1/4, so all four being hit
    // is near certain; at least 3 leaves room for an uneven ring.
    expectSticky(byKey, 3);
  });

  it('ring hash without a hash key (no hash_policy matches) still serves, spreading requests', async () => {
    const p = await start({ hash_policy: [{ header: { header_name: 'x-user' } }] }, { lb_policy: 'RING_HASH' });
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const r = await get(p.port);
      expect(r.status).toBe(200);
      seen.add(r.upstream);
    }
    expect(seen.size).toBeGreaterThanOrEqual(2);
  });

  it('least request sends a slow endpoint (150 ms per request) far fewer requests than round robin would', async () => {
    const p = await start({}, { lb_policy: 'LEAST_REQUEST' }, [ups[0]!.port, ups[1]!.port, ups[2]!.port, slow.port]);
    const counts: Record<string, number> = {};
    let next = 0;
    const N = 200;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < N) {
          next++;
          const r = await get(p.port);
          expect(r.status).toBe(200);
          counts[r.upstream] = (counts[r.upstream] ?? 0) + 1;
        }
      }),
    );
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(N);
    // Round robin gives each of the four 50. Least request (choice_count 2, two picks with
    // replacement) takes the slow one, which holds its requests for 150 ms, only when it has no
    // more active requests than the other pick: about 1/16 of requests (both picks the slow one).
    expect(counts['slow'] ?? 0).toBeLessThan(N / 8);
    for (const u of ['u0', 'u1', 'u2']) expect(counts[u] ?? 0).toBeGreaterThan(counts['slow'] ?? 0);
  }, 30_000);

  it('round robin, for contrast, gives the slow endpoint its half', async () => {
    const p = await start({}, { lb_policy: 'ROUND_ROBIN' }, [ups[0]!.port, slow.port]);
    const counts: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 10; i++) {
          const r = await get(p.port);
          counts[r.upstream] = (counts[r.upstream] ?? 0) + 1;
        }
      }),
    );
    expect(counts['slow']).toBe(20);
  });

  it('delays requests by the fault filter fixed_delay, then forwards them; 0 % delays none', async () => {
    const delay = (pct: number) => ({ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, delay: { fixed_delay: '0.4s', percentage: { numerator: pct } } } });
    const delayed = await start({}, {}, [ups[1]!.port], [delay(100)]);
    const hits = ups[1]!.hits;
    const rs = await Promise.all([0, 1, 2].map(() => get(delayed.port)));
    for (const r of rs) {
      expect([r.status, r.upstream]).toEqual([200, 'u1']);
      expect(r.ms).toBeGreaterThanOrEqual(390);
      expect(r.ms).toBeLessThan(400 + 2000);
    }
    expect(ups[1]!.hits).toBe(hits + 3);
    const never = await start({}, {}, [ups[1]!.port], [delay(0)]);
    const r = await get(never.port);
    expect(r.status).toBe(200);
    expect(r.ms).toBeLessThan(390);
  });

  it('delays by a per-route fault (typed_per_filter_config) only the route that has it', async () => {
    const p = await startProxy({
      listeners: [
        httpListener(
          'outbound',
          {
            route_config: routeConfig('r', [
              {
                match: { prefix: '/slow' },
                route: { cluster: 'c' },
                typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, delay: { fixed_delay: '0.4s', percentage: { numerator: 100 } } } },
              },
              { match: { prefix: '/' }, route: { cluster: 'c' } },
            ]),
          },
          { filters: [{ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } }] },
        ),
      ],
      clusters: [staticCluster('c', [ups[2]!.port])],
    });
    proxies.push(p);
    const slowRoute = await get(p.port, { path: '/slow/x' });
    expect([slowRoute.status, slowRoute.upstream]).toEqual([200, 'u2']);
    expect(slowRoute.ms).toBeGreaterThanOrEqual(390);
    const fast = await get(p.port, { path: '/fast' });
    expect(fast.status).toBe(200);
    expect(fast.ms).toBeLessThan(390);
  });
});
