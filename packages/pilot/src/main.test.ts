import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { credentials as grpcCredentials, status as grpcStatus } from '@grpc/grpc-js';
import { DispatcherConnection, PilotAdminClient } from '@octo-mesh/clients';
import { REPO_ROOT, startProcess } from '@octo-mesh/testing';
import { Node, RouteConfiguration, SidecarStatusServiceClient, TYPE_URL, UpgradeTarget } from '@octo-mesh/proto';
import { ConfigError, createLogger, loadConfig } from '@octo-mesh/runtime';
import { pilotConfig } from './config.js';
import { loadResources } from './load-resources.js';
import { startPilot, type RunningPilot } from './main.js';
import { adsClient, SotwClient } from './sim/ads-client.js';
import { MemoryMeshSource } from './source.js';

const RESOURCES = `
apiVersion: model.mesh.octo.io/v1
kind: Service
metadata: { name: catalog, namespace: demo }
spec: { ports: [{ port: 8080 }] }
---
apiVersion: model.mesh.octo.io/v1
kind: ServiceEndpoints
metadata: { name: catalog, namespace: demo }
spec: { endpoints: [{ address: 10.0.0.1, port: 15006 }] }
---
apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: { name: catalog, namespace: demo, generation: 2 }
spec:
  targetRef: { service: catalog }
  rules: [{ route: [{}], timeout: 2s }]
---
apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: { name: broken, namespace: demo, generation: 1 }
spec:
  targetRef: { service: catalog }
  rules: [{ route: [{ weight: 30 }, { weight: 30 }] }]
`;

const quietLogger = () =>
  createLogger(
    'pilot',
    'error',
    new Writable({
      write: (_c, _e, cb) => cb(),
    }),
  );

