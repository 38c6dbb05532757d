import { describe, expect, it } from '@jest/globals';
import { ProxyConfigSchema } from '../config.js';
import { decide, newEvidence, observe, peerCheckSpec, statusHealthy, type PeerDecision, type PeerEvidence, type PeerInput } from './p2p-decision.js';

const NOW = 100_000;
const INTERVAL = 1000; // stale / fresh for 3 × 1000 ms
const base: PeerInput = {
  now: NOW,
  called: true,
  centralHealthy: true,
  checkerDecides: false,
  since: undefined,
  intervalMs: INTERVAL,
  staleFactor: 3,
  ejected: false,
  ejectedAt: 0,
  recentSuccess: false,
  evidence: undefined,
};
/** Local evidence: a verdict confirmed `ago` ms before NOW. */
const ev = (healthy: boolean | undefined, ago = 100): PeerEvidence => ({ healthy, at: NOW - ago, successes: 0, failures: 0, lastProbeAt: NOW - ago });
const CU = { centralHealthy: false, checkerDecides: true }; // centrally unhealthy by the checker's verdict

describe('decide: when a sidecar probes, and what its evidence does', () => {
  // columns: case, input (over `base`), expected decision
  it.each<[string, Partial<PeerInput>, PeerDecision]>([
    // Agreement: nothing to do.
    ['healthy, called, not ejected: no probe', {}, { probe: undefined, override: undefined, uneject: false }],
    ['healthy and stale: own traffic is the evidence, no probe', { since: 0 }, { probe: undefined, override: undefined, uneject: false }],
    // Centrally healthy, outlier-ejected.
    ['healthy but ejected: probe', { ejected: true, ejectedAt: NOW - 50 }, { probe: 'ejected', override: undefined, uneject: false }],
    ['healthy, ejected, not called: no probe', { ejected: true, ejectedAt: NOW - 50, called: false }, { probe: undefined, override: undefined, uneject: false }],
    ['ejected, probes passed after the ejection: un-eject, stop', { ejected: true, ejectedAt: NOW - 500, evidence: ev(true, 100) }, { probe: undefined, override: undefined, uneject: true }],
    ['ejected again after probes passed: probe first', { ejected: true, ejectedAt: NOW - 50, evidence: ev(true, 100) }, { probe: 'ejected', override: undefined, uneject: false }],
    ['healthy, probes failed: kept out, probing on', { ejected: true, ejectedAt: NOW - 500, evidence: ev(false) }, { probe: 'local-unhealthy', override: 'unhealthy', uneject: false }],
    ['healthy, probes failed, ejection over: still out', { evidence: ev(false) }, { probe: 'local-unhealthy', override: 'unhealthy', uneject: false }],
    ['healthy, failed evidence aged out: back to the central verdict', { evidence: ev(false, 3000) }, { probe: undefined, override: undefined, uneject: false }],
    ['healthy, failed evidence, not called: out, no probe', { evidence: ev(false), called: false }, { probe: undefined, override: 'unhealthy', uneject: false }],
    ['healthy, probes undecided yet: no override', { ejected: true, ejectedAt: NOW - 500, evidence: ev(undefined) }, { probe: 'ejected', override: undefined, uneject: false }],
    // Centrally unhealthy by the checker.
    ['unhealthy, fresh verdict, no own evidence: stands', { ...CU, since: NOW - 2999 }, { probe: undefined, override: undefined, uneject: false }],
    ['unhealthy, stale verdict: probe', { ...CU, since: NOW - 3000 }, { probe: 'stale', override: undefined, uneject: false }],
    ['unhealthy, no time known: not stale', { ...CU }, { probe: undefined, override: undefined, uneject: false }],
    ['unhealthy, own requests succeed (panic): probe', { ...CU, since: NOW - 10, recentSuccess: true }, { probe: 'succeeds', override: undefined, uneject: false }],
    ['unhealthy, stale, not called: no probe', { ...CU, since: 0, called: false }, { probe: undefined, override: undefined, uneject: false }],
    ['unhealthy, probes pass: back in rotation here, probing on', { ...CU, since: 0, evidence: ev(true) }, { probe: 'local-healthy', override: 'healthy', uneject: false }],
    ['unhealthy, probes fail: agreement, no probe', { ...CU, since: 0, evidence: ev(false) }, { probe: undefined, override: undefined, uneject: false }],
    ['unhealthy, failed evidence aged out, still stale: probe again', { ...CU, since: 0, evidence: ev(false, 3000) }, { probe: 'stale', override: undefined, uneject: false }],
    ['unhealthy, healthy evidence aged out: the verdict stands again', { ...CU, since: NOW - 10, evidence: ev(true, 3000) }, { probe: undefined, override: undefined, uneject: false }],
    // Unhealthy by its source (not ready, draining): never overridden, never probed.
    ['source-unhealthy, stale, succeeding: nothing', { centralHealthy: false, since: 0, recentSuccess: true }, { probe: undefined, override: undefined, uneject: false }],
    ['source-unhealthy with healthy evidence: no override', { centralHealthy: false, evidence: ev(true) }, { probe: undefined, override: undefined, uneject: false }],
  ])('%s', (_case, over, want) => {
    expect(decide({ ...base, ...over })).toEqual(want);
  });
});

