import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { httpStatusOf } from './errors.js';
import { processFailure } from './process-errors.js';

// node:http as its CommonJS object, not an ESM import: an ESM import of node:http makes Node 24
// load undici through its lazy WebSocket getters (~5 MB RSS in every process; lego-agent/src/admin.ts).
const { createServer } = process.getBuiltinModule('node:http');

/** A readiness check: resolves to true when ready, or to a reason string when not. */
export type ReadinessCheck = () => boolean | string | Promise<boolean | string>;

/**
 * Handles one debug route. Return a value to answer it as JSON (a string is sent as text/plain);
 * throw an OctoError to answer with its mapped HTTP status.
 */
export type RouteHandler = (req: IncomingMessage, url: URL) => unknown | Promise<unknown>;

export interface AdminServerOptions {
  host?: string;
  /** 0 picks a free port (see `port` on the result). */
  port: number;
  registry: Registry;
  /** All must pass for /readyz to answer 200; each failing check is named in the body. */
  readiness?: Record<string, ReadinessCheck>;
  /** Extra GET routes by exact path, e.g. debug APIs. */
  routes?: Record<string, RouteHandler>;
}

export interface AdminServer {
  readonly port: number;
  readonly server: Server;
  /** Adds (or replaces) a GET route after start. */
  route(path: string, handler: RouteHandler): void;
  close(): Promise<void>;
}

/**
 * The HTTP endpoint every long-running component exposes: `/healthz` (the process serves),
 * `/readyz` (its readiness checks pass, and the process has not failed — `processFailure`), `/metrics` (Prometheus text format) and debug routes.
 */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const routes = new Map<string, RouteHandler>(Object.entries(opts.routes ?? {}));
  const send = (res: ServerResponse, status: number, body: unknown, type?: string) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': type ?? (typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json') });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      if (url.pathname === '/healthz') return send(res, 200, 'ok\n');
      if (url.pathname === '/readyz') {
        const failing: string[] = [];
        const fatal = processFailure();
        if (fatal) failing.push(`process: ${fatal}`);
        for (const [name, check] of Object.entries(opts.readiness ?? {})) {
          const r = await check();
          if (r !== true) failing.push(`${name}: ${r === false ? 'not ready' : r}`);
        }
        return failing.length ? send(res, 503, `not ready\n${failing.join('\n')}\n`) : send(res, 200, 'ok\n');
      }
      if (url.pathname === '/metrics') return send(res, 200, await opts.registry.metrics(), opts.registry.contentType);
      const handler = routes.get(url.pathname);
      if (!handler) return send(res, 404, { error: `no route ${url.pathname}` });
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `${req.method} not allowed` });
      return send(res, 200, await handler(req, url));
    } catch (err) {
      return send(res, httpStatusOf(err), { error: (err as Error).message });
    }
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    route: (path, handler) => void routes.set(path, handler),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