let running: RunningPilot | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('pilot main', () => {
  it('reports a sidecar that fails over to it already holding its versions as SYNCED, sending it nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-main-'));
    writeFileSync(join(dir, 'mesh.yaml'), RESOURCES);
    const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', resources: dir, shutdownGraceSeconds: 0.1 });
    const first = await startPilot({ ...config, pilotId: 'pilot-a' }, quietLogger());
    running = await startPilot({ ...config, pilotId: 'pilot-b' }, quietLogger());
    const node = Node.fromPartial({ id: 'sidecar-1', metadata: { namespace: 'demo', dependencies: ['catalog'] } });
    const clientA = adsClient(`127.0.0.1:${first.xdsPort}`);
    const clientB = adsClient(`127.0.0.1:${running.xdsPort}`);
    const a = new SotwClient(clientA, node);
    const b = new SotwClient(clientB, node);
    try {
      a.subscribe(TYPE_URL.cluster);
      const clusters = await a.next();
      a.ack(clusters);
      a.subscribe(TYPE_URL.route, ['outbound']);
      const routes = await a.next();
      a.ack(routes, ['outbound']);
      await a.quiet(100);
      a.close();
      await first.stop();
      // The sidecar re-homes to pilot-b, telling it the versions it holds: the same content has
      // the same version on every pilot, so nothing is sent, and it is in sync.
      b.subscribe(TYPE_URL.cluster, [], clusters.versionInfo);
      b.send({ typeUrl: TYPE_URL.route, resourceNames: ['outbound'], versionInfo: routes.versionInfo });
      expect(await b.quiet(300)).toBe(true);
      const syncz = (await (await fetch(`http://127.0.0.1:${running.admin.port}/debug/syncz?node=sidecar-1`)).json()) as { types: { type: string; state: string; acked?: string }[] };
      expect(syncz.types.find((t) => t.type === 'Cluster')).toMatchObject({ state: 'SYNCED', acked: clusters.versionInfo });
      expect(syncz.types.find((t) => t.type === 'RouteConfiguration')).toMatchObject({ state: 'SYNCED', acked: routes.versionInfo });
      expect(await (await fetch(`http://127.0.0.1:${running.admin.port}/metrics`)).text()).toMatch(/pilot_xds_sync_state\{type="Cluster",state="SYNCED"\} 1/);
    } finally {
      a.close();
      b.close();
      clientA.close();
      clientB.close();
      await first.stop();
    }
  });

  it('serves ADS and reports sync, config, policy status and metrics over HTTP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-main-'));
    writeFileSync(join(dir, 'mesh.yaml'), RESOURCES);
    const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', resources: dir, shutdownGraceSeconds: 0.1 });
    running = await startPilot(config, quietLogger());
    const client = adsClient(`127.0.0.1:${running.xdsPort}`);
    const c = new SotwClient(client, Node.fromPartial({ id: 'sidecar-1', metadata: { namespace: 'demo', dependencies: ['catalog'] } }));
    try {
      c.subscribe(TYPE_URL.cluster);
      const r = await c.next();
      c.ack(r);
      c.subscribe(TYPE_URL.route, ['outbound']);
      c.ack(await c.next(), ['outbound']);
      await c.quiet(100);
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${running!.admin.port}${path}`);
        return { status: res.status, body: (res.headers.get('content-type') ?? '').includes('json') ? await res.json() : await res.text() };
      };
      const syncz = (await get('/debug/syncz')).body as { node: string; types: { type: string; state: string }[] }[];
      expect(syncz).toHaveLength(1);
      expect(syncz[0]!.node).toBe('sidecar-1');
      expect(syncz[0]!.types.find((t) => t.type === 'Cluster')!.state).toBe('SYNCED');
      expect(syncz[0]!.types.find((t) => t.type === 'ClusterLoadAssignment')!.state).toBe('NOT SENT');

      const dump = (await get('/debug/config_dump?node=sidecar-1')).body as Record<string, { resources: { name: string; resource: unknown }[] }>;
      expect(dump['Cluster']!.resources.map((x) => x.name)).toEqual(['outbound|8080||catalog.demo.svc']);
      expect((await get('/debug/config_dump')).status).toBe(400);
      expect((await get('/debug/syncz?node=nobody')).status).toBe(404);

      const policies = (await get('/debug/routepolicyz')).body as { policy: string; status: { accepted: boolean; sidecars: { acked: number } } }[];
      expect(policies.find((p) => p.policy === 'demo/catalog')!.status).toMatchObject({ accepted: true, sidecars: { acked: 1 } });
      expect(policies.find((p) => p.policy === 'demo/broken')!.status.accepted).toBe(false);

      const metrics = (await get('/metrics')).body as string;
      expect(metrics).toMatch(/pilot_xds_connected_proxies\{kind="sotw"\} 1/);
      expect(metrics).toMatch(/pilot_xds_pushes_total\{type="Cluster"\} 1/);
      expect(metrics).toMatch(/pilot_xds_sync_state\{type="Cluster",state="SYNCED"\} 1/);
      expect(metrics).toMatch(/pilot_xds_sync_state\{type="ClusterLoadAssignment",state="NOT SENT"\} 1/);
      expect((await get('/readyz')).status).toBe(200);
    } finally {
      c.close();
      client.close();
    }
  });

  it('rejects bad configuration naming the field and its origin', () => {
    const load = (argv: string[]) => () => loadConfig(pilotConfig, { envPrefix: 'OCTO_PILOT_', argv, env: {} });
    expect(load(['--xds-port', 'abc'])).toThrow(ConfigError);
    expect(load(['--xds-port', 'abc'])).toThrow(/xdsPort: .*flag --xds-port/);
    expect(load(['--debounce-quiet-ms', '500', '--debounce-max-ms', '100'])).toThrow(/debounceMaxMs: must be at least debounceQuietMs/);
    expect(load(['--bogus', '1'])).toThrow(/bogus/);
    expect(load(['--xds-port', '1234'])().xdsPort).toBe(1234);
  });

  it('reports every invalid resource file by file, document and field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-res-'));
    writeFileSync(join(dir, 'a.yaml'), 'apiVersion: model.mesh.octo.io/v1\nkind: Service\nmetadata: { name: x }\nspec: { ports: [{ port: 99999 }] }\n---\nkind: Nope\n');
    expect(() => loadResources(dir, new MemoryMeshSource())).toThrow(/a\.yaml#0\.spec\.ports\.0\.port: .*a\.yaml#1\.kind: unknown kind "Nope"/s);
  });
});

describe('pilot over the dispatcher', () => {
  it('reads the mesh from a real dispatcher and pushes when a RoutePolicy is applied there', async () => {
    // The real dispatcher executable; objects are written to it over gRPC, as octoctl does.
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/dispatcher'], { cwd: REPO_ROOT });
    const dispatcher = startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', '0', '--admin-port', '0']);
    const address = `127.0.0.1:${(await dispatcher.line<{ grpcPort: number }>('listening', { timeoutMs: 30_000 })).grpcPort}`;
    const store = new DispatcherConnection(address);
    try {
      await store.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
      await store.apply({ apiVersion: 'model.mesh.octo.io/v1', kind: 'ServiceEndpoints', metadata: { name: 'catalog', namespace: 'demo' }, spec: { endpoints: [{ address: '10.0.0.1', port: 15006, labels: {}, healthy: true }] } });
      const config = pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', dispatcherAddress: address, debounceQuietMs: 10, debounceMaxMs: 50, shutdownGraceSeconds: 0.1 });
      running = await startPilot(config, quietLogger());
      const client = adsClient(`127.0.0.1:${running.xdsPort}`);
      const c = new SotwClient(client, Node.fromPartial({ id: 'sidecar-d', metadata: { namespace: 'demo', dependencies: ['catalog'] } }));
      try {
        c.subscribe(TYPE_URL.route, ['outbound']);
        const r1 = await c.next(5000);
        c.ack(r1, ['outbound']);
        await store.apply({
          apiVersion: 'mesh.octo.io/v1alpha1',
          kind: 'RoutePolicy',
          metadata: { name: 'catalog', namespace: 'demo' },
          spec: { targetRef: { service: 'catalog' }, rules: [{ route: [{}], timeout: '7s' }] },
        });
        const r2 = await c.next(5000);
        expect(r2.versionInfo).not.toBe(r1.versionInfo);
        const rc = RouteConfiguration.decode(r2.resources[0]!.value);
        expect(rc.virtualHosts[0]!.routes[0]!.route!.timeout).toEqual({ seconds: 7, nanos: 0 });

        // ProxyVersions come through the dispatcher too: a finished rollout targets every sidecar.
        c.subscribe(TYPE_URL.upgradeTarget);
        c.ack(await c.next(5000));
        await store.apply({
          apiVersion: 'mesh.octo.io/v1alpha1',
          kind: 'ProxyVersion',
          metadata: { name: 'proxy-2-0-0', namespace: 'octo-system' },
          spec: {
            version: '2.0.0',
            package: { url: 'https://repo/octo-proxy-2.0.0.tgz', sha256: 'c'.repeat(64) },
            strategy: { steps: [100] },
          },
        } as never);
        // Status is the operator's to write (a subresource: apply never sets it).
        await store.updateStatus('ProxyVersion', 'octo-system/proxy-2-0-0', { phase: 'Succeeded' });
        const r3 = await c.next(5000);
        expect(r3.typeUrl).toBe(TYPE_URL.upgradeTarget);
        expect(UpgradeTarget.decode(r3.resources[0]!.value)).toMatchObject({ version: '2.0.0', rollout: 'octo-system/proxy-2-0-0' });
      } finally {
        c.close();
        client.close();
      }
    } finally {
      await running?.stop();
      running = undefined;
      store.close();
      await dispatcher.stop();
    }
  }, 60_000);
});

describe('sidecar status and the rollout aggregate', () => {
  it('keeps what a connected sidecar’s agent reports, refuses the rest with a reason, and serves /debug/rollouts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-rollouts-'));
    writeFileSync(
      join(dir, 'mesh.yaml'),
      `${RESOURCES}---
apiVersion: mesh.octo.io/v1alpha1
kind: ProxyVersion
metadata: { name: proxy-2, namespace: octo-system, generation: 4 }
spec:
  version: 2.0.0
  package: { url: 'http://repo/p.tgz', sha256: '${'a'.repeat(64)}' }
  strategy: { steps: [100] }
status: { phase: Succeeded }
`,
    );
    const config = pilotConfig.parse({ pilotId: 'pilot-r', xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', adminHost: '127.0.0.1', resources: dir, debounceQuietMs: 5, debounceMaxMs: 20, shutdownGraceSeconds: 0.1 });
    running = await startPilot(config, quietLogger());
    const address = `127.0.0.1:${running.xdsPort}`;
    const ads = adsClient(address);
    const c = new SotwClient(ads, Node.fromPartial({ id: 'catalog-0', metadata: { namespace: 'demo', instance_id: 'catalog-0', dependencies: ['catalog'] } }));
    const statusClient = new SidecarStatusServiceClient(address, grpcCredentials.createInsecure());
    const report = (nodeId: string, json: string) =>
      new Promise<{ code: number; details: string }>((resolve) => statusClient.report({ nodeId, agentStatusJson: json }, (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? '' })));
    const status = { instanceId: 'catalog-0', runningVersion: '2.0.0', target: null, phase: 'Idle', ready: true, readySince: '2026-12-06T10:00:00.000Z', lastError: null, badVersions: [], lastChange: '2026-12-06T10:00:00.000Z' };
    try {
      c.subscribe(TYPE_URL.upgradeTarget);
      c.ack(await c.next(5000));
      expect(await report('catalog-0', JSON.stringify(status))).toEqual({ code: 0, details: '' });
      expect(await report('nobody', JSON.stringify(status))).toEqual({ code: grpcStatus.NOT_FOUND, details: 'node nobody has no ADS stream to this pilot' });
      expect(await report('catalog-0', JSON.stringify({ ...status, ready: 'yes' }))).toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.stringContaining('agent_status_json.ready:') });
      expect(await report('catalog-0', '{"oops"')).toMatchObject({ code: grpcStatus.INVALID_ARGUMENT, details: expect.stringContaining('agent_status_json is not JSON') });
      const rollouts = await new PilotAdminClient(`127.0.0.1:${running.admin.port}`).rollouts();
      expect(rollouts.pilotId).toBe('pilot-r');
      expect(rollouts.rollouts).toEqual([
        { rollout: 'octo-system/proxy-2', generation: 4, version: '2.0.0', inScope: 1, targeted: 1, upgraded: 1, ready: 1, failed: 0, newestReadyAt: '2026-12-06T10:00:00.000Z', failures: [], batch: 0 },
      ]);
      const metrics = await (await fetch(`http://127.0.0.1:${running.admin.port}/metrics`)).text();
      expect(metrics).toMatch(/pilot_sidecar_status_reports_total\{result="accepted"\} 1/);
      expect(metrics).toMatch(/pilot_sidecar_status_reports_total\{result="invalid"\} 2/);
      expect(metrics).toMatch(/pilot_sidecar_status_reports_total\{result="not-connected"\} 1/);
    } finally {
      c.close();
      ads.close();
      statusClient.close();
    }
  });
});
