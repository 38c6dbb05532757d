import { describe, expect, it } from '@jest/globals';
import { syncState, SyncTracker, type TypeSync } from './sync.js';

describe('syncState', () => {
  const sent = (version: string, at = 1) => ({ version, nonce: version, at });
  // columns: name, what happened on the current stream, current version, expected state
  it.each<[string, TypeSync | undefined, string, string]>([
    ['nothing', undefined, 'v1', 'NOT SENT'],
    ['subscribed with no version', {}, 'v1', 'NOT SENT'],
    ['sent, not answered', { sent: sent('v1') }, 'v1', 'STALE'],
    ['acked current', { sent: sent('v1'), acked: { version: 'v1', at: 2 } }, 'v1', 'SYNCED'],
    ['acked older', { sent: sent('v1'), acked: { version: 'v0', at: 2 } }, 'v1', 'STALE'],
    ['nacked latest', { sent: sent('v1'), acked: { version: 'v0', at: 0.5 }, nacked: { version: 'v1', error: 'e', at: 2 } }, 'v1', 'NACKED'],
    ['nacked, then a newer version sent', { sent: sent('v2', 3), nacked: { version: 'v1', error: 'e', at: 2 } }, 'v2', 'STALE'],
    ['nacked long ago, acked since', { sent: sent('v2', 3), acked: { version: 'v2', at: 4 }, nacked: { version: 'v1', error: 'e', at: 2 } }, 'v2', 'SYNCED'],
    // A proxy reconnecting (failover) says which version it holds; holding the current one, it is sent nothing.
    ['reconnected holding the current version', { held: { version: 'v1', at: 1 } }, 'v1', 'SYNCED'],
    ['reconnected holding an older version, not sent yet', { held: { version: 'v0', at: 1 } }, 'v1', 'STALE'],
    ['reconnected holding an older version, current sent', { held: { version: 'v0', at: 1 }, sent: sent('v1', 2) }, 'v1', 'STALE'],
    ['reconnected holding the current version, then a change sent', { held: { version: 'v1', at: 1 }, sent: sent('v2', 2) }, 'v2', 'STALE'],
    ['reconnected up to date, then a change acked', { held: { version: 'v1', at: 1 }, sent: sent('v2', 2), acked: { version: 'v2', at: 3 } }, 'v2', 'SYNCED'],
    ['reconnected up to date, then a change nacked', { held: { version: 'v1', at: 1 }, sent: sent('v2', 2), nacked: { version: 'v2', error: 'e', at: 3 } }, 'v2', 'NACKED'],
  ])('%s', (_name, t, current, expected) => {
    expect(syncState(t, current)).toBe(expected);
  });
});

describe('SyncTracker', () => {
  it('measures change→ACK from the first of coalesced changes, once', () => {
    let now = 0;
    const t = new SyncTracker(() => now);
    t.connected('n', 1, 'sotw');
    now = 10;
    t.changed('n', 'T', 'v1', 10);
    now = 20;
    t.changed('n', 'T', 'v2', 20);
    t.sent('n', 'T', 'v2', 'a');
    now = 70;
    expect(t.acked('n', 'T', 'v1')).toBeUndefined();
    expect(t.acked('n', 'T', 'v2')).toBe(60);
    expect(t.acked('n', 'T', 'v2')).toBeUndefined();
  });

  it('counts an up-to-date proxy as synced but keeps measuring until the change is delivered', () => {
    let now = 0;
    const t = new SyncTracker(() => now);
    t.connected('n', 1, 'sotw');
    t.sent('n', 'T', 'v1', 'a');
    t.acked('n', 'T', 'v1');
    t.changed('n', 'T', 'v2', 10);
    now = 20;
    t.upToDate('n', 'T', 'v2');
    expect(syncState(t.get('n')!.types.get('T'), 'v2')).toBe('SYNCED');
    now = 90;
    t.sent('n', 'T', 'v2', 'b');
    expect(t.acked('n', 'T', 'v2')).toBe(80);
  });

  it('reports a proxy that resumed holding the current version as synced, ACKed at that version', () => {
    const t = new SyncTracker(() => 5);
    t.connected('n', 1, 'sotw');
    t.holds('n', 'T', 'v1');
    t.holds('n', 'U', '');
    expect(t.report('n', new Map([['T', 'v1'], ['U', 'u1']]))).toEqual([
      { typeUrl: 'T', state: 'SYNCED', current: 'v1', acked: 'v1' },
      { typeUrl: 'U', state: 'NOT SENT', current: 'u1' },
    ]);
  });

  it('counts each node once per type of its snapshot, in the state its report gives, and skips nodes without one', () => {
    const t = new SyncTracker(() => 5);
    // columns: node, what happened on its stream
    const nodes: [string, (id: string) => void][] = [
      ['synced', (id) => (t.sent(id, 'T', 'v1', 'a'), t.acked(id, 'T', 'v1'))],
      ['stale', (id) => (t.sent(id, 'T', 'v0', 'a'), t.acked(id, 'T', 'v0'))],
      ['nacked', (id) => (t.sent(id, 'T', 'v1', 'a'), t.nacked(id, 'T', 'v1', 'bad'))],
      ['resumed', (id) => t.holds(id, 'T', 'v1')],
      ['fresh', () => undefined],
      ['no snapshot', (id) => t.sent(id, 'T', 'v1', 'a')],
    ];
    for (const [id, happen] of nodes) {
      t.connected(id, 1, 'sotw');
      happen(id);
    }
    const current = new Map([['T', 'v1'], ['U', 'u1']]);
    const versions = (id: string) => (id === 'no snapshot' ? undefined : current);
    const expected = new Map<string, Map<string, number>>();
    for (const id of t.nodeIds())
      if (versions(id))
        for (const e of t.report(id, current)) {
          const m = expected.get(e.typeUrl) ?? new Map<string, number>();
          expected.set(e.typeUrl, m.set(e.state, (m.get(e.state) ?? 0) + 1));
        }
    expect(t.counts(versions)).toEqual(expected);
    expect(t.counts(versions)).toEqual(
      new Map([
        ['T', new Map([['SYNCED', 2], ['STALE', 1], ['NACKED', 1], ['NOT SENT', 1]])],
        ['U', new Map([['NOT SENT', 5]])],
      ]),
    );
  });

  it('keeps the node when an old stream closes after a reconnect', () => {
    const t = new SyncTracker();
    t.connected('n', 1, 'sotw');
    t.connected('n', 2, 'delta');
    t.disconnected('n', 1);
    expect(t.get('n')?.streamId).toBe(2);
    t.disconnected('n', 2);
    expect(t.get('n')).toBeUndefined();
  });
});
