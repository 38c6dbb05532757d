/**
 * MockSidecar's two gRPC clients (grpc-js and lean.ts's node:http2 by hand) held to the same
 * behaviour on real sockets: against a grpc-js ADS server that can end a stream with a status, and
 * against the real control plane (dispatcher, meta server and two pilots as child processes).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { MetaAdminClient, PilotAdminClient } from '@octo-mesh/clients';
import { TYPE_URL } from '@octo-mesh/proto';
import { REPO_ROOT } from '@octo-mesh/testing';
import { EmbeddedControlPlane } from './control-plane.js';
import { FrameReader, grpcFrame, LeanCallError, leanLocate, leanUnary, statusOf } from './lean.js';
import { MockSidecar, type SidecarClient, type SidecarSpec } from './sidecar.js';
import { adsServer as startAdsServer } from './test-support/ads-server.js';

const CLIENTS: SidecarClient[] = ['grpc-js', 'lean'];
const spec = (id: string, dependencies: string[] = []): SidecarSpec => ({ id, template: 't', namespace: 'demo', workload: id.split('.')[0]!, version: 'v1', dependencies, protocol: 'sotw' });

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  for (const t0 = performance.now(); !(await cond()); ) {
    if (performance.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('FrameReader', () => {
  const frames = Buffer.concat([grpcFrame(Buffer.from('ab')), grpcFrame(Buffer.alloc(0)), grpcFrame(Buffer.from('cdef'))]);
  // columns: how the bytes arrive (chunk sizes), messages read
  it.each([
    ['whole', [frames.length]],
    ['byte by byte', Array(frames.length).fill(1)],
    ['split inside a prefix', [3, frames.length - 3]],
    ['split inside a body', [6, frames.length - 6]],
  ])('%s', (_, sizes) => {
    const r = new FrameReader();
    const got: string[] = [];
    let at = 0;
    for (const n of sizes as number[]) {
      r.push(frames.subarray(at, at + n), (m) => got.push(m.toString()));
      at += n;
    }
    expect(got).toEqual(['ab', '', 'cdef']);
  });

  it('refuses a compressed message', () => {
    const b = grpcFrame(Buffer.from('x'));
    b[0] = 1;
    expect(() => new FrameReader().push(b, () => {})).toThrow('compressed');
  });
});

describe('statusOf', () => {
  // columns: headers, status
  it.each([
    [{}, undefined],
    [{ 'grpc-status': '0' }, { code: 0, details: '' }],
    [{ 'grpc-status': '14', 'grpc-message': 'pilot%20gone' }, { code: 14, details: 'pilot gone' }],
    [{ 'grpc-status': '3', 'grpc-message': '100%' }, { code: 3, details: '100%' }],
  ])('%j', (headers, status) => {
    expect(statusOf(headers)).toEqual(status);
  });
});

/** The shared test ADS server (test-support/ads-server.ts), shut down after each test. */
async function adsServer(endWith?: Parameters<typeof startAdsServer>[0]) {
  const server = await startAdsServer(endWith);
  cleanup.push(() => server.close());
  return server;
}

