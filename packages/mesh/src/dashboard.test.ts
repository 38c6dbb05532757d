import { describe, expect, it } from '@jest/globals';
import { renderDashboard } from './dashboard.js';

const state = {
  startedAt: '',
  pid: 1,
  dispatcher: { grpc: '127.0.0.1:15012', admin: '127.0.0.1:15014' },
  meta: { grpc: '127.0.0.1:15011', admin: '127.0.0.1:15015' },
  pilots: [
    { id: 'pilot-a', xds: '127.0.0.1:15010', admin: '127.0.0.1:15016', pid: 101 },
    { id: 'pilot-b', xds: '127.0.0.1:15020', admin: '127.0.0.1:15017', pid: 102 },
  ],
  sidecars: [{ nodeId: 'frontend-v1-0.demo', namespace: 'demo', workload: 'frontend', version: 'v1', admin: '127.0.0.1:1', inbound: '', outbound: '', app: 'frontend-v1-0' }],
  runner: { admin: '127.0.0.1:15090' },
  manifests: 'examples/embedded',
};

describe('renderDashboard', () => {
  it('shows rates with shares per service, the pilot of each sidecar, and which pilot to kill', () => {
    const out = renderDashboard({
      state,
      rates: new Map([['catalog/v1', 40], ['catalog/v2', 10], ['frontend/v1', 50]]),
      requests: 1234,
      failures: 0,
      pilotOf: new Map([['frontend-v1-0.demo', 'pilot-b']]),
      exits: [],
      uptimeS: 12.3,
    });
    expect(out).toContain('1234 requests, 0 failed');
    expect(out).toMatch(/catalog\s+v1\s+40\.0\s+█{20}\s+80%/);
    expect(out).toMatch(/catalog\s+v2\s+10\.0\s+█{5}\s+20%/);
    expect(out).toMatch(/frontend-v1-0\.demo\s+pilot-b/);
    expect(out).toContain('kill 102   (pilot-b, serving frontend-v1-0.demo)');
  });

  it('marks an exited pilot and stops suggesting a kill when one pilot is left', () => {
    const out = renderDashboard({ state, rates: new Map(), requests: 0, failures: 0, pilotOf: new Map([['frontend-v1-0.demo', 'pilot-a']]), exits: [{ name: 'pilot-b', signal: 'SIGKILL', code: null }], uptimeS: 1 });
    expect(out).toMatch(/pilot-b .*\(exited\)/);
    expect(out).not.toContain('kill ');
    expect(out).toContain('(waiting for traffic)');
  });
});
