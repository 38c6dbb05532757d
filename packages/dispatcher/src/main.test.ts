// The dispatcher executable as a child process: config errors name the field, the admin endpoint
// serves /healthz /readyz /metrics and debug routes, logs are JSON, SIGTERM stops it cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DispatcherConnection } from '@octo-mesh/clients';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/dispatcher/dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'octo-dispatcher-main-'));

function run(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const listening = async () => {
    for (let i = 0; i < 200; i++) {
      const line = stdout.split('\n').find((l) => l.includes('"listening"'));
      if (line) return JSON.parse(line) as { grpcPort: number; adminPort: number };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`not listening: ${stdout}${stderr}`);
  };
  return { child, exited, listening, out: () => stdout, err: () => stderr };
}

beforeAll(() => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/dispatcher'], { cwd: ROOT });
  cpSync(join(ROOT, 'examples/embedded'), join(dir, 'manifests'), { recursive: true });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('octo-dispatcher executable', () => {
  it.each([
    [['--grpc-port', 'x'], 'grpcPort', 'flag --grpc-port'],
    [['--watch-dir', '/nonexistent/dir'], 'watchDir', 'not a directory'],
    [['--kubernetes', 'maybe'], 'kubernetes', 'flag --kubernetes'],
  ])('refuses %j naming the field', async (args, field, detail) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain(field);
    expect(p.err()).toContain(detail);
    }, 30_000); // a child process's start on a busy machine

  it('serves the watched manifests over gRPC, health and metrics over HTTP, and stops on SIGTERM', async () => {
    const p = run(['--grpc-port', '0', '--admin-port', '0', '--watch-dir', join(dir, 'manifests')]);
    const { grpcPort, adminPort } = await p.listening();
    const conn = new DispatcherConnection(`127.0.0.1:${grpcPort}`);
    try {
      expect((await conn.list('RoutePolicy')).items.map((o) => o.metadata.name)).toEqual(['catalog']);
      const base = `http://127.0.0.1:${adminPort}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/octo_dispatcher_objects\{kind="RoutePolicy"\} 1/);
      expect(await (await fetch(`${base}/debug/manifests`)).json()).toMatchObject({ issues: [] });
    } finally {
      conn.close();
    }
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    const lines = p.out().trim().split('\n').map((l) => JSON.parse(l) as { level: string; message: string; component: string });
    expect(lines.every((l) => l.component === 'dispatcher')).toBe(true);
    expect(lines.map((l) => l.message)).toContain('stopped');
  }, 30_000);

  it('over mTLS refuses anonymous and unentitled writes: only the operator, administrators, the meta server and the checker write (issue 21)', async () => {
    const TD = 'spiffe://cluster.local';
    const pki = meshTestPki(join(dir, 'pki'));
    const p = run(['--grpc-port', '0', '--admin-port', '0', '--tls-dir', pki.issue('dispatcher', `${TD}/ns/octo-system/sa/octo-dispatcher`)]);
    const { grpcPort, adminPort } = await p.listening();
    const as = (name: string, sa: string | undefined) =>
      new DispatcherConnection(`127.0.0.1:${grpcPort}`, sa ? { certDir: pki.issue(name, `${TD}/ns/${sa}`) } : undefined);
    const policy = (name: string) => ({ apiVersion: 'mesh.octo.io/v1alpha1', kind: 'RoutePolicy', metadata: { name, namespace: 'demo' }, spec: { targetRef: { service: 'catalog' } } }) as never;
    const anonymous = as('anon', undefined);
    const workload = as('web', 'demo/sa/web');
    const pilot = as('pilot', 'octo-system/sa/octo-pilot');
    const operator = as('operator', 'octo-system/sa/octo-operator');
    try {
      await expect(anonymous.apply(policy('a'))).rejects.toThrow(/unavailable|UNAVAILABLE|No connection established/i);
      await expect(workload.apply(policy('w'))).rejects.toThrow(/Dispatcher\/Apply is for .*; spiffe:\/\/cluster.local\/ns\/demo\/sa\/web may not call it/);
      await expect(workload.list('RoutePolicy')).rejects.toThrow(/Dispatcher\/List is for/);
      await expect(pilot.apply(policy('p'))).rejects.toThrow(/may not call it/);
      expect((await operator.apply(policy('ok'))).metadata.name).toBe('ok');
      expect((await pilot.list('RoutePolicy')).items.map((o) => o.metadata.name)).toEqual(['ok']);
      const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      expect(metrics).toMatch(/octo_grpc_access_denied_total\{method="\/octo.mesh.v1.Dispatcher\/Apply",code="permission-denied"\} 2/);
    } finally {
      for (const c of [anonymous, workload, pilot, operator]) c.close();
    }
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }, 60_000);
});
