import { describe, expect, it } from '@jest/globals';
import { initialState, maxUnhealthyShare, observe, planPublish, type EndpointState } from './verdict.js';

const T = { healthyThreshold: 2, unhealthyThreshold: 3 };
const run = (start: boolean, results: string) => {
  let s = initialState({ healthy: start }, 0);
  const trace: string[] = [];
  [...results].forEach((r, i) => {
    s = observe(s, r === '+', r === '+' ? undefined : 'HTTP 503', T, i + 1);
    trace.push(s.healthy ? 'H' : 'U');
  });
  return trace.join('');
};

describe('observe: the threshold state machine (healthy 2, unhealthy 3)', () => {
  // columns: starting health, check results (+ ok, - fail), health after each check
  it.each([
    [true, '---', 'HHU'],
    [true, '--+--', 'HHHHH'],
    [true, '--+---', 'HHHHHU'],
    [false, '+', 'U'],
    [false, '++', 'UH'],
    [false, '+-++', 'UUUH'],
    [true, '---++', 'HHUUH'],
    [true, '++++', 'HHHH'],
  ])('from healthy=%s, %s → %s', (start, results, expected) => {
    expect(run(start, results)).toBe(expected);
  });

  it('records when the state changed and why', () => {
    let s = initialState(undefined, 0);
    for (const t of [10, 20, 30]) s = observe(s, false, 'timeout after 1000 ms', T, t);
    expect(s).toMatchObject({ healthy: false, since: 30, failingSince: 10, reason: 'timeout after 1000 ms' });
    s = observe(observe(s, true, undefined, T, 40), true, undefined, T, 50);
    expect(s).toEqual({ healthy: true, successes: 0, failures: 0, since: 50 });
  });

  it('continues from a published verdict (takeover)', () => {
    expect(initialState({ healthy: false, since: 5 }, 100)).toEqual({ healthy: false, successes: 0, failures: 0, since: 5 });
    expect(initialState(undefined, 100).healthy).toBe(true);
  });
});

const st = (healthy: boolean, failingSince?: number): EndpointState => ({ healthy, successes: 0, failures: 0, since: 0, ...(failingSince !== undefined ? { failingSince } : {}) });

describe('planPublish: the panic rule', () => {
  // columns: endpoints (id:state, U = the state machine says unhealthy, number = failing since),
  //          published unhealthy ids, max unhealthy share, expected unhealthy ids, held ids
  it.each([
    ['a:H b:H c:H d:H', [], 0.5, [], []],
    ['a:U1 b:H c:H d:H', [], 0.5, ['a'], []],
    ['a:U1 b:U2 c:H d:H', [], 0.5, ['a', 'b'], []],
    ['a:U3 b:U1 c:U2 d:U1', [], 0.5, ['b', 'd'], ['a', 'c']], // partition: oldest failures first, then by id
    ['a:U1 b:U1 c:U1 d:U1', ['c'], 0.5, ['a', 'c'], ['b', 'd']], // already published counts first
    ['a:U1 b:U1 c:U1 d:U1', [], 1, ['a', 'b', 'c', 'd'], []], // rule off
    ['a:U1 b:U1 c:U1 d:U1', [], 0, [], ['a', 'b', 'c', 'd']], // panicThreshold 100: never
    ['a:U1', [], 0.5, [], ['a']], // a lone endpoint is never taken away
    ['a:U1 b:H', [], 0.5, ['a'], []], // one of two
    ['a:H b:H c:H', ['a', 'b'], 0.5, [], []], // recoveries always published
    ['a:U1 b:U1 c:U1', ['a', 'b'], 0.5, ['a', 'b'], ['c']], // over budget after a shrink: published stay, no more
  ])('%s published %j share %s → unhealthy %j held %j', (spec, publishedDown, share, down, held) => {
    const states = new Map(
      spec.split(' ').map((x) => {
        const [id, s] = x.split(':') as [string, string];
        return [id, s === 'H' ? st(true) : st(false, Number(s.slice(1)))];
      }),
    );
    const published = new Map(publishedDown.map((id) => [id, false]));
    const d = planPublish(states, published, share);
    expect([...d.healthy].filter(([, h]) => !h).map(([id]) => id).sort()).toEqual(down);
    expect(d.held.sort()).toEqual(held);
    expect(d.suspect).toBe(held.length > 0);
    expect(d.healthy.size).toBe(states.size);
  });

  it.each([
    // columns: policy panicThreshold, checker default percent, share
    [undefined, 50, 0.5],
    [undefined, 100, 1],
    [50, 100, 0.5],
    [0, 50, 1],
    [80, 50, 0.2],
  ])('maxUnhealthyShare(panicThreshold %s, default %s%%) = %s', (p, d, share) => {
    expect(maxUnhealthyShare(p, d)).toBeCloseTo(share);
  });
});
