import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DispatcherConnection, PilotAdminClient } from '@octo-mesh/clients';
import { freePort, waitFor } from '@octo-mesh/runtime';
import { REPO_ROOT as REPO, startProcess, stopAll, type TestProcess } from '@octo-mesh/testing';
import { execFileSync } from 'node:child_process';
import { parseArgs, run } from './cli.js';

async function octoctl(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run([...argv, '--state', '/nonexistent'], { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}
describe('the embedded state file', () => {
  it('a corrupt one is an error naming the file, not a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octoctl-state-'));
    const file = join(dir, 'state.json');
    writeFileSync(file, '{"startedAt": ');
    let err = '';
    const code = await run(['status', '--state', file], { out: () => {}, err: (s) => void (err += s) });
    expect(code).toBe(1);
    expect(err).toContain(`octoctl: the embedded mesh's state file ${file} is not JSON`);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('parseArgs', () => {
  it('collects -f, maps -n and -o, keeps words', () => {
    expect(parseArgs(['get', 'rp', '-n', 'demo', '-o', 'yaml', '-f', 'a.yaml', '-f', 'b', '--dispatcher', 'x:1'])).toEqual({
      words: ['get', 'rp'],
      flags: { namespace: 'demo', output: 'yaml', dispatcher: 'x:1' },
      files: ['a.yaml', 'b'],
    });
  });
});

// The real thing: octo-dispatcher, octo-meta-server, octo-pilot and an octo-proxy sidecar as
// child processes, wired as in a mesh (the sidecar asks the meta server for its pilot and opens
// ADS to it), and octoctl reading them through its typed clients.
describe('octoctl against real dispatcher, meta server, pilot and sidecar processes', () => {
  let dispatcher: TestProcess;
  let meta: TestProcess;
  let pilot: TestProcess;
  let sidecar: TestProcess;
  let dispatcherAddress: string;
  let pilotAdmin: string;
  let sidecarAdmin: string;
  let flags: string[];
  let dir: string;

  beforeAll(async () => {
    execFileSync(join(REPO, 'node_modules/.bin/tsc'), ['-b', 'packages/dispatcher', 'packages/meta-server', 'packages/pilot', 'packages/proxy'], { cwd: REPO });
    dir = mkdtempSync(join(tmpdir(), 'octoctl-'));
    writeFileSync(
      join(dir, 'mesh.yaml'),
      [
        'apiVersion: model.mesh.octo.io/v1\nkind: Service\nmetadata: { name: catalog, namespace: demo }\nspec: { ports: [{ name: http, port: 8080, protocol: http }] }',
        'apiVersion: model.mesh.octo.io/v1\nkind: ServiceEndpoints\nmetadata: { name: catalog, namespace: demo }\nspec: { endpoints: [{ address: 127.0.0.1, port: 9, labels: {}, healthy: true }] }',
      ].join('\n---\n'),
    );
    dispatcher = startProcess('packages/dispatcher/dist/main.js', ['--grpc-port', '0', '--admin-port', '0', '--watch-dir', dir]);
    const d = await dispatcher.line<{ grpcPort: number }>('listening');
    dispatcherAddress = `127.0.0.1:${d.grpcPort}`;
    meta = startProcess('packages/meta-server/dist/main.js', ['--grpc-port', '0', '--admin-port', '0', '--dispatcher-address', dispatcherAddress]);
    const m = await meta.line<{ grpcPort: number; adminPort: number }>('listening');
    pilot = startProcess('packages/pilot/dist/main.js', [
      ...['--pilot-id', 'pilot-a', '--xds-host', '127.0.0.1', '--xds-port', '0', '--admin-host', '127.0.0.1', '--admin-port', '0'],
      ...['--dispatcher-address', dispatcherAddress, '--meta-server-address', `127.0.0.1:${m.grpcPort}`],
    ]);
    const p = await pilot.line<{ adminPort: number }>('pilot serving');
    pilotAdmin = `127.0.0.1:${p.adminPort}`;
    sidecar = startProcess('packages/proxy/dist/main.js', [
      ...['--node-id', 'frontend-0', '--workload', 'frontend', '--namespace', 'demo', '--dependencies', 'catalog', '--meta-address', `127.0.0.1:${m.grpcPort}`],
      ...['--admin-port', '0', '--outbound-port', '0', '--inbound-host', '127.0.0.1', '--inbound-port', '0', '--access-log', 'off', '--v8-helpers', 'normal'],
    ]);
    sidecarAdmin = `127.0.0.1:${(await sidecar.line<{ admin: number }>('proxy started')).admin}`;
    flags = ['--dispatcher', dispatcherAddress, '--meta-admin', `127.0.0.1:${m.adminPort}`];
  }, 120_000);
  afterAll(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('validate passes the valid examples and names file and field for invalid ones', async () => {
    const ok = await octoctl('validate', '-f', join(REPO, 'examples/valid'));
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^5 valid, 0 problems/);
    const bad = join(dir, 'bad.yaml.txt');
    writeFileSync(bad, 'apiVersion: mesh.octo.io/v1alpha1\nkind: RoutePolicy\nmetadata: { name: x, namespace: demo }\nspec:\n  targetRef: { service: Bad_Name }\n');
    const r = await octoctl('validate', '-f', bad);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${bad} RoutePolicy/demo/x: spec.targetRef.service:`);
  });

  it('status shows pilots and sidecars with their assigned and connected pilot and the SYNC column from the pilot', async () => {
    // The sidecar is SYNCED once the pilot has its ACKs and the meta server its pilot's heartbeat.
    const r = await waitFor(
      'octoctl status to show frontend-0 SYNCED on pilot-a',
      () => octoctl('status', ...flags),
      (x) => /frontend-0\s+demo\/frontend\s+pilot-a\s+pilot-a\s+SYNCED/.test(x.out),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/PILOT\s+XDS\s+SIDECARS\s+STATE\s+LAST HEARTBEAT\npilot-a\s+127\.0\.0\.1:\d+\s+1\s+live/);
    // The column is the pilot's own verdict: the same node on the pilot's typed debug client.
    const node = await new PilotAdminClient(pilotAdmin).nodeSync('frontend-0');
    expect(node.types.map((t) => t.state)).toContain('SYNCED');
  });

  it('config-dump shows the configuration the sidecar holds, with the route the pilot pushed', async () => {
    const r = await octoctl('config-dump', 'frontend-0', '--admin', sidecarAdmin, '-o', 'json');
    expect(r).toMatchObject({ code: 0, err: '' });
    const dump = JSON.parse(r.out) as { node: { id: string }; xds: { pilot: string; connected: boolean } };
    expect(dump.node.id).toBe('frontend-0');
    expect(dump.xds).toMatchObject({ pilot: 'pilot-a', connected: true });
    expect(r.out).toContain('catalog');
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
    const bad = join(dir, 'mixed.yaml.txt');
    writeFileSync(bad, `${readExample('routepolicy-minimal.yaml')}\n---\napiVersion: mesh.octo.io/v1alpha1\nkind: RoutePolicy\nmetadata: { name: y }\nspec: {}\n`);
    const r = await octoctl('apply', '-f', bad, ...flags);
    expect(r.code).toBe(1);
    expect(r.err).toContain('spec.targetRef');
    const conn = new DispatcherConnection(dispatcherAddress);
    try {
      expect((await conn.list('RoutePolicy')).items).toHaveLength(0);
    } finally {
      conn.close();
    }
  });

  it('reports an unreachable mesh and unknown commands with non-zero codes', async () => {
    const closed = await freePort();
    const r = await octoctl('status', '--meta-admin', `127.0.0.1:${closed}`);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`octoctl status: http://127.0.0.1:${closed}/debug/pilots: ECONNREFUSED`);
    expect((await octoctl('frobnicate')).code).toBe(2);
  });
});

function readExample(name: string): string {
  return readFileSync(join(REPO, 'examples/valid', name), 'utf8');
}
