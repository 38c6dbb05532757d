import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort } from '@octo-mesh/runtime';
import type { RunningPilot } from './main.js';
import { MemoryMeshSource } from './source.js';
import { buildProxy, quietPilot, startSidecar, stopChild, until } from './test-support/sidecar.js';

// Plain TCP through the real OCTO proxy (its built executable, as a child process) configured by a
// real pilot: a TCP echo server registered as a `tcp` service; the sidecar binds the service's
// port on its loopback (the listener pilot sends) and bytes written there come back echoed.

/** An echo server (each read sent back after `prefix`) that counts its connections. */
function echoServer(prefix = ''): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.on('error', () => {});
    if (!prefix) s.pipe(s);
    else s.on('data', (c: Buffer) => s.write(Buffer.concat([Buffer.from(prefix), c])));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, connections: () => n })));
}

/**
 * Connects, writes `data` and resolves with the first `data.length` bytes read back (then closes);
 * rejects when the connection ends or fails first.
 */
function roundTrip(port: number, data: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const s: Socket = connect({ host: '127.0.0.1', port });
    const done = (err?: Error) => {
      clearTimeout(t);
      s.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const t = setTimeout(() => done(new Error(`${got} of ${data.length} bytes echoed within ${timeoutMs} ms`)), timeoutMs);
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= data.length) done();
    });
    s.on('end', () => done(new Error(`connection ended after ${got} of ${data.length} bytes`)));
    s.on('error', (err) => done(err));
  });
}

/** Resolves once nothing accepts connections on the port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

const tcpService = (name: string, port: number) => ({
  apiVersion: 'model.mesh.octo.io/v1' as const,
  kind: 'Service' as const,
  metadata: { name, namespace: 'demo' },
  spec: { ports: [{ name: 'echo', port, protocol: 'tcp' as const }] },
});

describe('plain TCP through the real OCTO proxy, configured by pilot', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  // Another service with the same TCP port, which the sidecar also depends on: demo/echo sorts
  // first and keeps 127.0.0.1:<port> until it goes.
  let shadow: Awaited<ReturnType<typeof echoServer>>;
  let servicePort = 0;
  let pilot: RunningPilot;
  let proxy: ChildProcess;
  let adminPort = 0;
  const source = new MemoryMeshSource();

  beforeAll(async () => {
    buildProxy();
    [echo, shadow] = await Promise.all([echoServer(), echoServer('shadow:')]);
    servicePort = await freePort();
    source.upsertService(tcpService('echo', servicePort), [{ address: '127.0.0.1', port: echo.port, labels: {}, healthy: true }]);
    source.upsertService(tcpService('shadow', servicePort), [{ address: '127.0.0.1', port: shadow.port, labels: {}, healthy: true }]);
    pilot = await quietPilot(source);
    const sidecar = await startSidecar(pilot.xdsPort, { nodeId: 'sidecar-tcp', workload: 'client', dependencies: 'echo,shadow' });
    proxy = sidecar.child;
    adminPort = sidecar.started.adminPort;
  }, 60_000);

  afterAll(async () => {
    await stopChild(proxy);
    await pilot?.stop();
    echo?.server.close();
    shadow?.server.close();
  }, 20_000);

  it('binds the service port on the loopback and echoes bytes through the proxy', async () => {
    const before = echo.connections();
    const got = await until('an echo through the sidecar', async () => {
      const r = await roundTrip(servicePort, Buffer.from('hello over tcp\n'));
      return r.length ? r : undefined;
    });
    expect(got.toString()).toBe('hello over tcp\n');
    // Only the proxy listens on the service port: the echo server saw the connection from it.
    expect(echo.connections()).toBeGreaterThan(before);
    const listeners = await (await fetch(`http://127.0.0.1:${adminPort}/listeners`)).text();
    expect(listeners).toContain(`outbound|${servicePort}|tcp|echo.demo.svc`);
  }, 20_000);

  it('carries 4 MiB intact, on several connections at once', async () => {
    const payloads = Array.from({ length: 4 }, () => randomBytes(1 << 20));
    const echoed = await Promise.all(payloads.map((p) => roundTrip(servicePort, p, 15_000)));
    echoed.forEach((e, i) => expect(e.equals(payloads[i]!)).toBe(true));
  }, 20_000);

  it("passes the client's end on and the server's end back", async () => {
    const ended = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect({ host: '127.0.0.1', port: servicePort }, () => s.write('bye'));
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        // Half-close once the echo is back: the echo server ends in turn, through the proxy.
        if (Buffer.concat(chunks).toString() === 'bye') s.end();
      });
      s.on('end', () => resolve(Buffer.concat(chunks).toString()));
      s.on('error', reject);
    });
    expect(ended).toBe('bye');
  }, 20_000);

  it('reports the shadowed service in /debug/pilotz', async () => {
    const pilotz = (await (await fetch(`http://127.0.0.1:${pilot.admin.port}/debug/pilotz`)).json()) as { nodes: { id: string; tcpConflicts?: string[] }[] };
    expect(pilotz.nodes.find((n) => n.id === 'sidecar-tcp')?.tcpConflicts).toEqual([
      `outbound|${servicePort}|tcp|shadow.demo.svc not bound: 127.0.0.1:${servicePort} is also claimed by demo/echo, which sorts first and keeps it`,
    ]);
    expect(shadow.connections()).toBe(0);
  }, 20_000);

  it('hands the address to the shadowed service when the owner leaves the mesh', async () => {
    // (The proxy binds a new listener before closing the one that goes, so its first bind of the
    // shadow's listener fails with EADDRINUSE; it binds on its next sync — a later xDS update in
    // the same push. Pilot itself never serves two listeners with one address.)
    source.deleteService('demo/echo');
    const got = await until('the shadow service answering on the port', async () => {
      const r = (await roundTrip(servicePort, Buffer.from('ping'))).toString();
      return r.startsWith('shadow:') ? r : undefined;
    });
    expect(got).toBe('shadow:ping');
    const listeners = await (await fetch(`http://127.0.0.1:${adminPort}/listeners`)).text();
    expect(listeners).not.toContain('|tcp|echo.demo.svc');
  }, 20_000);

  it('unbinds the listener when the last service with the port leaves the mesh', async () => {
    source.deleteService('demo/shadow');
    await until('the service port refusing connections', async () => ((await refused(servicePort)) ? true : undefined));
    const listeners = await (await fetch(`http://127.0.0.1:${adminPort}/listeners`)).text();
    expect(listeners).not.toContain('|tcp|');
  }, 20_000);
});
