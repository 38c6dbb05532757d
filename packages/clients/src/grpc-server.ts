/**
 * The gRPC server every control-plane deployable starts: keepalive settings shared, plaintext or
 * mTLS with the access table (`security`, see mtls.ts), a graceful close that forces streams
 * after 2 s (Watch and ADS streams never end on their own).
 */
import { Server, type ServerCredentials, type ServerOptions } from '@grpc/grpc-js';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { meshServerCredentials, type MeshServerSecurity } from './mtls.js';

/**
 * Connections the kernel holds for a listener the process has not accepted yet. grpc-js listens
 * with Node's default, 511; a pilot's death sends its thousands of sidecars to the survivors and
 * the meta server at once, and on a starved machine the accept queue overflows: the kernel drops
 * the handshake and the client retries it seconds later (bench/scale, 5,160 sidecars moved: 83 of
 * them waited 6–20 s for a first response while the pilot's admission queue was empty; the
 * machine's TcpExt ListenOverflows stood at 62,277; with this queue the next run counted none
 * during the storm and the slowest first response was 7.4 s). Linux caps it at
 * net.core.somaxconn (4096 here).
 */
export const LISTEN_BACKLOG = 4096;

/**
 * A gRPC server that listens with a deep accept queue ({@link LISTEN_BACKLOG}): grpc-js has no
 * backlog option, so the socket is our own and its connections are handed to grpc-js (its
 * connection injector: same credentials, keepalive and handlers as bindAsync). Shutting the
 * server down closes these listeners too.
 */
export class MeshGrpcServer extends Server {
  private readonly listeners = new Set<NetServer>();
  /** Connections accepted and not closed yet. Ours to count: grpc-js's http2 server did not accept them, so its close does not wait for them. */
  private readonly connections = new Set<Socket>();

  constructor(options?: ServerOptions) {
    super(options);
  }

  /** Like bindAsync: host:port (0 = any free port); resolves with the bound port. */
  async listen(host: string, port: number, creds: ServerCredentials, backlog = LISTEN_BACKLOG): Promise<number> {
    const injector = this.createConnectionInjector(creds);
    const listener = createServer((socket) => {
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
      injector.injectConnection(socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: host.replace(/^\[(.*)\]$/, '$1'), port, backlog }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listeners.add(listener);
    const addr = listener.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  private closeListeners(): void {
    for (const l of this.listeners) l.close();
    this.listeners.clear();
  }

  override tryShutdown(callback: (error?: Error) => void): void {
    this.closeListeners();
    super.tryShutdown(callback);
  }

  override forceShutdown(): void {
    this.closeListeners();
    super.forceShutdown();
    for (const c of this.connections) c.destroy();
  }

  /**
   * Graceful first (GOAWAY, no new streams), then forced for whatever is still open after
   * `graceMs`: streams such as Watch and ADS never end on their own.
   */
  async shutdownWithin(graceMs: number): Promise<void> {
    this.tryShutdown(() => undefined);
    if (!(await this.connectionsClosed(graceMs))) this.forceShutdown();
  }

  /**
   * Resolves once every accepted connection has closed, or after `ms` (false then). grpc-js's
   * tryShutdown cannot tell: its http2 server never accepted these connections, so its close
   * completes at once while a Watch or ADS stream still holds one open.
   */
  async connectionsClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.connections.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      const [c] = this.connections;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        c!.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }
}

export interface StartedGrpc {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Binds a gRPC server on host:port (0 = any free port) with the given services. */
export async function startGrpcServer(host: string, port: number, add: (server: Server) => void, security?: MeshServerSecurity): Promise<StartedGrpc> {
  const server = new MeshGrpcServer({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_permit_without_calls': 1 });
  add(server);
  const bound = await server.listen(host, port, meshServerCredentials(security));
  return {
    server,
    port: bound,
    close: () => server.shutdownWithin(2000),
  };
}
