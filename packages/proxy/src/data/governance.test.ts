import { afterEach, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import { LOCAL_RATE_LIMIT, httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request, type Upstream } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import type { Proxy } from '../proxy.js';
import type { StaticResources } from '../proxy.js';

// Governance with real upstreams that misbehave on purpose.
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function proxyFor(resources: StaticResources): Promise<Proxy & { port: number }> {
  const p = await startProxy(resources, { admin: { host: '127.0.0.1', port: 0 } });
  cleanup.push(() => p.stop(100));
  return p;
}
async function upstream(...args: Parameters<typeof httpUpstream>): Promise<Upstream> {
  const u = await httpUpstream(...args);
  cleanup.push(() => u.close());
  return u;
}
const oneRoute = (route: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  routeConfig('r', [{ name: 'main', match: { prefix: '/' }, route: { cluster: 'c', ...route }, ...extra }]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails (with `status`) every request whose sequence number satisfies `failing`. */
const flaky = (failing: (n: number) => boolean, status = 503) => (req: http.IncomingMessage, res: http.ServerResponse, u: Upstream) => {
  req.resume();
  res.writeHead(failing(u.hits) ? status : 200, { 'x-upstream': u.name });
  res.end(String(u.hits));
};

describe('retries', () => {
  it('turn a flaky upstream failure into a success', async () => {
    const u = await upstream('flaky', flaky((n) => n % 2 === 1));
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({ retry_policy: { retry_on: '5xx', num_retries: 2, retry_back_off: { base_interval: '0.001s' } } }) })],
      clusters: [staticCluster('c', [u.port])],
    });
    for (let i = 0; i < 10; i++) expect((await request(p.port)).status).toBe(200);
    expect(u.hits).toBe(20);
  });

  it('resend the request body on retry', async () => {
    const bodies: string[] = [];
    const u = await upstream('echo', (req, res, up) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(up.hits === 1 ? 503 : 200);
        res.end(b);
      });
    });
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({ retry_policy: { retry_on: '5xx', num_retries: 1 } }) })],
      clusters: [staticCluster('c', [u.port])],
    });
    const r = await request(p.port, { method: 'POST', body: 'payload' });
    expect(r.status).toBe(200);
    expect(bodies).toEqual(['payload', 'payload']);
  });

  // columns: description, circuit breaker thresholds
  it.each([
    ['max_retries', { max_retries: 0 }],
    ['retry_budget', { retry_budget: { budget_percent: { value: 0 }, min_retry_concurrency: 0 } }],
  ])('are refused beyond %s: the upstream failure passes through', async (_d, thresholds) => {
    const u = await upstream('down', flaky(() => true));
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({ retry_policy: { retry_on: '5xx', num_retries: 3 } }) })],
      clusters: [staticCluster('c', [u.port], { circuit_breakers: { thresholds: [thresholds] } })],
    });
    const r = await request(p.port);
    expect(r.status).toBe(503);
    expect(u.hits).toBe(1);
  });

  it('retry on connect failure to another host', async () => {
    const good = await upstream('good');
    const dead = await httpUpstream('dead');
    await dead.close();
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({ retry_policy: { retry_on: 'connect-failure', num_retries: 1 } }) })],
      clusters: [staticCluster('c', [dead.port, good.port])],
    });
    for (let i = 0; i < 6; i++) {
      const r = await request(p.port);
      expect(r.status).toBe(200);
      expect(r.headers['x-upstream']).toBe('good');
    }
  });
});

describe('timeouts', () => {
  const slow = (ms: number) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    const t = setTimeout(() => res.end('late'), ms);
    res.on('close', () => clearTimeout(t));
  };

  it('the route timeout answers 504', async () => {
    const u = await upstream('slow', slow(2000));
    const p = await proxyFor({ listeners: [httpListener('outbound', { route_config: oneRoute({ timeout: '0.2s' }) })], clusters: [staticCluster('c', [u.port])] });
    const t0 = Date.now();
    const r = await request(p.port);
    expect(r.status).toBe(504);
    expect(r.headers['x-octo-reason']).toBe('upstream-timeout');
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('the per-try timeout moves on to a retry', async () => {
    const u = await upstream('first-slow', (req, res, up) => (up.hits === 1 ? slow(2000)(req, res) : flaky(() => false)(req, res, up)));
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({ timeout: '3s', retry_policy: { retry_on: '5xx', num_retries: 1, per_try_timeout: '0.15s' } }) })],
      clusters: [staticCluster('c', [u.port])],
    });
    const t0 = Date.now();
    const r = await request(p.port);
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(1500);
  });
});

