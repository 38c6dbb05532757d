/**
 * Test servers for the gRPC health check: a real grpc-js server with or without
 * grpc.health.v1.Health (statuses set by the test, or never answering), and a TCP relay that
 * counts the connections made through it (to see channels reused and closed).
 */
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData, type ServiceDefinition } from '@grpc/grpc-js';
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from '../grpc-probe.js';

/** Server side of the two messages (the server's codec is the mirror of the checker's; grpc-js wants an object). */
const decodeRequest = (buf: Buffer): { service: string } => ({ service: buf.length ? buf.subarray(2, 2 + buf[1]!).toString('utf8') : '' });
const encodeRequest = (r: { service: string }): Buffer => encodeHealthCheckRequest(r.service);
const encodeResponse = (s: number): Buffer => (s ? Buffer.from([0x08, s]) : Buffer.alloc(0));

const healthService: ServiceDefinition = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeRequest,
    requestDeserialize: decodeRequest,
    responseSerialize: encodeResponse,
    responseDeserialize: decodeHealthCheckResponse,
  },
};
const otherService: ServiceDefinition = {
  Get: { ...healthService.Check!, path: '/shop.Catalog/Get' },
};

/** A Health server: status per service name (absent = NOT_FOUND, as the protocol says), or `hang`. */
export class HealthServer {
  readonly statuses = new Map<string, number>();
  hang = false;
  checks = 0;
  /** The :authority of the last check (only the last: a bench sends thousands a second). */
  lastAuthority = '';
  readonly server = new Server();
  port = 0;
  constructor(withHealth: boolean) {
    if (withHealth)
      this.server.addService(healthService, {
        Check: (call: ServerUnaryCall<{ service: string }, number>, cb: sendUnaryData<number>) => {
          this.checks++;
          this.lastAuthority = call.getHost();
          if (this.hang) return; // never answers: the caller's deadline ends it
          const s = this.statuses.get(call.request.service);
          if (s === undefined) cb({ code: status.NOT_FOUND, details: `unknown service ${call.request.service}` });
          else cb(null, s);
        },
      });
    else this.server.addService(otherService, { Get: (_c: ServerUnaryCall<{ service: string }, number>, cb: sendUnaryData<number>) => cb(null, 1) });
  }
  async listen(port = 0): Promise<void> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.tryShutdown(() => r()));
  }
  /** Closes every connection at once (the process died). */
  kill(): void {
    this.server.forceShutdown();
  }
}

/** A TCP relay in front of a server that counts the connections made through it. */
export class CountingRelay {
  opened = 0;
  readonly open = new Set<Socket>();
  port = 0;
  private readonly server: TcpServer;
  constructor(targetPort: number) {
    this.server = createTcpServer((client) => {
      this.opened++;
      this.open.add(client);
      const upstream = connect(targetPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      const end = () => (this.open.delete(client), client.destroy(), upstream.destroy());
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  close(): Promise<void> {
    for (const s of this.open) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}
