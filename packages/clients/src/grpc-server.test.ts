import { describe, expect, it } from '@jest/globals';
import { credentials, status, type sendUnaryData } from '@grpc/grpc-js';
import { connect } from 'node:net';
import { MetaServerClient, MetaServerService, type LocateResponse } from '@octo-mesh/proto';
import { MeshGrpcServer, startGrpcServer } from './grpc-server.js';

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });

// The server listens on a socket of its own (a deep accept queue, which grpc-js cannot set) and
// hands each connection to grpc-js: calls work as with bindAsync, and shutting down stops listening.
describe('MeshGrpcServer', () => {
  it('serves calls on its own listener and stops listening when closed', async () => {
    const grpc = await startGrpcServer('127.0.0.1', 0, (s) =>
      s.addService(MetaServerService, {
        locate(call: { getPeer(): string }, cb: sendUnaryData<LocateResponse>) {
          cb(null, { pilotId: 'pilot-a', xdsAddress: call.getPeer() });
        },
      } as never),
    );
    expect(grpc.server).toBeInstanceOf(MeshGrpcServer);
    const client = new MetaServerClient(`127.0.0.1:${grpc.port}`, credentials.createInsecure());
    const res = await new Promise<LocateResponse>((resolve, reject) =>
      client.locate({ nodeId: 'n', namespace: 'demo', workload: 'w', unreachablePilotId: '' }, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    client.close();
    expect(res.pilotId).toBe('pilot-a');
    expect(res.xdsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    await grpc.close();
    expect(await refused(grpc.port)).toBe('ECONNREFUSED');
  });

  it('close ends a call that never ends on its own (as a Watch or ADS stream): its client is told', async () => {
    // grpc-js's tryShutdown reports done at once for connections it did not accept itself, so
    // close() once left such a call open for ever (a restarted dispatcher's watchers never moved).
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const grpc = await startGrpcServer('127.0.0.1', 0, (s) =>
      s.addService(MetaServerService, {
        locate() {
          arrived(); // and never answers
        },
      } as never),
    );
    const client = new MetaServerClient(`127.0.0.1:${grpc.port}`, credentials.createInsecure());
    const outcome = new Promise<string>((resolve) =>
      client.locate({ nodeId: 'n', namespace: 'demo', workload: 'w', unreachablePilotId: '' }, (err) => resolve(err ? `ended: ${status[err.code]}` : 'answered')),
    );
    await reached;
    await grpc.close();
    expect(await outcome).toMatch(/^ended: (UNAVAILABLE|CANCELLED|INTERNAL)$/);
    client.close();
  }, 15_000);

  it('forceShutdown stops listening too', async () => {
    const server = new MeshGrpcServer();
    const { ServerCredentials } = await import('@grpc/grpc-js');
    const port = await server.listen('127.0.0.1', 0, ServerCredentials.createInsecure());
    expect(await refused(port)).toBe('connected');
    server.forceShutdown();
    expect(await refused(port)).toBe('ECONNREFUSED');
  });

  it('rejects a port in use, as bindAsync does', async () => {
    const a = new MeshGrpcServer();
    const { ServerCredentials } = await import('@grpc/grpc-js');
    const port = await a.listen('127.0.0.1', 0, ServerCredentials.createInsecure());
    await expect(new MeshGrpcServer().listen('127.0.0.1', port, ServerCredentials.createInsecure())).rejects.toMatchObject({ code: 'EADDRINUSE' });
    a.forceShutdown();
  });
});