describe.each(CLIENTS)('MockSidecar on %s, against a grpc-js ADS server', (client) => {
  const sidecar = (address: string) => {
    const s = new MockSidecar(spec('a.demo'), { xdsAddress: address, pilotId: 'p' }, { client });
    cleanup.push(() => s.close());
    return s;
  };

  it('subscribes with its node, receives every type and ACKs each response with its version and nonce', async () => {
    const { address, requests } = await adsServer();
    const s = sidecar(address);
    s.start();
    await until('synced', () => s.synced);
    expect(s.headersAt).toBeDefined();
    expect([...s.held.get('cds')!]).toEqual(['c1']);
    expect([...s.held.get('rds')!]).toEqual(['outbound']);
    const subs = requests.filter((r) => !r.responseNonce);
    expect(subs.map((r) => r.typeUrl).sort()).toEqual([TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route].sort());
    for (const r of subs) expect(r.node?.id).toBe('a.demo');
    expect(subs.find((r) => r.typeUrl === TYPE_URL.endpoint)!.resourceNames).toEqual(['c1']);
    await until('4 ACKs', () => requests.filter((r) => r.responseNonce).length === 4);
    for (const ack of requests.filter((r) => r.responseNonce)) {
      expect(ack.versionInfo).toBe('v1');
      expect(ack.errorDetail).toBeUndefined();
      expect(ack.node).toBeUndefined();
    }
  });

  it('NACKs a response when told to, with the last good version and an error detail, and keeps its config', async () => {
    const { address, requests } = await adsServer();
    const s = sidecar(address);
    s.nackNext('lds', 'bad listener');
    s.start();
    await until('NACK', () => requests.some((r) => r.errorDetail));
    const nack = requests.find((r) => r.errorDetail)!;
    expect(nack.typeUrl).toBe(TYPE_URL.listener);
    expect(nack.errorDetail!.message).toBe('bad listener');
    expect(nack.responseNonce).not.toBe('');
    expect(nack.versionInfo).toBe('');
    expect(s.nacks).toBe(1);
    expect(s.held.get('lds')).toBeUndefined();
  });

  it('reads a gRPC status error from the trailers and reconnects on a new stream after a backoff', async () => {
    const { address, streams } = await adsServer({ 1: { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many streams' } });
    const s = sidecar(address);
    s.start();
    await until('second stream synced', () => s.synced && s.stream === 2);
    expect(s.lastError).toBe('stream ended: RESOURCE_EXHAUSTED too many streams');
    expect(s.streamsLost).toBe(1);
    expect(streams()).toBe(2);
  });

  it('takes a stream the server ends with OK as a move: locates again and reconnects', async () => {
    const { address, streams } = await adsServer({ 1: { code: grpc.status.OK, details: '' } });
    const s = sidecar(address);
    s.start();
    await until('second stream synced', () => s.synced && s.stream === 2);
    expect(s.lastError).toMatch(/^stream ended: OK/);
    expect(streams()).toBe(2);
  });

  it('probes: asks for a type again and records the time to the answer', async () => {
    const { address } = await adsServer();
    const s = sidecar(address);
    s.start();
    await until('synced', () => s.synced);
    expect(s.probe('eds')).toBe(true);
    await until('probe answered', () => s.probes.length === 1);
  });
});

describe('leanUnary', () => {
  it('reads the status of a trailers-only response (an unknown method)', async () => {
    const { address } = await adsServer();
    const err = await leanUnary(address, '/no.Such/Method', Buffer.alloc(0), 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeanCallError);
    expect((err as LeanCallError).code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('fails UNAVAILABLE on a refused connection; a locate gives up at its deadline', async () => {
    const { address } = await adsServer();
    cleanup.pop()!(); // the server is gone: its port refuses
    const err = await leanLocate({ metaAddress: address, nodeId: 'a.demo', namespace: 'demo', workload: 'a', timeoutMs: 300 }).catch((e: unknown) => e);
    expect((err as LeanCallError).code).toBe(grpc.status.UNAVAILABLE);
  });
});

describe.each(CLIENTS)('MockSidecar on %s, against the real control plane', (client) => {
  let cp: EmbeddedControlPlane;
  beforeAll(async () => {
    execFileSync(`${REPO_ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/mock-sidecar'], { cwd: REPO_ROOT, stdio: 'inherit' });
    cp = new EmbeddedControlPlane({ root: REPO_ROOT, pilots: 2 });
    await cp.start();
  }, 120_000);
  afterAll(async () => {
    await cp?.stop();
  });

  const sidecar = (id: string) => {
    const s = new MockSidecar(spec(id), { metaAddress: cp.metaAddress }, { client });
    cleanup.push(() => s.close());
    return s;
  };
  const syncState = async (s: MockSidecar, type: string) => {
    const admin = (await new MetaAdminClient(cp.metaAdminAddress).pilots()).find((p) => p.id === s.pilotId)!.adminAddress;
    return (await new PilotAdminClient(admin).nodeSync(s.spec.id)).types.find((t) => t.type === type)?.state;
  };

  it('locates its pilot through the meta server, syncs, and the pilot reports it SYNCED', async () => {
    const s = sidecar('a.demo');
    s.start();
    await until('synced', () => s.synced, 20_000);
    expect(s.pilotId).toMatch(/^pilot-[ab]$/);
    expect(s.held.get('lds')!.size).toBeGreaterThan(0);
    await until('pilot sees the ACKs', async () => (await syncState(s, 'Listener')) === 'SYNCED');
  }, 30_000);

  it('NACKs a response and the pilot reports it NACKED', async () => {
    const s = sidecar('b.demo');
    s.nackNext('lds', 'refused by the test');
    s.start();
    await until('NACK sent', () => s.nacks === 1, 20_000);
    await until('pilot sees the NACK', async () => (await syncState(s, 'Listener')) === 'NACKED');
    expect(s.held.get('lds')).toBeUndefined();
  }, 30_000);

  it('when its pilot is killed, locates again naming it and syncs on the other pilot', async () => {
    const s = sidecar('c.demo');
    s.start();
    await until('synced', () => s.synced, 20_000);
    const first = s.pilotId;
    await cp.kill(first, 'SIGKILL');
    await until('re-homed', () => s.synced && s.pilotId !== first, 30_000);
    expect(s.stream).toBe(2);
    expect(s.streamsLost).toBe(1);
    expect(s.lastError).toMatch(/^stream ended: UNAVAILABLE/);
  }, 60_000);
});