describe('observe: thresholds on probe results', () => {
  const t = { healthyThreshold: 2, unhealthyThreshold: 3 };
  // columns: case, results in order, expected local verdict after them
  it.each<[string, boolean[], boolean | undefined]>([
    ['one success is not enough for healthy (threshold 2)', [true], undefined],
    ['two successes make healthy', [true, true], true],
    ['two failures are not enough for unhealthy (threshold 3)', [false, false], undefined],
    ['three failures make unhealthy', [false, false, false], false],
    ['a success resets the failure count', [false, false, true, false, false], undefined],
    ['healthy, then three failures: unhealthy', [true, true, false, false, false], false],
    ['unhealthy, one success: still unhealthy', [false, false, false, true], false],
    ['unhealthy, two successes: healthy', [false, false, false, true, true], true],
  ])('%s', (_case, results, want) => {
    let e = newEvidence();
    results.forEach((ok, i) => (e = observe(e, ok, 1000 + i, t)));
    expect(e.healthy).toBe(want);
  });

  it('a result agreeing with the verdict refreshes its time', () => {
    const e = observe(observe(observe(newEvidence(), true, 1, t), true, 2, t), true, 50, t);
    expect(e).toMatchObject({ healthy: true, at: 50, lastProbeAt: 50 });
  });
});

describe('peerCheckSpec: the health check as governance carries it', () => {
  // columns: case, ServiceGovernance JSON, expected spec (subset) or undefined
  it.each<[string, unknown, unknown]>([
    ['no health check', { service: 'a.b.svc', clusters: ['c'] }, undefined],
    [
      'HTTP',
      { service: 'a.b.svc', clusters: ['c'], healthCheck: { httpPath: '/healthz', expectedStatuses: [200], intervalMs: 500, timeoutMs: 200, healthyThreshold: 1, unhealthyThreshold: 2 } },
      { kind: 'http', path: '/healthz', expectedStatuses: [200], intervalMs: 500, timeoutMs: 200, healthyThreshold: 1, unhealthyThreshold: 2, host: 'a.b.svc' },
    ],
    ['TCP with defaults', { service: 'a.b.svc', healthCheck: { tcp: true } }, { kind: 'tcp', intervalMs: 10_000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 3 }],
    ['gRPC is probed as TCP', { service: 'a.b.svc', healthCheck: { grpc: { service: 'x.Y' }, intervalMs: 2000 } }, { kind: 'tcp', intervalMs: 2000 }],
  ])('%s', (_case, gov, want) => {
    const spec = peerCheckSpec(gov);
    if (want === undefined) expect(spec).toBeUndefined();
    else expect(spec).toMatchObject(want as object);
  });

  // columns: status, expected list, healthy
  it.each<[number, number[], boolean]>([
    [200, [], true],
    [399, [], true],
    [404, [], false],
    [503, [503], true],
    [200, [204], false],
  ])('status %i with %j: %s', (status, expected, want) => expect(statusHealthy(status, expected)).toBe(want));
});

describe('P2P settings', () => {
  it('default to 4 probes in flight and a verdict stale after 3 intervals', () => {
    expect(ProxyConfigSchema.parse({})).toMatchObject({ p2pMaxConcurrentProbes: 4, p2pStaleIntervals: 3 });
  });
  // columns: input, the field the error names
  it.each([
    [{ p2pMaxConcurrentProbes: -1 }, 'p2pMaxConcurrentProbes'],
    [{ p2pMaxConcurrentProbes: 'many' }, 'p2pMaxConcurrentProbes'],
    [{ p2pMaxConcurrentProbes: 1000 }, 'p2pMaxConcurrentProbes'],
    [{ p2pStaleIntervals: 0 }, 'p2pStaleIntervals'],
  ])('%j is refused naming %s', (input, field) => {
    const r = ProxyConfigSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual([field]);
  });
});
