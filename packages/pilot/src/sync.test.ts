import { describe, expect, it } from '@jest/globals';
import { syncState, SyncTracker, type TypeSync } from './sync.js';

describe('syncState', () => {
  // columns: name, what happened, current version, expected state
  it.each<[string, TypeSync | undefined, string]>([
    ['nothing', undefined, 'NOT SENT'],
    ['sent, not answered', { sent: { version: 'v1', nonce: '1', at: 1 } }, 'STALE'],
    ['acked current', { sent: { version: 'v1', nonce: '1', at: 1 }, acked: { version: 'v1', at: 2 } }, 'SYNCED'],
    ['acked older', { sent: { version: 'v1', nonce: '1', at: 1 }, acked: { version: 'v0', at: 2 } }, 'STALE'],
    ['nacked latest', { sent: { version: 'v1', nonce: '1', at: 1 }, acked: { version: 'v0', at: 0.5 }, nacked: { version: 'v1', error: 'e', at: 2 } }, 'NACKED'],
    ['nacked, then a newer version sent', { sent: { version: 'v2', nonce: '2', at: 3 }, nacked: { version: 'v1', error: 'e', at: 2 } }, 'STALE'],
    ['nacked long ago, acked since', { sent: { version: 'v2', nonce: '2', at: 3 }, acked: { version: 'v2', at: 4 }, nacked: { version: 'v1', error: 'e', at: 2 } }, 'SYNCED'],
  ])('%s', (_name, t, expected) => {
    const current = t?.sent?.version === 'v2' ? 'v2' : 'v1';
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
