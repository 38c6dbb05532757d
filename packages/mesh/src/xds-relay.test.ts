import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startGrpcServer, type StartedGrpc } from '@octo-mesh/dispatcher';
import { HashRing, MetaServer, MetaServerService, PilotMembership } from '@octo-mesh/meta-server';
import { createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { XdsRelay } from './xds-relay.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

/** A stand-in pilot endpoint: a TCP server that answers every line with `<name>:<line>`. */
async function pilotEndpoint(name: string): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

function ask(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(line));
    s.once('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once('error', reject);
    s.once('close', () => resolve(''));
  });
}

describe('XdsRelay', () => {
  let meta: MetaServer;
  let grpc: StartedGrpc;
  const pilots: Awaited<ReturnType<typeof pilotEndpoint>>[] = [];
  const members: PilotMembership[] = [];

  beforeAll(async () => {
    meta = new MetaServer({ logger: quiet(), registry: createMetricsRegistry('m'), pilotTtlMs: 5000, heartbeatIntervalMs: 100, maxMovesPerSecond: 10, instanceTtlMs: 1000 });
    meta.start();
    grpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(MetaServerService, meta.metaService()));
    for (const id of ['pilot-a', 'pilot-b']) {
      const p = await pilotEndpoint(id);
      pilots.push(p);
      const m = new PilotMembership({ metaAddress: `127.0.0.1:${grpc.port}`, pilotId: id, xdsAddress: `127.0.0.1:${p.port}`, sidecars: () => [] });
      m.start();
      members.push(m);
    }
    while (meta.pilots.list().length < 2) await new Promise((r) => setTimeout(r, 20));
  });
  afterAll(async () => {
    for (const m of members) await m.stop();
    await meta.stop();
    await grpc.close();
    for (const p of pilots) p.server.close();
  });

  it('forwards to the pilot the meta server names, and to another one when that pilot is lost', async () => {
    const relay = new XdsRelay({ metaAddress: `127.0.0.1:${grpc.port}`, nodeId: 'frontend-v1-0.demo', namespace: 'demo', workload: 'frontend', logger: quiet() });
    const port = await relay.listen();
    try {
      const first = await ask(port, 'hello');
      const home = meta.pilots.assignmentOf('demo', 'frontend')!;
      expect(first).toBe(`${home}:hello`);
      expect(relay.pilot).toBe(home);

      // The home pilot dies: its listener closes and its connections reset.
      const dead = pilots[home === 'pilot-a' ? 0 : 1]!;
      dead.server.close();
      for (const s of dead.sockets) s.destroy();
      const other = home === 'pilot-a' ? 'pilot-b' : 'pilot-a';
      let answer = await ask(port, 'again');
      if (answer === '') answer = await ask(port, 'again'); // the first try may land on the dying pilot
      expect(answer).toBe(`${other}:again`);
      expect(relay.pilot).toBe(other);
      expect(relay.moves).toBe(1);
    } finally {
      await relay.close();
    }
  });
});

describe('XdsRelay when a pilot joins', () => {
  it('moves the sidecar once the meta server reassigns it (what a shed does)', async () => {
    const meta = new MetaServer({ logger: quiet(), registry: createMetricsRegistry('m'), pilotTtlMs: 5000, heartbeatIntervalMs: 100, maxMovesPerSecond: 1000, instanceTtlMs: 1000 });
    const grpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(MetaServerService, meta.metaService()));
    const metaAddress = `127.0.0.1:${grpc.port}`;
    // A workload the ring gives to pilot-c once it joins (the ring is deterministic).
    const workload = Array.from({ length: 100 }, (_, i) => `app-${i}`).find((w) => new HashRing(['pilot-a', 'pilot-b', 'pilot-c']).lookup(`demo/${w}`) === 'pilot-c')!;
    const endpoints = new Map<string, Awaited<ReturnType<typeof pilotEndpoint>>>();
    const members: PilotMembership[] = [];
    const join = async (id: string) => {
      const p = await pilotEndpoint(id);
      endpoints.set(id, p);
      const m = new PilotMembership({ metaAddress, pilotId: id, xdsAddress: `127.0.0.1:${p.port}`, sidecars: () => [] });
      m.start();
      members.push(m);
      while (!meta.pilots.get(id)) await new Promise((r) => setTimeout(r, 20));
    };
    const relay = new XdsRelay({ metaAddress, nodeId: `${workload}-0.demo`, namespace: 'demo', workload, logger: quiet(), recheckMs: 100 });
    const port = await relay.listen();
    try {
      await join('pilot-a');
      await join('pilot-b');
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      await new Promise<void>((r) => {
        s.once('data', () => r());
        s.write('x');
      });
      const before = relay.pilot;
      expect(before).not.toBe('pilot-c');
      await join('pilot-c');
      expect(meta.pilots.rebalance(1000).map((m) => m.workload)).toContain(`demo/${workload}`);
      await closed; // the relay dropped the stream: the proxy would reconnect now
      expect(await ask(port, 'moved')).toBe('pilot-c:moved');
      expect(relay.moves).toBe(1);
    } finally {
      await relay.close();
      for (const m of members) await m.stop();
      await grpc.close();
      for (const p of endpoints.values()) p.server.close();
    }
  });
});
