// Pilot's own meta server membership, with real processes: an octo-meta-server and octo-pilot
// executables, and simulated sidecars that Locate their pilot over gRPC and hold real ADS streams.
// A pilot registers (advertising its bound xDS port) and heartbeats its sidecars; when a second
// pilot joins, the meta server moves workloads at its pace and the first pilot ends the moved
// sidecars' streams, so they re-locate to the newcomer; SIGTERM deregisters, so the sidecars move
// back at once.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as grpc from '@grpc/grpc-js';
import { locatePilot } from '@octo-mesh/clients';
import { DiscoveryRequest, type DiscoveryResponse } from '@octo-mesh/proto';
import { adsClient } from './sim/ads-client.js';
import { waitFor } from '@octo-mesh/runtime';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';

interface Proc {
  child: ReturnType<typeof spawn>;
  exited: Promise<number | null>;
  out: () => string;
  line: (message: string, timeoutMs?: number) => Promise<Record<string, unknown>>;
}

const procs: Proc[] = [];

function run(script: string, args: string[]): Proc {
  const child = spawn(process.execPath, [join(ROOT, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const line = async (message: string, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = out.split('\n').find((x) => x.includes(`"message":"${message}"`));
      if (l) return JSON.parse(l) as Record<string, unknown>;
      if (Date.now() > deadline) throw new Error(`no "${message}" within ${timeoutMs} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const p = { child, exited, out: () => out, line };
  procs.push(p);
  return p;
}

const until = <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> =>
  waitFor(what, get, ok, { timeoutMs, intervalMs: 100 });

/**
 * A sidecar's control-plane loop, as octo-proxy does it: Locate, open ADS to the named pilot,
 * subscribe; when the pilot ends the stream, Locate again and reconnect.
 */
class SimSidecar {
  pilot: string | undefined;
  /** Streams a pilot ended, with the pilot and when. */
  readonly ended: { pilot: string; at: number; code: number }[] = [];
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private client: ReturnType<typeof adsClient> | undefined;
  private stopped = false;

  constructor(
    private readonly metaAddress: string,
    readonly workload: string,
  ) {}

  get nodeId(): string {
    return `${this.workload}-0.demo`;
  }

  async connect(): Promise<void> {
    const loc = await locatePilot({ metaAddress: this.metaAddress, nodeId: this.nodeId, namespace: 'demo', workload: this.workload, timeoutMs: 5000 });
    if (this.stopped) return;
    this.pilot = loc.pilotId;
    this.client?.close();
    this.client = adsClient(loc.xdsAddress);
    const call = (this.call = this.client.streamAggregatedResources());
    call.on('data', (r: DiscoveryResponse) => call.write(DiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce })));
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => {
      if (this.stopped || this.call !== call) return;
      this.ended.push({ pilot: loc.pilotId, at: Date.now(), code: s.code });
      setTimeout(() => void this.connect(), 50);
    });
    call.write(
      DiscoveryRequest.fromPartial({
        node: { id: this.nodeId, metadata: { namespace: 'demo', workload: this.workload, dependencies: [] } },
        typeUrl: LDS,
      }),
    );
  }

  stop(): void {
    this.stopped = true;
    this.call?.cancel();
    this.client?.close();
  }
}

const sidecars: SimSidecar[] = [];

beforeAll(() => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/pilot', 'packages/meta-server'], { cwd: ROOT, stdio: 'pipe' });
}, 120_000);

afterAll(async () => {
  for (const s of sidecars) s.stop();
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
});

describe('pilot membership in the meta server (real processes)', () => {
  it('registers, heartbeats its sidecars, sheds the ones moved to a joining pilot at the meta server pace, and deregisters on SIGTERM', async () => {
    const meta = run('packages/meta-server/dist/main.js', ['--grpc-port', '0', '--admin-port', '0', '--max-moves-per-second', '2', '--log-level', 'info']);
    const { grpcPort, adminPort } = (await meta.line('listening')) as { grpcPort: number; adminPort: number };
    const metaAddress = `127.0.0.1:${grpcPort}`;
    const metaAdmin = `http://127.0.0.1:${adminPort}`;
    const get = async <T>(path: string) => (await (await fetch(`${metaAdmin}${path}`)).json()) as T;
    const pilotArgs = (id: string) => [
      '--pilot-id', id, '--xds-host', '127.0.0.1', '--xds-port', '0', '--admin-host', '127.0.0.1', '--admin-port', '0',
      '--meta-server-address', metaAddress, '--shutdown-grace-seconds', '1',
    ];

    // One pilot registers with the address it actually bound.
    const a = run('packages/pilot/dist/main.js', pilotArgs('pilot-a'));
    const aServing = (await a.line('pilot serving')) as { xdsPort: number; adminPort: number };
    const pilots = await until(() => get<{ id: string; xdsAddress: string; adminAddress: string }[]>('/debug/pilots'), (ps) => ps.length === 1, 'pilot-a registered');
    expect(pilots[0]).toMatchObject({ id: 'pilot-a', xdsAddress: `127.0.0.1:${aServing.xdsPort}`, adminAddress: `127.0.0.1:${aServing.adminPort}` });

    // Twelve workloads' sidecars find it through Locate; its heartbeats report them with their workloads.
    for (let i = 0; i < 12; i++) sidecars.push(new SimSidecar(metaAddress, `app-${i}`));
    await Promise.all(sidecars.map((s) => s.connect()));
    type Row = { nodeId: string; workload: string; pilot: string; connectedTo?: string };
    await until(() => get<Row[]>('/debug/sidecars'), (rows) => rows.length === 12 && rows.every((r) => r.connectedTo === 'pilot-a'), 'every sidecar reported by pilot-a');

    // A second pilot joins: the ring gives it some workloads, moved at most 2 per second; pilot-a
    // ends exactly those streams and their sidecars re-locate to pilot-b.
    const joinedAt = Date.now();
    const b = run('packages/pilot/dist/main.js', pilotArgs('pilot-b'));
    await b.line('pilot serving');
    // "Serving" is logged before the registration round trip: until the meta server lists both
    // pilots, the ring still gives everything to pilot-a and would look settled already.
    await until(() => get<{ id: string }[]>('/debug/pilots'), (ps) => ps.length === 2, 'pilot-b registered');
    const settled = await until(
      () => Promise.all([get<Row[]>('/debug/sidecars'), get<{ workloads: Record<string, string>; pendingMoves: number }>('/debug/assignments')]),
      ([rows, asg]) => asg.pendingMoves === 0 && rows.length === 12 && rows.every((r) => r.connectedTo === asg.workloads[`demo/${r.workload}`]),
      'every sidecar connected to the pilot the ring assigns',
      30_000,
    );
    const moved = sidecars.filter((s) => settled[1].workloads[`demo/${s.workload}`] === 'pilot-b');
    expect(moved.length).toBeGreaterThanOrEqual(2);
    expect(moved.length).toBeLessThan(12);
    for (const s of sidecars) {
      const shed = s.ended.filter((e) => e.pilot === 'pilot-a' && e.at >= joinedAt);
      expect({ nodeId: s.nodeId, shed: shed.length, now: s.pilot }).toEqual({ nodeId: s.nodeId, shed: moved.includes(s) ? 1 : 0, now: moved.includes(s) ? 'pilot-b' : 'pilot-a' });
      for (const e of shed) expect(e.code).toBe(0); // ended cleanly (OK), not an error
    }
    // Paced: two sidecars a second, so the sheds are spread over (moved/2 - 1) seconds at least.
    const times = moved.map((s) => s.ended.find((e) => e.pilot === 'pilot-a' && e.at >= joinedAt)!.at);
    const spread = Math.max(...times) - Math.min(...times);
    process.stdout.write(`pilot-b joined: ${moved.length} of 12 workloads moved to it, shed over ${spread} ms\n`);
    if (moved.length > 2) expect(spread).toBeGreaterThanOrEqual((Math.ceil(moved.length / 2) - 1) * 1000 - 600);
    expect(a.out()).toContain('ended their streams');

    // SIGTERM deregisters pilot-b before its streams end: its sidecars go back to pilot-a long
    // before pilot-b's lease would have lapsed.
    const stoppedAt = Date.now();
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    await until(() => get<Row[]>('/debug/sidecars'), (rows) => rows.length === 12 && rows.every((r) => r.connectedTo === 'pilot-a'), 'every sidecar back on pilot-a', 10_000);
    expect((await get<{ id: string }[]>('/debug/pilots')).map((p) => p.id)).toEqual(['pilot-a']);
    expect(Date.now() - stoppedAt).toBeLessThan(8000);
  }, 90_000);
});
