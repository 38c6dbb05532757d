// The embedded backend against a real dispatcher process: what the operator needs of a store —
// list, change notifications, status writes through the status subresource that survive a
// user's apply, and a lost race decided again on the stored object.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ProxyVersion } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { createLogger, waitFor } from '@octo-mesh/runtime';
import { REPO_ROOT, startProcess, type TestProcess } from '@octo-mesh/testing';
import { Writable } from 'node:stream';
import { DispatcherOperatorStore } from './dispatcher-store.js';

const pv = (paused = false): ProxyVersion =>
  ({
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'ProxyVersion',
    metadata: { name: 'proxy-2', namespace: 'octo-system' },
    spec: { version: '2.0.0', package: { url: 'http://repo/p.tgz', sha256: 'c'.repeat(64) }, strategy: { steps: [50, 100] }, paused },
  }) as ProxyVersion;

describe('DispatcherOperatorStore on a real dispatcher', () => {
  let dispatcher: TestProcess;
  let address: string;
  let user: DispatcherConnection;
  let store: DispatcherOperatorStore;
  const changes: string[] = [];

  beforeAll(async () => {
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/dispatcher'], { cwd: REPO_ROOT });
    dispatcher = startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', '0', '--admin-port', '0']);
    address = `127.0.0.1:${(await dispatcher.line<{ grpcPort: number }>('listening', { timeoutMs: 30_000 })).grpcPort}`;
    user = new DispatcherConnection(address);
    await user.apply(pv());
    store = new DispatcherOperatorStore({ address, logger: createLogger('operator', 'error', new Writable({ write: (_c, _e, cb) => cb() })) });
    store.onChange((kind, key) => changes.push(`${kind}:${key}`));
    await store.start();
  }, 120_000);
  afterAll(async () => {
    await store?.stop();
    user?.close();
    await dispatcher?.stop();
  });

  it('lists what the dispatcher holds once started, with generation and resourceVersion', () => {
    const [got] = store.list('ProxyVersion');
    expect(got?.spec.version).toBe('2.0.0');
    expect((got?.metadata as { generation?: number }).generation).toBe(1);
    expect(got?.metadata.resourceVersion).toMatch(/^\d+$/);
  });

  it('writes status that a later apply by a user keeps, and hears its own and others’ changes', async () => {
    const written = await store.updateStatus('ProxyVersion', 'octo-system/proxy-2', () => ({ phase: 'Progressing', currentBatch: 0, total: 3 }));
    expect(written?.status).toMatchObject({ phase: 'Progressing', total: 3 });
    // Never older than its own write, even before the watch delivers it.
    expect(store.get('ProxyVersion', 'octo-system/proxy-2')?.status?.phase).toBe('Progressing');
    await user.apply(pv(true));
    await waitFor('the store to see the user’s change', async () => store.get('ProxyVersion', 'octo-system/proxy-2'), (o) => o?.spec.paused === true, { timeoutMs: 10_000 });
    const seen = store.get('ProxyVersion', 'octo-system/proxy-2')!;
    expect(seen.status?.phase).toBe('Progressing');
    expect((seen.metadata as { generation?: number }).generation).toBe(2);
    expect(changes).toContain('ProxyVersion:octo-system/proxy-2');
  });

  it('a status decided on a stale object is decided again on the stored one', async () => {
    await user.apply(pv(false)); // the store's copy is now stale until the watch catches up
    const seenByDecide: (boolean | undefined)[] = [];
    const written = await store.updateStatus('ProxyVersion', 'octo-system/proxy-2', (current) => {
      seenByDecide.push(current.spec.paused);
      return { ...current.status, phase: current.spec.paused ? 'Paused' : 'Progressing', message: `paused=${current.spec.paused}` };
    });
    expect(seenByDecide.at(-1)).toBe(false);
    expect(written?.status).toMatchObject({ phase: 'Progressing', message: 'paused=false' });
    expect(((await user.get('ProxyVersion', 'octo-system/proxy-2')) as ProxyVersion).status?.message).toBe('paused=false');
  });

  it('a missing object is NotFound, and a decision of undefined writes nothing', async () => {
    await expect(store.updateStatus('RoutePolicy', 'demo/none', () => ({ accepted: true }))).rejects.toThrow(/not found/);
    const before = ((await user.get('ProxyVersion', 'octo-system/proxy-2')) as ProxyVersion).metadata.resourceVersion;
    expect(await store.updateStatus('ProxyVersion', 'octo-system/proxy-2', () => undefined)).toBeUndefined();
    expect(((await user.get('ProxyVersion', 'octo-system/proxy-2')) as ProxyVersion).metadata.resourceVersion).toBe(before);
  });
});
