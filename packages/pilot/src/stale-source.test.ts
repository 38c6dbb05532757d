// Issue 18, "silent wedge": a pilot whose dispatcher stays down keeps serving its sidecars their
// last good configuration, but says so — /readyz turns 503 naming the mesh source, the metrics
// show how long it has been stale — and turns ready again once the dispatcher is back.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from '@jest/globals';
import { DispatcherConnection } from '@octo-mesh/clients';
import { Node, TYPE_URL } from '@octo-mesh/proto';
import { createLogger, waitFor } from '@octo-mesh/runtime';
import { REPO_ROOT, startProcess, type TestProcess } from '@octo-mesh/testing';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { adsClient, SotwClient } from './sim/ads-client.js';
import { TrackedMeshSource, type MeshSource } from './source.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const data = mkdtempSync(join(tmpdir(), 'octo-pilot-stale-'));
afterAll(() => rmSync(data, { recursive: true, force: true }));

describe('TrackedMeshSource', () => {
  it('is healthy until fetches have failed for the grace period, and again after one succeeds', async () => {
    let now = 0;
    let failing = true;
    const inner: MeshSource = {
      fetch: async () => {
        if (failing) throw new Error('UNAVAILABLE: connection refused');
        return new Map();
      },
      backing: async () => [],
      watch: () => ({ update: () => {}, close: () => {} }),
    };
    const t = new TrackedMeshSource(inner, { graceMs: 5000, now: () => now });
    await expect(t.fetch(['demo/a'])).rejects.toThrow();
    expect(t.health()).toBe(true);
    now = 6000;
    await expect(t.fetch(['demo/a'])).rejects.toThrow();
    expect(t.health()).toBe('fetches from the mesh source failing for 6 s: UNAVAILABLE: connection refused');
    failing = false;
    await t.fetch(['demo/a']);
    expect(t.health()).toBe(true);
    expect(new TrackedMeshSource(inner, { checks: [() => 'watch down'] }).health()).toBe('watch down');
  });
});

describe('pilot whose dispatcher goes away', () => {
  it('keeps serving, turns /readyz 503 naming the dispatcher, and is ready again when it returns', async () => {
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/dispatcher'], { cwd: REPO_ROOT });
    const startDispatcher = (port = 0) => startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', `${port}`, '--admin-port', '0', '--data-dir', data]);
    let dispatcher: TestProcess = startDispatcher();
    const port = (await dispatcher.line<{ grpcPort: number }>('listening', { timeoutMs: 30_000 })).grpcPort;
    const address = `127.0.0.1:${port}`;
    const conn = new DispatcherConnection(address);
    let running: RunningPilot | undefined;
    try {
      await conn.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
      const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', dispatcherAddress: address, debounceQuietMs: 10, debounceMaxMs: 50, shutdownGraceSeconds: 0.1 });
      running = await startPilot(config, quiet());
      const admin = `http://127.0.0.1:${running.admin.port}`;
      const readyz = () => fetch(`${admin}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() }));
      const client = adsClient(`127.0.0.1:${running.xdsPort}`);
      const c = new SotwClient(client, Node.fromPartial({ id: 'sidecar-s', metadata: { namespace: 'demo', dependencies: ['catalog'] } }));
      try {
        c.subscribe(TYPE_URL.cluster);
        c.ack(await c.next(5000));
        await waitFor('pilot ready', readyz, (r) => r.status === 200, { timeoutMs: 10_000 });

        dispatcher.child.kill('SIGKILL');
        await dispatcher.exited;
        const down = await waitFor('pilot not ready', readyz, (r) => r.status === 503, { timeoutMs: 20_000 });
        // Whichever check trips first names it: the watch stream down, or the fetches made during
        // the outage failing (seen in a clean-clone CI) — both say the mesh source is stale.
        expect(down.body).toMatch(/mesh source: (dispatcher (watch|informer).* down for \d+ s|fetches from the mesh source failing for \d+ s: )/);
        // The sidecar keeps what it had: its stream stays open, nothing is withdrawn.
        expect(c.status).toBeUndefined();

        dispatcher = startDispatcher(port);
        await dispatcher.line('listening', { timeoutMs: 30_000 });
        await waitFor('pilot ready again', readyz, (r) => r.status === 200, { timeoutMs: 20_000 });
        const metrics = await (await fetch(`${admin}/metrics`)).text();
        expect(metrics).toMatch(/pilot_source_stale_seconds 0/);
        expect(metrics).toMatch(/octo_errors_total\{where="dispatcher (informer )?watch"\} \d+/);
      } finally {
        c.close();
        client.close();
      }
    } finally {
      await running?.stop();
      conn.close();
      await dispatcher.stop();
    }
  }, 90_000);
});
