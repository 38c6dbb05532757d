import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DispatcherGrpc, DispatcherService, MemoryStore, startGrpcServer, type StartedGrpc } from '@octo-mesh/dispatcher';
import { MetaServer, MetaServerService, PilotMembership, locatePilot } from '@octo-mesh/meta-server';
import { createLogger, createMetricsRegistry, startAdminServer, type AdminServer } from '@octo-mesh/runtime';
import { parseArgs, run } from './cli.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const REPO = join(import.meta.dirname, '../../..');

async function octoctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run([...argv, '--state', '/nonexistent'], { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

describe('parseArgs', () => {
  it('collects -f, maps -n and -o, keeps words', () => {
    expect(parseArgs(['get', 'rp', '-n', 'demo', '-o', 'yaml', '-f', 'a.yaml', '-f', 'b', '--dispatcher', 'x:1'])).toEqual({
      words: ['get', 'rp'],
      flags: { namespace: 'demo', output: 'yaml', dispatcher: 'x:1' },
      files: ['a.yaml', 'b'],
    });
  });
});

describe('octoctl against a real dispatcher and meta server', () => {
  let store: MemoryStore;
  let dispatcher: StartedGrpc;
  let metaGrpc: StartedGrpc;
  let meta: MetaServer;
  let admin: AdminServer;
  let membership: PilotMembership;
  let flags: string[];
  let dir: string;

  beforeAll(async () => {
    store = MemoryStore.open();
    dispatcher = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(DispatcherService, new DispatcherGrpc({ store, logger: quiet(), registry: createMetricsRegistry('d') }).implementation()));
    meta = new MetaServer({ logger: quiet(), registry: createMetricsRegistry('m'), pilotTtlMs: 2000, heartbeatIntervalMs: 100, maxMovesPerSecond: 10, instanceTtlMs: 1000 });
    meta.start();
    metaGrpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(MetaServerService, meta.metaService()));
    admin = await startAdminServer({ port: 0, registry: createMetricsRegistry('m2'), routes: meta.debugRoutes() });
    membership = new PilotMembership({
      metaAddress: `127.0.0.1:${metaGrpc.port}`,
      pilotId: 'pilot-a',
      xdsAddress: '127.0.0.1:15010',
      sidecars: () => [{ nodeId: 'frontend-0', namespace: 'demo', workload: 'frontend' }],
    });
    membership.start();
    flags = ['--dispatcher', `127.0.0.1:${dispatcher.port}`, '--meta-admin', `127.0.0.1:${admin.port}`];
    dir = mkdtempSync(join(tmpdir(), 'octoctl-'));
  });
  afterAll(async () => {
    await membership.stop();
    await meta.stop();
    await admin.close();
    await metaGrpc.close();
    await dispatcher.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('validate passes the valid examples and names file and field for invalid ones', async () => {
    const ok = await octoctl('validate', '-f', join(REPO, 'examples/valid'));
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^5 valid, 0 problems/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: mesh.octo.io/v1alpha1\nkind: RoutePolicy\nmetadata: { name: x, namespace: demo }\nspec:\n  targetRef: { service: Bad_Name }\n');
    const r = await octoctl('validate', '-f', bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${bad} RoutePolicy/demo/x: spec.targetRef.service:`);
  });

  it('apply sends objects to the dispatcher; get lists them; delete removes', async () => {
    const r = await octoctl('apply', '-f', join(REPO, 'examples/valid/routepolicy-catalog-split.yaml'), ...flags);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/routepolicy\/demo\/catalog applied \(version \d+\)/);
    const got = await octoctl('get', 'routepolicies', '-n', 'demo', ...flags);
    expect(got.out).toMatch(/NAMESPACE\s+NAME\s+VERSION\s+SUMMARY\ndemo\s+catalog\s+\d+\s+catalog v1=90,v2=10\n/);
    const yaml = await octoctl('get', 'rp', '-o', 'yaml', ...flags);
    expect(yaml.out).toContain('kind: RoutePolicy');
    expect((await octoctl('delete', 'routepolicy', 'catalog', '-n', 'demo', ...flags)).code).toBe(0);
    expect((await octoctl('get', 'routepolicies', ...flags)).out.trim().split('\n')).toHaveLength(1);
  });

  it('apply applies nothing when any manifest is invalid', async () => {
    const bad = join(dir, 'mixed.yaml');
    writeFileSync(bad, `${readExample('routepolicy-minimal.yaml')}\n---\napiVersion: mesh.octo.io/v1alpha1\nkind: RoutePolicy\nmetadata: { name: y }\nspec: {}\n`);
    const r = await octoctl('apply', '-f', bad, ...flags);
    expect(r.code).toBe(1);
    expect(r.err).toContain('spec.targetRef');
    expect((await store.list('RoutePolicy')).items).toHaveLength(0);
  });

  it('status shows pilots and sidecars with their assigned and connected pilot', async () => {
    await locatePilot({ metaAddress: `127.0.0.1:${metaGrpc.port}`, nodeId: 'frontend-0', namespace: 'demo', workload: 'frontend', timeoutMs: 3000 });
    for (let i = 0; i < 50 && !meta.sidecarTable()[0]?.connectedTo; i++) await new Promise((r) => setTimeout(r, 50));
    const r = await octoctl('status', ...flags);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/PILOT\s+XDS\s+SIDECARS\s+STATE\s+LAST HEARTBEAT\npilot-a\s+127\.0\.0\.1:15010\s+1\s+live/);
    expect(r.out).toMatch(/frontend-0\s+demo\/frontend\s+pilot-a\s+pilot-a\s+unknown/);
  });

  it('reports an unreachable mesh and unknown commands with non-zero codes', async () => {
    const r = await octoctl('status', '--meta-admin', '127.0.0.1:1');
    expect(r.code).toBe(1);
    expect(r.err).toContain('octoctl status:');
    expect((await octoctl('frobnicate')).code).toBe(2);
  });
});

function readExample(name: string): string {
  return readFileSync(join(REPO, 'examples/valid', name), 'utf8');
}
