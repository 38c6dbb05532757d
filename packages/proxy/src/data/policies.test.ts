import { describe, expect, it } from '@jest/globals';
import type { ClusterModel, EndpointSet, OutlierSpec, RetrySpec, RouteTable } from '../model.js';
import { DEFAULT_CIRCUIT_BREAKERS, DEFAULT_UPSTREAM_TIMEOUTS } from '../translate/cluster.js';
import { HostSet } from './load-balancer.js';
import { isEjected, newOutlierState, recordResult, decay } from './outlier.js';
import { TokenBucket } from './rate-limit.js';
import { isRetriable, retryDelayMs, type AttemptOutcome } from './retry.js';
import { selectVirtualHost } from './router.js';

// The pure policies of the data path, table-driven.
const cluster = (over: Partial<ClusterModel> = {}): ClusterModel => ({
  name: 'c',
  discovery: 'eds',
  edsName: 'c',
  connectTimeoutMs: 1000,
  lbPolicy: 'round_robin',
  choiceCount: 2,
  minRingSize: 1024,
  panicThreshold: 50,
  protocol: 'http1',
  maxRequestsPerConnection: 0,
  upstreamTimeouts: DEFAULT_UPSTREAM_TIMEOUTS,
  circuitBreakers: DEFAULT_CIRCUIT_BREAKERS,
  ...over,
});
const eps = (groups: { priority?: number; weight?: number; hosts: [number, number?, string?][] }[]): EndpointSet => ({
  cluster: 'c',
  overprovisioningFactor: 1.4,
  localities: groups.map((g, i) => ({
    locality: `l${i}`,
    priority: g.priority ?? 0,
    weight: g.weight ?? 1,
    endpoints: g.hosts.map(([port, weight, health]) => ({ address: { kind: 'tcp', host: '10.0.0.1', port }, weight: weight ?? 1, health: (health ?? 'healthy') as 'healthy' })),
  })),
});
/** A deterministic PRNG (mulberry32) so distributions are exact across runs. */
function prng(seed = 1): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function tally(set: HostSet, n: number, key?: () => number): Record<number, number> {
  const out: Record<number, number> = {};
  for (let i = 0; i < n; i++) {
    const h = set.choose(key?.());
    const port = h && h.address.kind === 'tcp' ? h.address.port : -1;
    out[port] = (out[port] ?? 0) + 1;
  }
  return out;
}

describe('load balancing', () => {
  it('round robin follows endpoint weights exactly', () => {
    const s = new HostSet(cluster(), prng());
    s.update(eps([{ hosts: [[1, 3], [2, 1]] }]));
    expect(tally(s, 400)).toEqual({ 1: 300, 2: 100 });
  });

  it('round robin skips unhealthy (EDS) endpoints', () => {
    const s = new HostSet(cluster(), prng());
    s.update(eps([{ hosts: [[1], [2], [3, 1, 'unhealthy']] }]));
    expect(tally(s, 100)).toEqual({ 1: 50, 2: 50 });
  });

  it('enters panic below the threshold and balances over all hosts', () => {
    const s = new HostSet(cluster({ panicThreshold: 50 }), prng());
    s.update(eps([{ hosts: [[1], [2, 1, 'unhealthy'], [3, 1, 'unhealthy']] }]));
    expect(Object.keys(tally(s, 99)).sort()).toEqual(['1', '2', '3']);
  });

  it('spills load to the next priority as health drops (overprovisioning 1.4)', () => {
    const s = new HostSet(cluster({ panicThreshold: 0 }), prng(7));
    // P0 at 50% health → 70% load; P1 takes the remaining 30%.
    s.update(eps([{ priority: 0, hosts: [[1], [2, 1, 'unhealthy']] }, { priority: 1, hosts: [[3]] }]));
    const t = tally(s, 10_000);
    expect(t[1]! / 10_000).toBeCloseTo(0.7, 1);
    expect(t[3]! / 10_000).toBeCloseTo(0.3, 1);
    expect(t[2]).toBeUndefined();
  });

  it('least request prefers idle hosts', () => {
    const s = new HostSet(cluster({ lbPolicy: 'least_request' }), prng());
    s.update(eps([{ hosts: [[1], [2]] }]));
    s.hosts[0]!.active = 10;
    const t = tally(s, 1000);
    expect(t[2]!).toBeGreaterThan(700);
  });

  it('ring hash sends one key to one host, and moves few other keys when a host leaves', () => {
    const s = new HostSet(cluster({ lbPolicy: 'ring_hash' }), prng());
    s.update(eps([{ hosts: [[1], [2], [3], [4]] }]));
    const keys = Array.from({ length: 1000 }, (_, i) => (i * 2654435761) >>> 0);
    const before = keys.map((k) => s.choose(k)!.key);
    expect(keys.map((k) => s.choose(k)!.key)).toEqual(before);
    s.update(eps([{ hosts: [[1], [2], [3]] }]));
    const after = keys.map((k) => s.choose(k)!.key);
    // The ring is rebuilt at the same minimum size, so a few keys of staying hosts move too
    // (as with Envoy's ring hash); a modulo hash would move about two thirds of them.
    const staying = before.filter((b) => !b.endsWith(':4')).length;
    const moved = before.filter((b, i) => b !== after[i] && !b.endsWith(':4')).length;
    expect(moved / staying).toBeLessThan(0.15);
  });
});

