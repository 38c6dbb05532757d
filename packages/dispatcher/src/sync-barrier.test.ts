// Issue 18, "sync barrier": right after a dispatcher restart (store not persisted) the pilots
// were told SYNCED at once, fetched, found the services the meta server publishes missing (it
// republishes every 5 s) and pushed configurations without them: 131 requests got 404 no-route.
// Now Watch streams are answered only once the registry had its grace period; /readyz says why
// it waits; a client that resumes keeps its last good state meanwhile.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from '@jest/globals';
import { DispatcherConnection } from '@octo-mesh/clients';
import { DispatcherWatchEventType, type DispatcherWatchEvent } from '@octo-mesh/proto';
import { REPO_ROOT, startProcess } from '@octo-mesh/testing';
import { serviceFixture } from './store-contract.js';

describe('dispatcher sync barrier', () => {
  it('answers watchers only after the registry grace period, with what the registry published meanwhile', async () => {
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/dispatcher'], { cwd: REPO_ROOT });
    const t0 = Date.now();
    const p = startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', '0', '--admin-port', '0', '--registry-grace-ms', '2000']);
    try {
      const { grpcPort, adminPort } = await p.line<{ grpcPort: number; adminPort: number }>('listening', { timeoutMs: 30_000 });
      const conn = new DispatcherConnection(`127.0.0.1:${grpcPort}`);
      try {
        const readyz = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
        expect(readyz.status).toBe(503);
        expect(await readyz.text()).toContain('registry: waiting for the meta server to publish its registry again');
        // A pilot resumes its watch at once ...
        const stream = conn.watch();
        const first = new Promise<{ ev: DispatcherWatchEvent; at: number }>((resolve) => stream.once('data', (ev: DispatcherWatchEvent) => resolve({ ev, at: Date.now() })));
        stream.on('error', () => {});
        stream.write({ clientId: 'pilot-a', subscriptions: [{ kind: '', namespace: '', name: '', service: '' }], resumeVersion: '1' });
        // ... while the meta server publishes its registry again.
        await conn.apply(serviceFixture('catalog'));
        const { ev, at } = await first;
        expect(ev.type).toBe(DispatcherWatchEventType.RESYNC); // then it lists: catalog is there
        expect(at - t0).toBeGreaterThanOrEqual(2000);
        expect((await conn.list('Service')).items.map((o) => o.metadata.name)).toEqual(['catalog']);
        expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
        stream.cancel();
      } finally {
        conn.close();
      }
    } finally {
      await p.stop();
    }
  }, 60_000);
});
