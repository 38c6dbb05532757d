/**
 * The gRPC server every control-plane deployable starts: keepalive settings shared, plaintext or
 * mTLS with the access table (`security`, see mtls.ts), a graceful close that forces streams
 * after 2 s (Watch and ADS streams never end on their own).
 */
import { Server } from '@grpc/grpc-js';
import { meshServerCredentials, type MeshServerSecurity } from './mtls.js';

export interface StartedGrpc {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Binds a gRPC server on host:port (0 = any free port) with the given services. */
export async function startGrpcServer(host: string, port: number, add: (server: Server) => void, security?: MeshServerSecurity): Promise<StartedGrpc> {
  const server = new Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
  add(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, meshServerCredentials(security), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    server,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        // Graceful first; streams (Watch) never end on their own, so force after a moment.
        const t = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