describe('outlier detection', () => {
  const spec: OutlierSpec = {
    consecutive5xx: 3,
    enforcingConsecutive5xx: 100,
    consecutiveGatewayFailure: 5,
    enforcingConsecutiveGatewayFailure: 0,
    intervalMs: 1000,
    baseEjectionTimeMs: 100,
    maxEjectionTimeMs: 250,
    maxEjectionPercent: 10,
  };
  it('ejects after consecutive errors, for base × ejections (capped)', () => {
    const s = newOutlierState();
    const fail = (now: number) => recordResult(spec, s, 'error-5xx', now, 0, 10, () => 0);
    expect([fail(0), fail(0), fail(0)]).toEqual([false, false, true]);
    expect(s.ejectedUntil).toBe(100);
    expect(isEjected(s, 50)).toBe(true);
    expect(isEjected(s, 100)).toBe(false);
    fail(200);
    fail(200);
    expect(fail(200)).toBe(true);
    expect(s.ejectedUntil).toBe(400);
    for (let i = 0; i < 3; i++) fail(500);
    expect(s.ejectedUntil).toBe(750); // 3 × 100 capped at 250
  });
  it('a success resets the count; max ejection percent holds back a second ejection', () => {
    const s = newOutlierState();
    recordResult(spec, s, 'error-5xx', 0, 0, 10);
    recordResult(spec, s, 'error-5xx', 0, 0, 10);
    recordResult(spec, s, 'success', 0, 0, 10);
    expect(recordResult(spec, s, 'error-5xx', 0, 0, 10)).toBe(false);
    const t = newOutlierState();
    for (let i = 0; i < 2; i++) recordResult(spec, t, 'error-5xx', 0, 1, 10, () => 0);
    expect(recordResult(spec, t, 'error-5xx', 0, 1, 10, () => 0)).toBe(false);
  });
  it('the ejection multiplier decays while the host behaves', () => {
    const s = newOutlierState();
    for (let i = 0; i < 3; i++) recordResult(spec, s, 'error-5xx', 0, 0, 10, () => 0);
    expect(s.ejections).toBe(1);
    decay(spec, s, 500);
    expect(s.ejections).toBe(1);
    decay(spec, s, 1200);
    expect(s.ejections).toBe(0);
  });
});

describe('retry policy', () => {
  const spec = (retryOn: string[], codes: number[] = []): RetrySpec => ({ retryOn, numRetries: 1, perTryTimeoutMs: 0, retriableStatusCodes: codes, baseIntervalMs: 25, maxIntervalMs: 250 });
  // columns: retry_on, outcome, retriable
  it.each<[string[], AttemptOutcome, boolean]>([
    [['5xx'], { kind: 'response', status: 500 }, true],
    [['5xx'], { kind: 'response', status: 404 }, false],
    [['5xx'], { kind: 'timeout' }, true],
    [['gateway-error'], { kind: 'response', status: 500 }, false],
    [['gateway-error'], { kind: 'response', status: 503 }, true],
    [['connect-failure'], { kind: 'connect-failure' }, true],
    [['connect-failure'], { kind: 'reset' }, false],
    [['reset'], { kind: 'reset' }, true],
    [['retriable-4xx'], { kind: 'response', status: 409 }, true],
    [['retriable-status-codes'], { kind: 'response', status: 418 }, false],
    [['unavailable'], { kind: 'response', status: 200, grpcStatus: 14 }, true],
    [['unavailable'], { kind: 'response', status: 200, grpcStatus: 13 }, false],
    [['internal', 'cancelled'], { kind: 'response', status: 200, grpcStatus: 13 }, true],
  ])('%j on %j → %s', (on, o, want) => expect(isRetriable(spec(on), o)).toBe(want));
  it('retriable status codes', () => expect(isRetriable(spec(['retriable-status-codes'], [418]), { kind: 'response', status: 418 })).toBe(true));
  it('backs off with full jitter under the cap', () => {
    const s = spec(['5xx']);
    expect(retryDelayMs(s, 0, () => 0.999)).toBeLessThan(25);
    expect(retryDelayMs(s, 3, () => 0.999)).toBeLessThan(200);
    expect(retryDelayMs(s, 10, () => 0.999)).toBeLessThan(250);
    expect(retryDelayMs(s, 10, () => 0)).toBe(0);
  });
});

describe('token bucket', () => {
  it('starts full, empties, refills per interval up to the max', () => {
    let now = 0;
    const b = new TokenBucket({ maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 100, enabled: 1, enforced: 1, status: 429 }, () => now);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
    now = 150;
    expect([b.take(), b.take()]).toEqual([true, false]);
    now = 10_000;
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
  });
});

describe('virtual host selection', () => {
  const vh = (name: string, domains: string[]) => ({ name, domains, routes: [], requestHeadersToAdd: [], requestHeadersToRemove: [], responseHeadersToAdd: [], responseHeadersToRemove: [] });
  const table: RouteTable = {
    name: 't',
    virtualHosts: [vh('exact', ['api.example.com']), vh('suffix', ['*.example.com']), vh('prefix', ['api.*']), vh('any', ['*'])],
    requestHeadersToAdd: [],
    requestHeadersToRemove: [],
    responseHeadersToAdd: [],
    responseHeadersToRemove: [],
  };
  // columns: authority, virtual host
  it.each([
    ['api.example.com', 'exact'],
    ['API.example.com:8080', 'exact'],
    ['www.example.com', 'suffix'],
    ['api.other', 'prefix'],
    ['reviews', 'any'],
  ])('%s → %s', (authority, want) => expect(selectVirtualHost(table, authority)?.name).toBe(want));
});
