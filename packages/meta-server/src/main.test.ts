// The meta server executable as a child process: config errors name the field; pilots register
// over gRPC and show on the debug API and in metrics; SIGTERM stops it cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { PilotMembership, locatePilot } from '@octo-mesh/clients';
import { waitFor } from '@octo-mesh/runtime';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/meta-server/dist/main.js');

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
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/meta-server'], { cwd: ROOT });
}, 120_000);

describe('octo-meta-server executable', () => {
  it.each([
    [['--max-moves-per-second', '0'], 'maxMovesPerSecond'],
    [['--heartbeat-interval-ms', '5000'], 'heartbeatIntervalMs'],
    [['--bogus', '1'], 'bogus'],
    [['--namespace', 'mesh'], 'kubernetes: must be true when kubeconfig or namespace is set'],
    [['--kubernetes', '--namespace', 'Mesh_System'], 'namespace: must be a Kubernetes namespace name'],
    [['--kubernetes', '--join-ramp-ms', '-1'], 'joinRampMs'],
    [['--kubernetes', '--kubeconfig', '/nonexistent/kubeconfig'], 'kubeconfig: ENOENT'],
  ])('refuses %j naming the field', async (args, field) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.err()).toContain(field);
  });

  it('registers pilots, answers Locate, serves health, metrics and debug routes, and stops on SIGTERM', async () => {
    const p = run(['--grpc-port', '0', '--admin-port', '0']);
    const { grpcPort, adminPort } = await p.listening();
    const base = `http://127.0.0.1:${adminPort}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(503); // no pilot yet
    const m = new PilotMembership({ metaAddress: `127.0.0.1:${grpcPort}`, pilotId: 'pilot-a', xdsAddress: '127.0.0.1:15010', sidecars: () => [] });
    m.start();
    try {
      const r = await locatePilot({ metaAddress: `127.0.0.1:${grpcPort}`, nodeId: 'n1', namespace: 'demo', workload: 'frontend', timeoutMs: 5000 });
      expect(r).toEqual({ pilotId: 'pilot-a', xdsAddress: '127.0.0.1:15010' });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${base}/debug/assignments`)).json()).toEqual({ workloads: { 'demo/frontend': 'pilot-a' }, pendingMoves: 0 });
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/octo_meta_pilots\{state="live"\} 1/);
      expect(metrics).toMatch(/octo_meta_workload_moves_total\{reason="new"\} 1/);
    } finally {
      await m.stop();
    }
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('"message":"stopped"');
  }, 30_000);

  // Found at 10,000 sidecars (bench/scale): a meta server starved of CPU ran its lease sweep
  // before reading the heartbeats that had arrived meanwhile, so every pilot lapsed at once and
  // all their sidecars moved. The time it did not run is not charged to the leases.
  it('keeps a live pilot through a stall of its own longer than the lease (SIGSTOP for 5 s, TTL 3 s)', async () => {
    const p = run(['--grpc-port', '0', '--admin-port', '0']);
    const { grpcPort, adminPort } = await p.listening();
    const base = `http://127.0.0.1:${adminPort}`;
    const m = new PilotMembership({ metaAddress: `127.0.0.1:${grpcPort}`, pilotId: 'pilot-a', xdsAddress: '127.0.0.1:15010', sidecars: () => [] });
    m.start();
    try {
      await waitFor('pilot-a live', async () => (await fetch(`${base}/readyz`)).status, (s) => s === 200, { timeoutMs: 20_000, retryErrors: true });
      p.child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 5000)); // the fault: the meta server does not run
      p.child.kill('SIGCONT');
      // Its first sweep after the stall either charges it to the lease (the pilot lapses) or not.
      await waitFor('the first sweep after the stall', () => p.out(), (o) => o.includes('pilot lease lapsed') || o.includes('meta server stalled'), { timeoutMs: 20_000 });
      expect(p.out()).not.toContain('pilot lease lapsed');
      expect(p.out()).toContain('"message":"meta server stalled; leases are not charged for the stall"');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/octo_meta_stalls_total [1-9]/);
      expect(metrics).toMatch(/octo_meta_pilots\{state="live"\} 1/);
    } finally {
      await m.stop();
      p.child.kill('SIGCONT');
      p.child.kill('SIGTERM');
      await p.exited;
    }
  }, 60_000);
});
