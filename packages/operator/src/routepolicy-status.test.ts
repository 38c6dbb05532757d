import { describe, expect, it } from '@jest/globals';
import type { RoutePolicyStatus } from '@octo-mesh/api';
import type { RoutePolicyObservation, RoutePolicyView } from './aggregate.js';
import { planRoutePolicyStatus } from './routepolicy-status.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const view = (o: Partial<RoutePolicyView>): RoutePolicyView => ({ namespace: 'shop', name: 'cart', generation: 3, accepted: true, acked: 0, nacked: 0, ...o });
const obs = (views: RoutePolicyView[], missing: string[] = []): RoutePolicyObservation => ({ complete: missing.length === 0, missing, views });

const accepted = (since: number) => ({ type: 'Accepted', status: 'True' as const, reason: 'Translated', message: 'translated to xDS', observedGeneration: 3, lastTransitionTime: at(since) });

describe('planRoutePolicyStatus', () => {
  // columns: name, current status, observation, now (s), expected status, write
  it.each<[string, RoutePolicyStatus | undefined, RoutePolicyObservation, number, RoutePolicyStatus, boolean]>([
    [
      'sums ACKs over pilots',
      undefined,
      obs([view({ acked: 4, total: 5 }), view({ acked: 3, total: 3 })]),
      0,
      {
        observedGeneration: 3,
        accepted: true,
        conditions: [accepted(0), { type: 'Synced', status: 'Unknown', reason: 'Pending', message: '7 of 8 sidecars ACKed generation 3', observedGeneration: 3, lastTransitionTime: at(0) }],
        sidecars: { total: 8, acked: 7, nacked: 0 },
      },
      true,
    ],
    [
      'a NACK names the first reason',
      undefined,
      obs([view({ acked: 4, total: 5 }), view({ acked: 2, nacked: 1, total: 3, firstNack: 'pod-9: cluster shop/cart: unknown subset v3' })]),
      0,
      {
        observedGeneration: 3,
        accepted: true,
        conditions: [accepted(0), { type: 'Synced', status: 'False', reason: 'Nacked', message: '1 sidecars NACKed generation 3; first: pod-9: cluster shop/cart: unknown subset v3', observedGeneration: 3, lastTransitionTime: at(0) }],
        sidecars: { total: 8, acked: 6, nacked: 1 },
      },
      true,
    ],
    [
      'rejected by translation: why',
      undefined,
      obs([view({ accepted: false, reason: 'Invalid', message: 'subset v3 is not defined' })]),
      0,
      {
        observedGeneration: 3,
        accepted: false,
        conditions: [
          { type: 'Accepted', status: 'False', reason: 'Invalid', message: 'subset v3 is not defined', observedGeneration: 3, lastTransitionTime: at(0) },
          { type: 'Synced', status: 'False', reason: 'NotAccepted', message: 'not sent to sidecars', observedGeneration: 3, lastTransitionTime: at(0) },
        ],
        sidecars: { total: 0, acked: 0, nacked: 0 },
      },
      true,
    ],
    [
      'unchanged but for time: no write, timestamps kept',
      {
        observedGeneration: 3,
        accepted: true,
        conditions: [accepted(0), { type: 'Synced', status: 'True', reason: 'AllAcked', message: '8 sidecars ACKed generation 3', observedGeneration: 3, lastTransitionTime: at(5) }],
        sidecars: { total: 8, acked: 8, nacked: 0 },
      },
      obs([view({ acked: 5, total: 5 }), view({ acked: 3, total: 3 })]),
      60,
      {
        observedGeneration: 3,
        accepted: true,
        conditions: [accepted(0), { type: 'Synced', status: 'True', reason: 'AllAcked', message: '8 sidecars ACKed generation 3', observedGeneration: 3, lastTransitionTime: at(5) }],
        sidecars: { total: 8, acked: 8, nacked: 0 },
      },
      false,
    ],
    [
      'no pilot translated it (no sidecar calls the service): acceptance unknown, not claimed',
      undefined,
      obs([]),
      0,
      {
        observedGeneration: 3,
        conditions: [
          { type: 'Accepted', status: 'Unknown', reason: 'NoSidecars', message: 'no sidecar calls the target service yet; translated when one does', observedGeneration: 3, lastTransitionTime: at(0) },
          { type: 'Synced', status: 'Unknown', reason: 'NoSidecars', message: 'no sidecar calls the target service yet; translated when one does', observedGeneration: 3, lastTransitionTime: at(0) },
        ],
        sidecars: { total: 0, acked: 0, nacked: 0 },
      },
      true,
    ],
    [
      'a pilot missing: hold (no write)',
      { observedGeneration: 2 },
      obs([view({ acked: 5 })], ['pilot-b: timeout']),
      0,
      { observedGeneration: 2 },
      false,
    ],
  ])('%s', (_name, current, observation, now, expected, write) => {
    const out = planRoutePolicyStatus({ generation: 3, current, observation, now: T0 + now * 1000 });
    expect(out.status).toEqual(expected);
    expect(out.write).toBe(write);
  });
});