describe('circuit breaker and rate limit', () => {
  it('answers 503 with a reason when max_requests is reached', async () => {
    const u = await upstream('slow', (req, res) => {
      req.resume();
      setTimeout(() => res.end('ok'), 300);
    });
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({}) })],
      clusters: [staticCluster('c', [u.port], { circuit_breakers: { thresholds: [{ max_requests: 2 }] } })],
    });
    const rs = await Promise.all([1, 2, 3, 4].map(() => request(p.port)));
    const codes = rs.map((r) => r.status).sort();
    expect(codes).toEqual([200, 200, 503, 503]);
    expect(rs.find((r) => r.status === 503)?.headers['x-octo-reason']).toBe('circuit-breaker-open');
    expect((await request(p.port)).status).toBe(200);
  });

  it('answers 429 past the token bucket (listener-wide local rate limit)', async () => {
    const u = await upstream('u');
    const rl = {
      name: 'envoy.filters.http.local_ratelimit',
      typed_config: {
        '@type': LOCAL_RATE_LIMIT,
        stat_prefix: 'rl',
        token_bucket: { max_tokens: 3, tokens_per_fill: 3, fill_interval: '60s' },
        filter_enabled: { default_value: { numerator: 100 } },
        filter_enforced: { default_value: { numerator: 100 } },
      },
    };
    const p = await proxyFor({ listeners: [httpListener('outbound', { route_config: oneRoute({}) }, { filters: [rl] })], clusters: [staticCluster('c', [u.port])] });
    const codes: number[] = [];
    let reason: unknown;
    for (let i = 0; i < 5; i++) {
      const r = await request(p.port);
      codes.push(r.status);
      if (r.status === 429) reason = r.headers['x-octo-reason'];
    }
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect(reason).toBe('local-rate-limited');
  });

  it('applies a per-route rate limit only to its route', async () => {
    const u = await upstream('u');
    const perRoute = {
      'envoy.filters.http.local_ratelimit': {
        '@type': LOCAL_RATE_LIMIT,
        stat_prefix: 'per-route',
        token_bucket: { max_tokens: 1, fill_interval: '60s' },
        filter_enabled: { default_value: { numerator: 100 } },
        filter_enforced: { default_value: { numerator: 100 } },
      },
    };
    const routes = routeConfig('r', [
      { match: { prefix: '/limited' }, route: { cluster: 'c' }, typed_per_filter_config: perRoute },
      { match: { prefix: '/' }, route: { cluster: 'c' } },
    ]);
    const p = await proxyFor({ listeners: [httpListener('outbound', { route_config: routes })], clusters: [staticCluster('c', [u.port])] });
    expect((await request(p.port, { path: '/limited' })).status).toBe(200);
    expect((await request(p.port, { path: '/limited' })).status).toBe(429);
    expect((await request(p.port, { path: '/free' })).status).toBe(200);
  });

  it('injects faults (abort) with the configured status', async () => {
    const u = await upstream('u');
    const fault = { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', abort: { http_status: 418, percentage: { numerator: 100 } } } };
    const p = await proxyFor({ listeners: [httpListener('outbound', { route_config: oneRoute({}) }, { filters: [fault] })], clusters: [staticCluster('c', [u.port])] });
    const r = await request(p.port);
    expect(r.status).toBe(418);
    expect(r.headers['x-octo-reason']).toBe('fault-injected');
    expect(u.hits).toBe(0);
  });
});

describe('outlier detection', () => {
  it('ejects a failing endpoint, sends it no traffic, and brings it back after the ejection time', async () => {
    const good = await upstream('good');
    let badFails = true;
    const bad = await upstream('bad', (req, res, up) => {
      req.resume();
      res.writeHead(badFails ? 500 : 200, { 'x-upstream': up.name });
      res.end();
    });
    const p = await proxyFor({
      listeners: [httpListener('outbound', { route_config: oneRoute({}) })],
      clusters: [
        staticCluster('c', [good.port, bad.port], {
          outlier_detection: { consecutive_5xx: 3, interval: '10s', base_ejection_time: '3s', max_ejection_percent: 50 },
        }),
      ],
    });
    // Round robin alternates, so within 8 requests bad sees 3 consecutive 500s and is ejected.
    for (let i = 0; i < 8; i++) await request(p.port);
    expect(bad.hits).toBe(3);
    const hitsAtEjection = bad.hits;
    type Dump = { clusters: { hosts: { address: string; ejected: boolean; ejection_count: number; ejected_until?: string }[] }[] };
    const badHost = async () => ((await (await fetch(`http://127.0.0.1:${p.adminPort}/clusters`)).json()) as Dump).clusters[0]!.hosts.find((h) => h.address === `127.0.0.1:${bad.port}`);
    const ejected = await badHost();
    expect(ejected).toMatchObject({ ejected: true, ejection_count: 1 });
    // Only a request answered before the ejection ends is sure to have been routed while it held
    // (a busy machine may take the whole ejection time for these).
    const until = Date.parse(ejected!.ejected_until!);
    let whileEjected = 0;
    for (let i = 0; i < 20; i++) {
      const r = await request(p.port);
      if (Date.now() >= until) break;
      expect(r.headers['x-upstream']).toBe('good');
      expect(bad.hits).toBe(hitsAtEjection);
      whileEjected++;
    }
    expect(whileEjected).toBeGreaterThan(0);
    badFails = false;
    await sleep(Math.max(0, until - Date.now()) + 100);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(String((await request(p.port)).headers['x-upstream']));
    expect(seen).toEqual(new Set(['good', 'bad']));
  });
});
